"""The real-engine tests whose behaviour is meant to be the same on Podman as on Docker, run
against an isolated Podman service (the `engine` fixture of this directory).

They are the Docker tests themselves (imported, so that they cannot drift apart), plus a few
re-stated where only a name differs (Podman lists `race/a:1` as `localhost/race/a:1`).
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.faultproxy import FaultProxy
from nodegc.testing.images import busybox_image_tar
from tests.engine import test_daemon, test_gc_docker, test_no_sdk_on_a_socket
from tests.reliability import test_races

# LRU image GC, per-unit container GC, dependents first. (Removing images with several tags is
# exercised by the races below; the daemon's container GC by the per-unit test through `once`.)


test_once_frees_least_recently_used_images_down_to_the_low_threshold = (
    test_gc_docker.test_once_frees_least_recently_used_images_down_to_the_low_threshold
)
test_image_whose_dead_containers_go_in_the_same_cycle_is_removed_too = (
    test_gc_docker.test_image_whose_dead_containers_go_in_the_same_cycle_is_removed_too
)
test_container_gc_keeps_the_newest_dead_container_of_each_pod_container = (
    test_gc_docker.test_container_gc_keeps_the_newest_dead_container_of_each_pod_container
)

# On Podman's unix socket too, a report and a once never import the Docker SDK.
test_report_and_once_never_import_the_sdk_on_a_unix_socket = (
    test_no_sdk_on_a_socket.test_report_and_once_never_import_the_sdk_on_a_unix_socket
)

# The daemon through a restart of the Podman service. (Its last use from events: the stronger
# test_podman_differences.py::test_daemon_records_a_short_lived_containers_last_use_at_its_exit;
# its pressure relief is the image GC above, on a period: left to the Docker suite for time.)
test_engine_restart_under_a_running_daemon_flips_readiness_and_recovers = (
    test_daemon.test_engine_restart_under_a_running_daemon_flips_readiness_and_recovers
)

# Races: a dead container started right before its DELETE (Podman answers 500 "container state
# improper" where Docker answers 409: both must give `skipped`).
test_dead_container_started_mid_removal_is_not_removed = (
    test_races.test_dead_container_started_mid_removal_is_not_removed
)


def test_racing_creates_starts_and_restarts_lose_nothing(
    engine: IsolatedEngine, busybox: str, api: docker.APIClient, proxy: FaultProxy,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The randomised race of tests/reliability, one seed (Podman creates containers slowly)."""
    test_races.test_racing_creates_starts_and_restarts_lose_nothing(
        engine, busybox, api, proxy, tmp_path, seed=1
    )


def test_container_created_from_an_image_mid_removal_keeps_it_whole(
    engine: IsolatedEngine, api: docker.APIClient, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Right before the second untag a container starts using the image: skipped, 3 tags."""
    from nodegc.testing.faultproxy import Fault
    from nodegc.testing.images import build_image_tar
    from tests.engine.helpers import create_container, nodegc
    from tests.reliability.scene import outcomes

    image = engine.load(build_image_tar(["race/a:1", "race/b:2", "race/c:3"], 16 * 1024))
    tags = sorted(api.inspect_image(image)["RepoTags"])
    assert tags == ["localhost/race/a:1", "localhost/race/b:2", "localhost/race/c:3"]
    made: list[str] = []
    # On Podman the walk untags by the image's id (POST /libpod/images/<id>/untag?repo=&tag=):
    # the hook holds the second untag.
    proxy.add(
        Fault.hook(lambda: made.append(create_container(api, image))),
        method="POST",
        path=r"/libpod/images/.*/untag$",
        skip=1,
        times=1,
    )
    proc = nodegc(None, tmp_path / "s", "once", *test_races.EVERYTHING, endpoint=proxy.endpoint)
    assert proxy.errors == [] and made
    import json

    decision = outcomes(json.loads(proc.stdout), "images")
    assert decision[image] == "skipped", proc.stdout
    assert sorted(api.inspect_image(image)["RepoTags"]) == tags
    assert api.inspect_container(made[0])["Image"] == image


@pytest.fixture
def busybox(engine: IsolatedEngine) -> str:
    """The id of the busybox image, loaded into the Podman service."""
    return engine.load(busybox_image_tar())
