"""The Docker adapter against a real Podman service, where Podman's API differs from Docker's:
each difference has a test here that fails on an adapter that does not handle it. The tests share
one service (each uses objects of its own); those that run `nodegc once` are in
test_podman_differences.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import docker
import pytest

from nodegc.model import RuntimeEvent
from nodegc.runtime import Conflict
from nodegc.runtime.docker import DockerRuntime, parse_time
from nodegc.runtime.docker_usage import podman_major
from nodegc.testing.images import build_image_tar, busybox_image_tar
from nodegc.testing.podman import IsolatedPodman
from tests.engine.helpers import create_container, wait_for
from tests.podman.conftest import PODMAN_SIZE_MB, require_podman

TIMEOUT = timedelta(seconds=20)


@pytest.fixture(scope="module")
def engine() -> Iterator[IsolatedPodman]:
    """One Podman service for the module (its tests touch only objects they made)."""
    require_podman()
    with IsolatedPodman(size_mb=PODMAN_SIZE_MB) as isolated:
        yield isolated


@pytest.fixture
def runtime(engine: IsolatedPodman) -> Iterator[DockerRuntime]:
    adapter = DockerRuntime(engine.endpoint, TIMEOUT)
    yield adapter
    adapter.close()


@pytest.fixture(scope="module")
def busybox(engine: IsolatedPodman) -> str:
    return engine.load(busybox_image_tar())


def test_podman_is_recognised_from_its_ping(runtime: DockerRuntime) -> None:
    """On a unix socket one `/_ping` says Podman (and the API version): no `/version`, which
    Podman answers in seconds."""
    assert runtime.podman is True
    assert runtime.requests == 1
    assert runtime.api.api_version == "1.41"


def test_podmans_version_is_read_from_its_ping_not_asked(
    engine: IsolatedPodman, runtime: DockerRuntime
) -> None:
    """Podman's `/version` (seconds: it runs conmon and the OCI runtime) is answered from the
    `/_ping` headers: the same Version as the engine's own answer, and no request made."""
    with engine.api() as api:
        real = api.version()
    assert runtime.podman is True
    before = runtime.requests
    answer = runtime.version()
    assert runtime.requests == before
    assert answer["Version"] == real["Version"]
    assert podman_major(runtime) == int(str(real["Version"]).split(".")[0])


def test_podman_is_recognised_from_its_version_without_the_unix_fast_path(
    engine: IsolatedPodman,
) -> None:
    """Over the SDK (as for a tcp:// endpoint): `/version` says Podman, and the tag time is
    read from the event log the same way."""
    runtime = DockerRuntime(engine.endpoint, TIMEOUT)
    runtime._plain = None
    image = engine.load(build_image_tar(["viasdk:1"], 1024))
    with engine.api() as api:
        api.tag(image, "viasdk", "2")
    try:
        assert runtime.podman is True
        found = wait_for(lambda: runtime.image_tagged_at([image]), timeout=10, interval=0.2)
        assert set(found) == {image}
    finally:
        runtime.close()


def test_removing_a_running_container_is_a_conflict_not_a_failure(
    engine: IsolatedPodman, runtime: DockerRuntime, busybox: str, api: docker.APIClient
) -> None:
    """Podman answers 500 "container state improper" where Docker answers 409."""
    running = engine.run_container(busybox, ["sleep", "60"], wait=False, stop_timeout=0)
    (container,) = [c for c in runtime.list_containers() if c.id == running]
    with pytest.raises(Conflict, match="container state improper"):
        runtime.remove_container(container)
    assert api.inspect_container(running)["State"]["Running"] is True


