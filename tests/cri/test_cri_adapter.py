"""The CRI adapter against a real containerd: what it reads, and the checks CRI leaves to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from nodegc.model import ContainerState, RuntimeEvent
from nodegc.policy.sandboxes import LABEL_SANDBOX_ID
from nodegc.runtime import Conflict, NotFound, RuntimeUnavailable
from nodegc.runtime.cri import CriRuntime
from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.testing.containerd import IsolatedContainerd
from nodegc.testing.images import build_image_tar, busybox_image_tar
from tests.cri.helpers import MiB

TIMEOUT = timedelta(seconds=10)


@pytest.fixture
def cri(ctrd: IsolatedContainerd) -> Iterator[CriRuntime]:
    """The adapter at `ctrd`."""
    runtime = CriRuntime(ctrd.endpoint, TIMEOUT)
    yield runtime
    runtime.close()


def test_containerd_remove_image_deletes_an_image_a_container_uses(
    ctrd: IsolatedContainerd, busybox: str
) -> None:
    """The premise: CRI's RemoveImage does not refuse an image in use (so nodegc must check)."""
    pod = ctrd.run_pod("premise")
    ctrd.run_container(pod, busybox, ["sleep", "60"], wait=False)
    ctrd.img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=busybox)))
    assert busybox not in ctrd.image_ids()


def test_containerd_remove_container_kills_a_running_container(
    ctrd: IsolatedContainerd, busybox: str
) -> None:
    """The premise: CRI's RemoveContainer removes a running container (so nodegc must check)."""
    pod = ctrd.run_pod("premise")
    running = ctrd.run_container(pod, busybox, ["sleep", "60"], wait=False)
    ctrd.wait_state(running, pb.CONTAINER_RUNNING)
    ctrd.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=running))
    assert ctrd.containers() == {}


def test_remove_image_refuses_an_image_a_running_container_uses(
    ctrd: IsolatedContainerd, busybox: str, cri: CriRuntime
) -> None:
    """The adapter re-checks: Conflict naming the container, and the image stays."""
    pod = ctrd.run_pod("user")
    user = ctrd.run_container(pod, busybox, ["sleep", "60"], wait=False)
    (image,) = [i for i in cri.list_images() if i.id == busybox]
    with pytest.raises(Conflict, match=user[:12]):
        cri.remove_image(image)
    assert busybox in ctrd.image_ids()


def test_remove_image_refuses_the_sandbox_image(ctrd: IsolatedContainerd, cri: CriRuntime) -> None:
    """Even when asked, the adapter never removes the runtime's pause image."""
    (pause,) = [i for i in cri.list_images() if i.id == ctrd.sandbox_image_id]
    with pytest.raises(Conflict, match="sandbox"):
        cri.remove_image(pause)
    assert ctrd.sandbox_image_id in ctrd.image_ids()


def test_remove_image_removes_every_name_of_an_unused_image(
    ctrd: IsolatedContainerd, cri: CriRuntime
) -> None:
    """An unused image tagged in several repositories goes with all its names."""
    image_id = ctrd.import_image(build_image_tar(["one/x:1", "two/y:2", "three/z:3"], 1024))
    (image,) = [i for i in cri.list_images() if i.id == image_id]
    assert len(image.tags) == 3
    cri.remove_image(image)
    assert image_id not in ctrd.image_ids()


def test_remove_image_of_a_gone_image_raises_not_found(
    ctrd: IsolatedContainerd, cri: CriRuntime
) -> None:
    """CRI's RemoveImage is idempotent; the adapter says the image was already gone."""
    image_id = ctrd.import_image(build_image_tar(["gone/x:1"], 1024))
    (image,) = [i for i in cri.list_images() if i.id == image_id]
    ctrd.img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=image_id)))
    with pytest.raises(NotFound):
        cri.remove_image(image)


def test_remove_container_refuses_a_running_container(
    ctrd: IsolatedContainerd, busybox: str, cri: CriRuntime
) -> None:
    """The adapter re-checks the state: Conflict, and the container keeps running."""
    pod = ctrd.run_pod("runner")
    running = ctrd.run_container(pod, busybox, ["sleep", "60"], wait=False)
    ctrd.wait_state(running, pb.CONTAINER_RUNNING)
    (listed,) = cri.list_containers()
    with pytest.raises(Conflict, match="running"):
        cri.remove_container(listed)
    assert ctrd.containers() == {running: pb.CONTAINER_RUNNING}


def test_remove_container_of_a_gone_container_raises_not_found(
    ctrd: IsolatedContainerd, busybox: str, cri: CriRuntime
) -> None:
    """A container removed by someone else is reported gone, not failed."""
    pod = ctrd.run_pod("gone")
    dead = ctrd.run_container(pod, busybox, ["true"])
    (listed,) = cri.list_containers()
    ctrd.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=dead))
    with pytest.raises(NotFound):
        cri.remove_container(listed)


