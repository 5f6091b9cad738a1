"""Podman's event log as evidence when history is lost (issue 20, item 3): the runs of a container
that is gone are found in one stream=false read and resolved to the image it was created from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from nodegc.policy.history import uses_from_events
from nodegc.runtime.docker import DockerRuntime
from nodegc.testing.images import busybox_image_tar
from nodegc.testing.podman import IsolatedPodman
from tests.engine.helpers import wait_for
from tests.podman.conftest import PODMAN_SIZE_MB, require_podman


@pytest.fixture
def engine() -> Iterator[IsolatedPodman]:
    require_podman()
    with IsolatedPodman(size_mb=PODMAN_SIZE_MB) as isolated:
        yield isolated


def test_past_events_show_when_a_removed_containers_image_was_used(
    engine: IsolatedPodman, api: docker.APIClient
) -> None:
    image = engine.load(busybox_image_tar(["pastuse:1"], labels={"past": "use"}))
    other = engine.load(busybox_image_tar(["unused:1"], labels={"never": "run"}))
    before = datetime.now(UTC)
    container = engine.run_container("pastuse:1", ["true"])
    after = datetime.now(UTC)
    api.remove_container(container)
    runtime = DockerRuntime(engine.endpoint, timedelta(seconds=20))
    try:
        images = list(runtime.list_images())

        def used() -> dict[str, datetime]:
            return uses_from_events(runtime.past_events(datetime.now(UTC)), images)

        # Podman writes its events a moment after the call returns: poll.
        found = wait_for(lambda: used().get(image) and used(), timeout=15, interval=0.2)
    finally:
        runtime.close()
    assert before - timedelta(seconds=1) <= found[image] <= after + timedelta(seconds=1)
    assert other not in found


def test_a_lost_history_reads_podmans_event_log_once(
    engine: IsolatedPodman, api: docker.APIClient, tmp_path: Path
) -> None:
    """A first observation with history missing needs Podman's event log twice over: the past
    uses (the rebuild) and the new images' tag times. One read serves both, and the tag time is
    the one the log says (a second read, or none, fails this)."""
    from nodegc.collect.cycle import Collector
    from nodegc.config import load_settings
    from nodegc.state.store import StateDir

    image = engine.load(busybox_image_tar(["onceread:1"], labels={"once": "read"}))
    before = datetime.now(UTC)
    api.tag(image, "onceread", "2")
    after = datetime.now(UTC)
    probe = DockerRuntime(engine.endpoint, timedelta(seconds=20))
    try:  # Podman writes its events a moment after the call returns: wait until it has
        wait_for(lambda: probe.image_tagged_at([image]), timeout=15, interval=0.2)
    finally:
        probe.close()
    settings = load_settings(
        overrides={
            "runtime": {"endpoint": engine.endpoint},
            "state": {"directory": str(tmp_path / "state")},
        }
    )
    runtime = DockerRuntime(engine.endpoint, settings.runtime.timeout)
    reads: list[str] = []
    read = runtime._event_log

    def counted(what: str, params: dict[str, str]) -> list[dict[str, Any]]:
        reads.append(what)
        return read(what, params)

    runtime._event_log = counted  # type: ignore[method-assign]
    try:
        gc = Collector(settings, runtime, StateDir(settings.state.directory))
        gc.observe()
    finally:
        runtime.close()
    assert reads == ["read the engine's past events"]
    record = gc.history.images[image]
    assert before - timedelta(milliseconds=50) <= record.first_seen <= after
