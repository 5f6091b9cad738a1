"""The engine matrix: the core scenarios on every engine of `nodegc.testing.matrix.MATRIX`
(the host's dockerd, and Debian forky's Docker 28 in both image stores, containerd 2.1 through
CRI and Podman 5.8, run from an engine root `scripts/engine-root` builds and caches).

Every test here is marked `matrix` (select with `-m matrix`, leave out with `-m "not matrix"`).
The `node` fixture (tests/conftest.py) starts the engine a test is parametrised with; where an
engine cannot run here the test is skipped with the reason, and fails instead under CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `matrix` every test collected from this directory."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.matrix)
