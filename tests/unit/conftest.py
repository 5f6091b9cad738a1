"""Fixtures and the hypothesis profile of the unit suite; builders live in builders.py."""

from __future__ import annotations

import pytest

from tests.unit.builders import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()
