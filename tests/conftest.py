"""Real-engine fixtures for every test directory: `engine` (a private dockerd), `busybox`, and
`daemons` (the `nodegc run` processes a test starts, stopped afterwards).

A test that uses `engine` is marked `engine` automatically. Marked tests are skipped, with the
reason, when this machine cannot run an engine (not root, dockerd missing...), except under CI
(`CI` set), where they fail instead: CI must never skip them silently.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from nodegc.testing.engine import IsolatedEngine, missing_requirements
from nodegc.testing.images import busybox_image_tar
from tests.engine.helpers import Daemon

ENGINE_SIZE_MB = 512


def require_engine() -> None:
    """Skip (fail under CI) the current test when no isolated engine can run here."""
    problems = missing_requirements()
    if not problems:
        return
    reason = "real-engine test needs: " + "; ".join(problems)
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: engine tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `engine` every test that uses the engine fixture, directly or not."""
    for item in items:
        if "engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)


@pytest.fixture(autouse=True)
def _engine_gate(request: pytest.FixtureRequest) -> None:
    """Apply require_engine() to tests marked `engine` (even those without the fixture)."""
    if request.node.get_closest_marker("engine") is not None:
        require_engine()


@pytest.fixture
def engine() -> Iterator[IsolatedEngine]:
    """A started private dockerd on a 512 MB filesystem, removed after the test, pass or fail."""
    require_engine()
    with IsolatedEngine(size_mb=ENGINE_SIZE_MB) as isolated:
        yield isolated


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
    return report


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts are killed afterwards, whatever happened."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()
