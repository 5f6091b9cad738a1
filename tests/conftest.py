"""Real-engine fixtures for every test directory: `engine` (a private dockerd), `busybox`,
`daemons` (the `nodegc run` processes a test starts, stopped afterwards), and the engine matrix:
`node` (one engine of `nodegc.testing.matrix.MATRIX`, chosen by parametrisation:
`@pytest.mark.parametrize("node", matrix_params("docker28-overlay2", ...), indirect=True)`) and
`make_node` (start any matrix engine by id, inside the test).

`NGC_TEST_ENGINE_ROOT=SUITE` (e.g. `trixie`, `forky`) runs the default `engine` (and the CRI and
Podman fixtures) from that Debian root's engines instead of the host's; with it,
`NGC_TEST_DOCKER_STORE=containerd` gives `engine` the containerd image store.

A test that uses `engine` is marked `engine` automatically. Marked tests are skipped, with the
reason, when this machine cannot run an engine (not root, dockerd missing...), except under CI
(`CI` set), where they fail instead: CI must never skip them silently.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import pytest

from nodegc.testing import matrix
from nodegc.testing.engine import IsolatedEngine, missing_requirements
from nodegc.testing.engine_root import ENV_STORE, EngineRoot, EngineRootError, root_from_env
from nodegc.testing.images import busybox_image_tar
from nodegc.testing.rooted import RootedEngine
from tests.engine.helpers import Daemon

ENGINE_SIZE_MB = 512


def pytest_configure(config: pytest.Config) -> None:
    """Register the `matrix` marker (the suite runs with --strict-markers), and pytest-xdist's
    `xdist_group` for runs without that plugin (`-p no:xdist`)."""
    config.addinivalue_line(
        "markers", "matrix: a core scenario run on every engine of the matrix (-m matrix)"
    )
    config.addinivalue_line(
        "markers", "xdist_group(name): tests of one group run in one pytest-xdist worker"
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The engine versions the matrix roots hold (those already built)."""
    found = matrix.versions(matrix.MATRIX)
    return [f"engine matrix: {', '.join(f'{k}={v}' for k, v in found.items()) or 'no root yet'}"]


def require_engine() -> None:
    """Skip (fail under CI) the current test when no isolated engine can run here."""
    problems = missing_requirements()
    if not problems:
        return
    reason = "real-engine test needs: " + "; ".join(problems)
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: engine tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


# The order tests are handed out in: the directories with the longest tests first, the many
# short unit tests last (they fill the workers' tails under pytest-xdist). A stable sort: inside a
# directory the order is the files' own.
LONGEST_FIRST = ("helm", "matrix", "reliability", "podman", "engine", "cri", "unit")


def _directory_rank(item: pytest.Item) -> int:
    parts = item.nodeid.split("/")
    name = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `engine` every test that uses the engine fixture, directly or not; keep together in
    one xdist worker the tests of a module that share a module-scoped fixture (one engine); hand
    the longest directories out first."""
    items.sort(key=_directory_rank)
    for item in items:
        if "engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)
        if _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture set up once for its module (or its class): under
    `--dist loadgroup` those tests go to one worker, so that the fixture is made once."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        d.scope in ("module", "class", "package")
        for defs in info.name2fixturedefs.values()
        for d in defs
    )


@pytest.fixture(autouse=True)
def _nodegc_logger_restored() -> Iterator[None]:
    """`cli.main` (and `logs.setup`) point the "nodegc" logger at the stderr of the moment, which
    pytest captures per test and then closes: put the logger back after every test, so a later
    test's log (a server thread's warning) never writes to a closed capture ("Logging error")."""
    logger = logging.getLogger("nodegc")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture(autouse=True)
def _engine_gate(request: pytest.FixtureRequest) -> None:
    """Apply require_engine() to tests marked `engine` (even those without the fixture)."""
    if request.node.get_closest_marker("engine") is not None:
        require_engine()


@pytest.fixture
def engine() -> Iterator[IsolatedEngine]:
    """A started private dockerd on a 512 MB filesystem, removed after the test, pass or fail
    (the dockerd of the root `$NGC_TEST_ENGINE_ROOT` names, if set)."""
    root = _root_from_env()
    if root is None:
        require_engine()
        isolated = IsolatedEngine(size_mb=ENGINE_SIZE_MB)
    else:
        store = os.environ.get(ENV_STORE, "overlay2")
        isolated = RootedEngine(ENGINE_SIZE_MB, root=root, store=store)  # type: ignore[arg-type]
    with isolated:
        yield isolated


def _root_from_env() -> EngineRoot | None:
    try:
        return root_from_env()
    except EngineRootError as exc:
        unavailable(str(exc))
        return None


def unavailable(reason: str) -> None:
    """Skip the current test, or fail it under CI (`CI` set): CI must never skip silently."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: engine tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


# -- the engine matrix ------------------------------------------------------------------------


def matrix_params(*ids: str, builds: bool = False, kinds: Sequence[str] = ()) -> list[Any]:
    """pytest params for the `node` fixture: the matrix engines named (all when none is),
    only those that build (`builds`) or of `kinds` ("docker", "podman", "cri")."""
    specs = [
        s for s in matrix.by_id(*ids)
        if (not builds or s.builds) and (not kinds or s.kind in kinds)
    ]  # fmt: skip
    return [pytest.param(s, id=s.id) for s in specs]


def require_matrix_engine(spec: matrix.MatrixEngine) -> None:
    """Skip (fail under CI) when `spec` cannot run here."""
    problems = matrix.missing(spec)
    if problems:
        unavailable(f"matrix engine {spec.id} needs: " + "; ".join(problems))


@pytest.fixture
def node(request: pytest.FixtureRequest) -> Iterator[matrix.Node]:
    """The matrix engine the test is parametrised with (`matrix_params`), started on 256 MB
    filesystems; removed after the test, pass or fail."""
    spec: matrix.MatrixEngine = request.param
    require_matrix_engine(spec)
    try:
        started = matrix.start_node(spec)
        node = started.__enter__()
    except EngineRootError as exc:
        unavailable(f"matrix engine {spec.id}: {exc}")
        raise
    try:
        yield node
    finally:
        started.__exit__(None, None, None)


@pytest.fixture
def make_node() -> Iterator[Callable[..., matrix.Node]]:
    """`make_node(id, size_mb=256, containerd_size_mb=256)` starts a matrix engine by id; all
    are removed after the test, pass or fail."""
    with contextlib.ExitStack() as stack:

        def make(spec_id: str, **sizes: int) -> matrix.Node:
            (spec,) = matrix.by_id(spec_id)
            require_matrix_engine(spec)
            return stack.enter_context(matrix.start_node(spec, **sizes))

        yield make


@pytest.fixture
def busybox(engine: IsolatedEngine) -> str:
    """The id of the busybox image, loaded into `engine`."""
    return engine.load(busybox_image_tar())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the dockerd log tail to the report of a failed engine test."""
    report = yield
    isolated = getattr(item, "funcargs", {}).get("engine")
    if report.failed and call.when == "call" and isinstance(isolated, IsolatedEngine):
        report.sections.append(("dockerd log (tail)", isolated.log_tail()))
    started = getattr(item, "funcargs", {}).get("node")
    if report.failed and call.when == "call" and isinstance(started, matrix.Node):
        report.sections.append((f"{started.spec.id} log (tail)", started.log_tail()))
    return report


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts are killed afterwards, whatever happened."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()
