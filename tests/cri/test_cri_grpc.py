"""The CRI adapter against an in-process gRPC server: error mapping, deadlines, event streams,
and the adapter's pure helpers. Needs no containerd."""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from nodegc.model import Container, ContainerState, RuntimeEvent
from nodegc.runtime import NotFound, RuntimeError_, RuntimeUnavailable
from nodegc.runtime.cri import (
    CriRuntime,
    grpc_target,
    image_labels_from_info,
    normalize_reference,
    sandbox_image_from_status,
)
from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.runtime.cri_proto import api_pb2_grpc as pb_grpc

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
IMAGE = "sha256:" + "a" * 64


class FakeCri(pb_grpc.RuntimeServiceServicer, pb_grpc.ImageServiceServicer):
    """A CRI server whose answers tests set: `fail[method] = (code, details)`, `delay[method]`,
    and `events` (None ends the stream). Methods it does not define answer UNIMPLEMENTED."""

    def __init__(self, *, with_events: bool = True) -> None:
        self.fail: dict[str, tuple[grpc.StatusCode, str]] = {}
        self.delay: dict[str, float] = {}
        self.fail_times: dict[str, int] = {}  # fail only this many calls (with `fail`)
        self.calls: dict[str, int] = {}
        self.events: queue.Queue[pb.ContainerEventResponse | None] = queue.Queue()
        self.with_events = with_events
        self.streaming = threading.Event()  # set when a GetContainerEvents call has come in

    def _answer(self, method: str, context: grpc.ServicerContext, response: Any) -> Any:
        time.sleep(self.delay.get(method, 0))
        self.calls[method] = self.calls.get(method, 0) + 1
        left = self.fail_times.get(method)
        if method in self.fail and (left is None or left > 0):
            if left is not None:
                self.fail_times[method] = left - 1
            context.abort(*self.fail[method])
        return response

    def Version(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._answer("Version", context, pb.VersionResponse(runtime_name="fake"))

    def ListImages(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._answer("ListImages", context, pb.ListImagesResponse())

    def RemoveContainer(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._answer("RemoveContainer", context, pb.RemoveContainerResponse())

    def ContainerStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._answer("ContainerStatus", context, pb.ContainerStatusResponse())

    def GetContainerEvents(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.streaming.set()
        if not self.with_events:
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED, "method GetContainerEvents not implemented"
            )
        while context.is_active():
            try:
                event = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if event is None:
                return
            yield event


class Server:
    """A FakeCri served on a unix socket in a short temp dir."""

    def __init__(self, fake: FakeCri) -> None:
        self.fake = fake
        self.dir = Path(tempfile.mkdtemp(prefix="ngcf-", dir="/tmp"))
        self.endpoint = f"unix://{self.dir}/cri.sock"
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        pb_grpc.add_RuntimeServiceServicer_to_server(fake, self.server)
        pb_grpc.add_ImageServiceServicer_to_server(fake, self.server)
        self.server.add_insecure_port(self.endpoint)
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fake() -> FakeCri:
    return FakeCri()


@pytest.fixture
def server(fake: FakeCri) -> Iterator[Server]:
    served = Server(fake)
    yield served
    served.stop()


@pytest.fixture
def cri(server: Server) -> Iterator[CriRuntime]:
    runtime = CriRuntime(
        server.endpoint, timedelta(seconds=2), clock=lambda: T0, eventless_ping_seconds=0.05
    )
    yield runtime
    runtime.close()


def dead(container_id: str = "c1") -> Container:
    return Container(container_id, "app", IMAGE, ContainerState.EXITED, T0)


def consume(runtime: CriRuntime, into: list[RuntimeEvent], errors: list[Exception]) -> None:
    try:
        into.extend(runtime.events())
    except Exception as exc:
        errors.append(exc)


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_unavailable_and_deadline_codes_are_runtime_unavailable(
    fake: FakeCri, cri: CriRuntime, code: grpc.StatusCode
) -> None:
    """UNAVAILABLE and DEADLINE_EXCEEDED mean nothing can be decided: RuntimeUnavailable."""
    fake.fail["ListImages"] = (code, "busy")
    with pytest.raises(RuntimeUnavailable, match=code.name):
        cri.list_images()


def test_a_read_whose_connection_failed_is_asked_again(fake: FakeCri, server: Server) -> None:
    """UNAVAILABLE twice, then an answer: a listing succeeds on its third try, counted."""
    fake.fail["ListImages"] = (grpc.StatusCode.UNAVAILABLE, "connection reset")
    fake.fail_times["ListImages"] = 2
    cri = CriRuntime(server.endpoint, timedelta(seconds=2), sandbox_image="pause:3.9")
    try:
        assert list(cri.list_images()) == []
    finally:
        cri.close()
    assert fake.calls["ListImages"] == 3
    assert cri.transport.flaky and cri.transport.faults == 2


def test_a_removal_is_never_sent_twice(fake: FakeCri, cri: CriRuntime) -> None:
    """A RemoveContainer answered UNAVAILABLE (it may have been carried out): one call only."""
    fake.fail["RemoveContainer"] = (grpc.StatusCode.UNAVAILABLE, "connection reset")
    with pytest.raises(RuntimeUnavailable):
        cri.remove_container(dead())
    assert fake.calls["RemoveContainer"] == 1


def test_a_call_slower_than_runtime_timeout_is_runtime_unavailable(
    fake: FakeCri, server: Server
) -> None:
    """runtime.timeout is each call's deadline."""
    fake.delay["ListImages"] = 1.0
    cri = CriRuntime(server.endpoint, timedelta(seconds=0.2))
    started = time.monotonic()
    with pytest.raises(RuntimeUnavailable, match="DEADLINE_EXCEEDED"):
        cri.list_images()
    assert time.monotonic() - started < 0.9
    cri.close()


def test_not_found_is_not_found(fake: FakeCri, cri: CriRuntime) -> None:
    """NOT_FOUND from the runtime is the interface's NotFound (a removal then counts as skipped)."""
    fake.fail["ContainerStatus"] = (grpc.StatusCode.NOT_FOUND, "container c1 not found")
    with pytest.raises(NotFound, match="c1 not found"):
        cri.remove_container(dead())


def test_other_codes_are_runtime_errors_not_unavailability(fake: FakeCri, cri: CriRuntime) -> None:
    """Any other code is a RuntimeError_ naming the code and the runtime's words."""
    fake.fail["ListImages"] = (grpc.StatusCode.INTERNAL, "boltdb corrupt")
    with pytest.raises(RuntimeError_, match="INTERNAL: boltdb corrupt") as caught:
        cri.list_images()
    assert not isinstance(caught.value, RuntimeUnavailable)


def test_a_scheme_cri_cannot_use_is_unavailable_at_first_call() -> None:
    """http:// is fine for Docker but not for CRI: said at first use, not at construction."""
    cri = CriRuntime("http://localhost:2375", timedelta(seconds=1))
    with pytest.raises(RuntimeUnavailable, match=r"unix:///path"):
        cri.ping()


# -- events -------------------------------------------------------------------------------------


def test_container_events_map_to_runtime_events_with_their_image(
    fake: FakeCri, cri: CriRuntime
) -> None:
    """GetContainerEvents: created/stopped become create/die, with the status's image id."""
    status = pb.ContainerStatus(id="c1", metadata=pb.ContainerMetadata(name="app"), image_id=IMAGE)
    at = int(T0.timestamp() * 1e9)
    fake.events.put(
        pb.ContainerEventResponse(
            container_id="c1",
            container_event_type=pb.CONTAINER_CREATED_EVENT,
            created_at=at,
            containers_statuses=[status],
        )
    )
    fake.events.put(
        pb.ContainerEventResponse(
            container_id="c1", container_event_type=pb.CONTAINER_STOPPED_EVENT, created_at=at
        )
    )
    fake.events.put(None)

    events = list(cri.events())

    assert [(e.action, e.object_id, e.image_id, e.name) for e in events] == [
        ("create", "c1", IMAGE, "app"),
        ("die", "c1", IMAGE, ""),
    ]
    assert events[0].time == T0
    assert cri.events_supported is True


def test_stop_events_ends_a_blocked_event_stream(fake: FakeCri, cri: CriRuntime) -> None:
    """A stream with nothing to say returns promptly once stop_events() is called."""
    seen: list[RuntimeEvent] = []
    errors: list[Exception] = []
    watcher = threading.Thread(target=consume, args=(cri, seen, errors), daemon=True)
    watcher.start()
    assert fake.streaming.wait(30), "the event stream never reached the server"
    assert watcher.is_alive()
    cri.stop_events()
    watcher.join(5)
    assert not watcher.is_alive()
    assert seen == errors == []


def test_stop_asked_before_events_makes_the_next_stream_return_at_once(cri: CriRuntime) -> None:
    """A stop that comes before the stream opens is not lost (no thread left blocked)."""
    cri.stop_events()
    assert list(cri.events()) == []


def test_without_get_container_events_the_stream_raises_when_the_runtime_goes(
    server: Server,
) -> None:
    """UNIMPLEMENTED: events() blocks, pinging; the runtime gone is RuntimeUnavailable."""
    server.fake.with_events = False
    cri = CriRuntime(server.endpoint, timedelta(seconds=1), eventless_ping_seconds=0.05)
    seen: list[RuntimeEvent] = []
    errors: list[Exception] = []
    watcher = threading.Thread(target=consume, args=(cri, seen, errors), daemon=True)
    watcher.start()
    # Synchronised on what happened: the stream was refused and the runtime pinged since.
    deadline = time.monotonic() + 30
    while server.fake.calls.get("Version", 0) < 1:
        assert time.monotonic() < deadline, "events() never fell back to pinging"
        time.sleep(0.01)  # polling a condition, with a generous deadline
    assert watcher.is_alive() and cri.events_supported is False

    server.server.stop(grace=None).wait(5)
    watcher.join(5)

    assert not watcher.is_alive()
    assert seen == []
    assert len(errors) == 1 and isinstance(errors[0], RuntimeUnavailable)
    cri.close()


# -- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [
        ("unix:///run/containerd/containerd.sock", "unix:///run/containerd/containerd.sock"),
        ("unix:///var/run/crio/crio.sock", "unix:///var/run/crio/crio.sock"),
        ("tcp://10.0.0.1:1234", "10.0.0.1:1234"),
    ],
)
def test_endpoints_become_grpc_targets(endpoint: str, target: str) -> None:
    """runtime.endpoint forms map to the target gRPC dials."""
    assert grpc_target(endpoint) == target


@pytest.mark.parametrize(
    ("reference", "normal"),
    [
        ("pause:3.9", "docker.io/library/pause:3.9"),
        ("busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox:1", "docker.io/library/busybox:1"),
        ("nodegc-test/pause:1", "docker.io/nodegc-test/pause:1"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("registry.k8s.io/pause@sha256:" + "b" * 64, "registry.k8s.io/pause@sha256:" + "b" * 64),
        (IMAGE, IMAGE),
    ],
)
def test_references_are_normalized_as_containerd_names_images(reference: str, normal: str) -> None:
    """A sandbox image written in short form matches containerd's fully qualified tags."""
    assert normalize_reference(reference) == normal


def test_sandbox_image_is_read_from_containerd_status_config() -> None:
    """containerd: info["config"] is JSON with sandboxImage."""
    info = {"config": '{"sandboxImage": "registry.k8s.io/pause:3.6", "x": 1}'}
    assert sandbox_image_from_status(info) == "registry.k8s.io/pause:3.6"


@pytest.mark.parametrize("info", [{}, {"config": "not json"}, {"config": "[1]"}, {"config": "{}"}])
def test_sandbox_image_is_empty_when_the_runtime_does_not_say(info: dict[str, str]) -> None:
    """No key, bad JSON or no sandboxImage: "" (the setting, or the pinned flag, must do)."""
    assert sandbox_image_from_status(info) == ""


@pytest.mark.parametrize(
    "info",
    [
        {"info": '{"imageSpec": {"config": {"Labels": {"a": "1"}}}}'},  # containerd
        {"info": '{"labels": {"a": "1"}}'},  # CRI-O
    ],
)
def test_image_labels_are_read_from_verbose_image_status(info: dict[str, str]) -> None:
    """containerd's and CRI-O's verbose ImageStatus forms both give the config labels."""
    assert image_labels_from_info(info) == {"a": "1"}


@pytest.mark.parametrize("info", [{}, {"info": "?"}, {"info": '{"imageSpec": {"config": {}}}'}])
def test_image_labels_are_empty_when_the_runtime_does_not_say(info: dict[str, str]) -> None:
    """Nothing readable: no labels, never an error."""
    assert image_labels_from_info(info) == {}