def test_events_use_podmans_names_and_ids_and_read_as_dockers(
    engine: IsolatedPodman, runtime: DockerRuntime, api: docker.APIClient
) -> None:
    """Podman's filter knows `died`/`remove`/`loadfromarchive`, not `die`/`destroy`/`load`; its
    image ids lack `sha256:`. The adapter asks with Podman's names and reports Docker's."""
    runtime.list_images()  # learns that the engine is Podman, as a cycle would
    seen: list[RuntimeEvent] = []
    done = threading.Event()

    def watch() -> None:
        for event in runtime.events():
            seen.append(event)
            if event.action == "destroy":
                break
        done.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.3)  # the stream is open
    before = runtime.requests
    image = engine.load(busybox_image_tar(["evt:1"], extra_size_bytes=1024))
    api.tag(image, "evt", "2")
    container = engine.run_container(image, ["true"])
    api.remove_container(container)
    done.wait(15)
    runtime.stop_events()
    watcher.join(5)

    actions = [(e.kind, e.action) for e in seen]
    assert ("image", "load") in actions, actions
    for action in ("create", "start", "die", "destroy"):
        assert ("container", action) in actions, actions
    tags = [e for e in seen if e.kind == "image" and e.action == "tag"]
    assert tags and all(e.object_id == image and e.image_id == image for e in tags), tags
    for event in seen:
        if event.kind == "container":
            assert event.object_id == container and event.image_id == image, event
    # One lookup (the container's image, once): the tag event carries the id, and a load names a
    # temp file, which is not looked up.
    assert runtime.requests - before <= 1


def test_tag_time_comes_from_podmans_events(
    engine: IsolatedPodman, runtime: DockerRuntime, api: docker.APIClient
) -> None:
    """Podman's LastTagTime is always zero: the tag time is read from its event log instead."""
    image = engine.load(build_image_tar(["tagged:1"], 1024))
    assert api.inspect_image(image)["Metadata"]["LastTagTime"].startswith("0001-01-01")
    time.sleep(1.1)  # the load is well before the tag
    before = datetime.now(UTC)
    api.tag(image, "tagged", "2")
    after = datetime.now(UTC)

    # Podman writes its events a moment later (a goroutine): poll.
    found = wait_for(lambda: runtime.image_tagged_at([image]), timeout=10, interval=0.2)

    assert image in found, found
    assert before - timedelta(milliseconds=50) <= found[image] <= after


def test_finish_time_is_never_before_the_start(
    engine: IsolatedPodman, runtime: DockerRuntime, busybox: str, api: docker.APIClient
) -> None:
    """A container that exits at once can have FinishedAt a few ms before StartedAt on Podman
    (in some runs, not in others): nodegc's finish time of each of ten such containers is the
    later of the two, whichever this run gave. Catches: the finish time read as Podman says it
    when it is before the start (whenever the run shows it), or not read at all. The rule alone,
    on a State of that shape: tests/unit/test_decoding.py."""
    containers = [engine.run_container(busybox, ["true"]) for _ in range(10)]
    found = runtime.finish_times(containers)
    for container in containers:
        state = api.inspect_container(container)["State"]
        finished, started = parse_time(state["FinishedAt"]), parse_time(state["StartedAt"])
        assert finished is not None and started is not None
        assert found[container] == max(finished, started), (state, found[container])


def test_deleted_rows_carry_sha256_ids(engine: IsolatedPodman, runtime: DockerRuntime) -> None:
    """Podman's `Deleted` rows lack `sha256:`; the adapter writes ids as Docker does."""
    image = engine.load(build_image_tar(["gone:1"], 1024))
    runtime.list_images()
    rows = runtime._delete_image("remove gone:1", "localhost/gone:1")
    assert {"Deleted": image} in rows


def test_container_created_meanwhile_keeps_the_image_through_the_sdk_path_too(
    engine: IsolatedPodman, api: docker.APIClient
) -> None:
    """Without the unix-socket fast path (an http endpoint), the same 500s map the same way."""
    image = engine.load(build_image_tar(["sdk:1"], 1024))
    runtime = DockerRuntime(engine.endpoint, TIMEOUT)
    runtime._plain = None  # the SDK's path, as for a tcp:// endpoint
    try:
        (listed,) = [i for i in runtime.list_images() if i.id == image]
        api.tag(image, "sdk", "2")
        with pytest.raises(Conflict, match="more than one tag"):
            runtime._delete_image("remove sdk", image)
        create_container(api, image)
        with pytest.raises(Conflict):
            runtime.remove_image(listed)
    finally:
        runtime.close()
    assert sorted(api.inspect_image(image)["RepoTags"]) == [
        "docker.io/library/sdk:2",
        "localhost/sdk:1",
    ]
