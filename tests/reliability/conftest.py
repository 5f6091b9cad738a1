"""Fixtures of the reliability suite: a fault proxy in front of the engine, and a scene.

A scene is a small node on the real engine where the policy's answer is known in advance and
does not depend on the disk: images seeded in history as seen two days ago go for age
(`victims`); a pinned one, a young one and those in use stay (`kept_images`); dead containers
of one pod container all go (`dead`); a running one and a keep-labelled one stay.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.faultproxy import FaultProxy
from tests.reliability.scene import Scene, build_scene, record_stats


@pytest.fixture
def api(engine: IsolatedEngine) -> Iterator[docker.APIClient]:
    """A low-level client of `engine` (straight to its socket), closed after the test."""
    with engine.api() as client:
        yield client


@pytest.fixture
def proxy(engine: IsolatedEngine, request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    """A fault proxy in front of `engine` (no fault yet), closed after the test."""
    # Unix socket paths are short (108 bytes): pytest's tmp_path can be too long.
    directory = tempfile.mkdtemp(prefix="ngcp-", dir="/tmp")
    try:
        with FaultProxy(engine.socket_path, Path(directory) / "proxy.sock") as started:
            yield started
            faults = [
                {"kind": r.fault.kind, "status": r.fault.status, "method": r.method,
                 "path": r.path.pattern, "hits": r.hits}
                for r in started.rules
            ]  # fmt: skip
            record_stats(request.node.nodeid, requests=len(started.requests), faults=faults)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def scene(engine: IsolatedEngine, busybox: str, tmp_path: Path) -> Scene:
    """The standard scene on `engine`, its history seeded in `tmp_path/state`."""
    return build_scene(engine, busybox, tmp_path / "state")
