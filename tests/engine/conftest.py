"""Tests in this directory run against a real, isolated Docker engine: all are marked `engine`.

The `engine` and `busybox` fixtures (and the skip-or-fail rule) live in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from nodegc.testing.engine import IsolatedEngine

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `engine` every test collected from this directory."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.engine)


@pytest.fixture
def api(engine: IsolatedEngine) -> Iterator[docker.APIClient]:
    """A low-level client of `engine`, closed after the test."""
    with engine.api() as client:
        yield client
