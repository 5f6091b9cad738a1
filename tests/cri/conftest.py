"""Fixtures for the CRI suite: `ctrd` (a private containerd with its CRI plugin) and `busybox`.

A test that uses `ctrd` is marked `cri` automatically. Marked tests are skipped, with the reason,
when this machine cannot run containerd (not root, containerd missing...), except under CI (`CI`
set), where they fail instead: CI must never skip them silently. The other tests here (policy,
configuration, the adapter against an in-process gRPC server) need nothing and always run.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from nodegc.testing.containerd import IsolatedContainerd, missing_requirements
from nodegc.testing.engine_root import root_from_env
from nodegc.testing.images import busybox_image_tar

CONTAINERD_SIZE_MB = 256


def pytest_configure(config: pytest.Config) -> None:
    """Register the `cri` marker (the suite runs with --strict-markers)."""
    config.addinivalue_line(
        "markers", "cri: needs a real, isolated containerd with its CRI plugin (started here)"
    )


def require_containerd() -> None:
    """Skip (fail under CI) the current test when no isolated containerd can run here."""
    problems = missing_requirements()
    if not problems:
        return
    reason = "real-containerd test needs: " + "; ".join(problems)
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: containerd tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `cri` every test that uses the ctrd fixture, directly or not."""
    for item in items:
        if "ctrd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cri)


@pytest.fixture
def ctrd() -> Iterator[IsolatedContainerd]:
    """A started private containerd on a 256 MB filesystem, removed after the test, pass or fail
    (the containerd of the root `$NODEGC_TEST_ENGINE_ROOT` names, if set)."""
    require_containerd()
    with IsolatedContainerd(size_mb=CONTAINERD_SIZE_MB, root=root_from_env()) as isolated:
        yield isolated


@pytest.fixture
def busybox(ctrd: IsolatedContainerd) -> str:
    """The id of the busybox image, imported into `ctrd`."""
    return ctrd.import_image(busybox_image_tar())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the containerd log tail to the report of a failed containerd test."""
    report = yield
    isolated = getattr(item, "funcargs", {}).get("ctrd")
    if report.failed and call.when == "call" and isinstance(isolated, IsolatedContainerd):
        report.sections.append(("containerd log (tail)", isolated.log_tail()))
    return report
