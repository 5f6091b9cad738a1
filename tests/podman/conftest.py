"""Tests in this directory run against a real, isolated Podman service (`podman system service`):
the `engine` fixture here is an `IsolatedPodman`, so tests written for the dockerd harness can be
reused as they are. All are marked `engine` and `podman`; like the dockerd tests they are skipped
(with the reason) where Podman cannot run, and fail instead under CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from nodegc.testing.engine_root import EngineRootError, root_from_env
from nodegc.testing.podman import IsolatedPodman, missing_podman_requirements
from nodegc.testing.rooted import RootedPodman
from tests.conftest import unavailable
from tests.reliability.conftest import proxy  # noqa: F401  (the fault proxy, in front of Podman)

HERE = Path(__file__).parent
PODMAN_SIZE_MB = 512


def require_podman() -> None:
    problems = missing_podman_requirements()
    if problems:
        unavailable("Podman test needs: " + "; ".join(problems))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `engine` and `podman` every test collected from this directory."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.engine)
            item.add_marker(pytest.mark.podman)


@pytest.fixture
def engine() -> Iterator[IsolatedPodman]:
    """A started private Podman service on a 512 MB filesystem, removed after the test (the
    Podman of the root `$NODEGC_TEST_ENGINE_ROOT` names, if set)."""
    try:
        root = root_from_env()
    except EngineRootError as exc:
        unavailable(str(exc))
    if root is None:
        require_podman()
    isolated = (
        IsolatedPodman(size_mb=PODMAN_SIZE_MB)
        if root is None
        else RootedPodman(PODMAN_SIZE_MB, root=root)
    )
    with isolated:
        yield isolated


@pytest.fixture
def api(engine: IsolatedPodman) -> Iterator[docker.APIClient]:
    """A low-level Docker-API client of the Podman service, closed after the test."""
    with engine.api() as client:
        yield client