def test_containers_get_pod_labels_from_cri_metadata(
    ctrd: IsolatedContainerd, busybox: str, cri: CriRuntime
) -> None:
    """Without kubelet labels, pod uid/name/namespace and container name come from metadata."""
    pod = ctrd.run_pod("web-1", namespace="shop", uid="uid-7")
    ctrd.run_container(pod, busybox, ["true"], name="app")
    (c,) = cri.list_containers()
    assert c.name == "app"
    assert c.pod == "shop/web-1"
    assert c.labels["io.kubernetes.pod.uid"] == "uid-7"
    assert c.labels["io.kubernetes.container.name"] == "app"
    assert c.labels[LABEL_SANDBOX_ID] == pod


def test_kubelet_labels_win_over_cri_metadata(
    ctrd: IsolatedContainerd, busybox: str, cri: CriRuntime
) -> None:
    """Labels the container already carries are kept as they are."""
    pod = ctrd.run_pod("web-1", uid="uid-7")
    labels = {"io.kubernetes.pod.uid": "from-kubelet", "io.kubernetes.container.name": "main"}
    ctrd.run_container(pod, busybox, ["true"], name="app", labels=labels)
    (c,) = cri.list_containers()
    assert c.labels["io.kubernetes.pod.uid"] == "from-kubelet"
    assert c.labels["io.kubernetes.container.name"] == "main"


def test_finish_time_is_read_once_and_cached(
    ctrd: IsolatedContainerd, busybox: str, cri: CriRuntime
) -> None:
    """An exited container is listed with the window [creation, listing] until its finish time
    is asked for (ContainerStatus, once); from then on it comes from the cache."""
    pod = ctrd.run_pod("cache")
    dead = ctrd.run_container(pod, busybox, ["true"])
    (listed,) = cri.list_containers()
    found = cri.finish_times([dead])
    before = cri.requests
    (second,) = cri.list_containers()

    assert listed.state is ContainerState.EXITED
    assert listed.finished_at is None and listed.finished_after == listed.created
    assert listed.finished_before is not None and listed.finished_before >= listed.created
    finished = found[dead]
    assert finished is not None and listed.created <= finished <= listed.finished_before
    assert second.finished_at == finished == cri.finish_cache[dead]
    assert cri.requests - before == 1  # ListContainers only: finish time and pod are cached


def test_data_root_is_the_image_filesystem_on_the_loop_mount(
    ctrd: IsolatedContainerd, cri: CriRuntime
) -> None:
    """ImageFsInfo's mountpoint: statvfs there measures the small test filesystem."""
    root = cri.data_root()
    assert root.startswith(f"{ctrd.containerd_root}/")


def test_sandbox_image_is_discovered_from_verbose_status(
    ctrd: IsolatedContainerd, cri: CriRuntime
) -> None:
    """containerd names its sandbox image in Status(verbose) -> info["config"] -> sandboxImage."""
    assert cri.sandbox_image() == ctrd.sandbox_image
    pinned = {i.id for i in cri.list_images() if i.runtime_pinned}
    assert pinned == {ctrd.sandbox_image_id}


def test_sandbox_image_setting_overrides_discovery(ctrd: IsolatedContainerd, busybox: str) -> None:
    """runtime.sandbox_image names the image to keep, in the short form people write: it is
    kept as pinned, beside what the runtime pins itself (containerd 1.7+ pins its pause image;
    1.6 pins nothing)."""
    cri = CriRuntime(ctrd.endpoint, TIMEOUT, sandbox_image="nodegc-test/busybox")
    pinned = {i.id for i in cri.list_images() if i.runtime_pinned}
    by_runtime = {i.id for i in ctrd.img.ListImages(pb.ListImagesRequest()).images if i.pinned}
    assert busybox not in by_runtime
    assert pinned == {busybox} | by_runtime


def test_image_labels_come_from_the_image_config(ctrd: IsolatedContainerd, cri: CriRuntime) -> None:
    """CRI lists no labels; the adapter reads them once per image from verbose ImageStatus."""
    image_id = ctrd.import_image(build_image_tar(["lab/x:1"], 1024, labels={"team": "infra"}))
    (image,) = [i for i in cri.list_images() if i.id == image_id]
    before = cri.requests
    cri.list_images()

    assert image.labels == {"team": "infra"}
    assert cri.requests - before == 1  # ListImages only: labels are cached by image id


