"""Podman's event log as evidence when history is lost (issue 20, item 3): the runs of a container
that is gone are found in one stream=false read and resolved to the image it was created from."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

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