def has_container_events(ctrd: IsolatedContainerd) -> bool:
    """Whether the runtime implements GetContainerEvents (containerd 1.7+; 1.6 does not):
    asked directly, not through the adapter."""
    call = ctrd.rt.GetContainerEvents(pb.GetEventsRequest(), timeout=1.0)
    try:
        next(iter(call), None)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        if code is grpc.StatusCode.UNIMPLEMENTED:
            return False
        assert code is grpc.StatusCode.DEADLINE_EXCEEDED, exc
    return True


def test_events_follow_the_runtime_or_block_until_stopped(
    ctrd: IsolatedContainerd, busybox: str, cri: CriRuntime
) -> None:
    """With GetContainerEvents, events() yields a container's create and die with its image;
    without it (containerd 1.6), events() yields nothing. Either way it returns on stop."""
    supported = has_container_events(ctrd)
    seen: list[RuntimeEvent] = []
    watcher = threading.Thread(target=lambda: seen.extend(cri.events()), daemon=True)
    watcher.start()
    pod = ctrd.run_pod("watched")
    if not supported:  # nothing can come: once events() has fallen back, a container lives
        deadline = time.monotonic() + 60
        while cri.events_supported is not False:
            assert time.monotonic() < deadline, "events() never learnt there is no stream"
            time.sleep(0.05)
    for attempt in range(5):  # the stream may open after the first container's events
        container = ctrd.run_container(pod, busybox, ["true"], attempt=attempt)
        if not supported:
            break  # it ran and exited (run_container waits): nothing may have been yielded
        deadline = time.monotonic() + 5
        while not any(e.object_id == container and e.action == "die" for e in list(seen)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        else:
            break
    assert watcher.is_alive()

    cri.stop_events()
    watcher.join(5)

    assert not watcher.is_alive()
    assert cri.events_supported is supported
    if supported:
        mine = [(e.action, e.image_id) for e in seen if e.object_id == container]
        assert ("create", busybox) in mine and ("die", busybox) in mine, seen
    else:
        assert seen == []


def test_unreachable_socket_is_runtime_unavailable_naming_the_endpoint(tmp_path: Path) -> None:
    """No runtime at the endpoint: RuntimeUnavailable with the endpoint in the message."""
    endpoint = f"unix://{tmp_path}/none.sock"
    cri = CriRuntime(endpoint, timedelta(seconds=2))
    with pytest.raises(RuntimeUnavailable, match=endpoint):
        cri.ping()


def test_version_names_containerd_and_cri_v1(ctrd: IsolatedContainerd, cri: CriRuntime) -> None:
    """The runtime answers CRI v1 (runtime.v1 service names in the committed stubs)."""
    version = cri.version()
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"


def test_images_listed_are_every_image_with_cri_sizes(
    ctrd: IsolatedContainerd, cri: CriRuntime
) -> None:
    """One listing: ids, fully qualified tags and the sizes CRI reports."""
    image_id = ctrd.import_image(busybox_image_tar(["sizes/x:1"], extra_size_bytes=1 << 20))
    (image,) = [i for i in cri.list_images() if i.id == image_id]
    assert image.tags == ("docker.io/sizes/x:1",)
    assert image.size_bytes > 1 << 20


def test_layers_are_the_chain_ids_of_the_diff_ids_shared_between_images(
    ctrd: IsolatedContainerd, cri: CriRuntime
) -> None:
    """containerd names each image's diff ids (verbose ImageStatus): images on one base share
    its chain id; each layer's size is what its snapshot takes unpacked (containerd's snapshots
    service, on the CRI socket). Mutation caught: sizes left unknown (the policy's estimate from
    the totals then gives the shared base the whole of the smaller image, the own layers ~0)."""
    from nodegc.testing.images import build_layer, build_layered_image_tar

    base = build_layer(2 * MiB, name="base")
    ids = ctrd.import_images(
        build_layered_image_tar([f"layers/{n}:1"], [base, build_layer(MiB, name=f"own{n}")])
        for n in range(2)
    )
    cri.list_images()
    cri.filesystems(), cri.listed_size_cost  # asked once, cached (not what is counted here)
    requests = cri.requests
    layers = cri.image_layers(ids)
    assert cri.requests == requests  # from the ImageStatus the listing already asked
    assert [len(layers[i]) for i in ids] == [2, 2]
    assert layers[ids[0]][0].key == layers[ids[1]][0].key
    assert layers[ids[0]][1].key != layers[ids[1]][1].key
    for i in ids:
        shared, own = (layer.size_bytes for layer in layers[i])
        assert shared is not None and 2 * MiB <= shared <= 2.1 * MiB, layers[i]
        assert own is not None and MiB <= own <= 1.1 * MiB, layers[i]
    assert cri.image_layers(ids) == layers
