"""The transport to a CRI runtime: the gRPC channel and its two stubs, one unary RPC with the
runtime timeout as its deadline, the retries a read gets (`runtime.retry`), gRPC's status codes
turned into the runtime interface's errors, and the runtime's name and version."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

import grpc

from nodegc.runtime import NotFound, RuntimeError_, RuntimeUnavailable
from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.runtime.cri_proto import api_pb2_grpc as pb_grpc
from nodegc.runtime.retry import TransportStats, retried

log = logging.getLogger("nodegc.runtime.cri")

T = TypeVar("T")

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"
CRI_API_VERSION = "v1"
# The kubelet's limit for CRI messages: a listing of a big node exceeds gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Without GetContainerEvents, how often the blocked event stream checks the runtime still answers.
EVENTLESS_PING_SECONDS = 5.0
LOOKUP_POOL = 8

UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# Requests that only read: asked again when the connection fails (never a timeout).
_READS = (
    pb.VersionRequest,
    pb.StatusRequest,
    pb.ImageFsInfoRequest,
    pb.ListImagesRequest,
    pb.ImageStatusRequest,
    pb.ListContainersRequest,
    pb.ContainerStatusRequest,
    pb.ListPodSandboxRequest,
    pb.ListContainerStatsRequest,
)


def _transient(exc: BaseException) -> bool:
    """A gRPC failure of the connection (UNAVAILABLE: reset, refused), not of the runtime."""
    return isinstance(exc, grpc.Call) and exc.code() is grpc.StatusCode.UNAVAILABLE


def grpc_target(endpoint: str) -> str:
    """The gRPC target of a `runtime.endpoint`: unix:///path as is, tcp://host:port as host:port.

    Raises RuntimeUnavailable for other schemes (CRI runtimes listen on a unix socket).
    """
    if endpoint.startswith("unix://"):
        path = endpoint[len("unix://") :]
        return f"unix://{path}" if path.startswith("/") else f"unix:{path}"
    if endpoint.startswith("tcp://"):
        return endpoint[len("tcp://") :]
    raise RuntimeUnavailable(
        f"runtime.endpoint = {endpoint!r}: a CRI runtime is reached at unix:///path "
        "(containerd: unix:///run/containerd/containerd.sock) or tcp://host:port"
    )


class CriClient:
    """The RPCs of a CRI v1 runtime: counted, with deadlines; reads retried, changes never."""

    def __init__(self, endpoint: str, timeout: timedelta) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.requests = 0  # RPCs made (retries included), for benchmarks and tests
        self.transport = TransportStats()  # connection faults: a flaky runtime or a lost one
        self._channel: grpc.Channel | None = None
        self._runtime_stub: pb_grpc.RuntimeServiceStub | None = None
        self._image_stub: pb_grpc.ImageServiceStub | None = None
        self._lock = threading.Lock()
        self._runtime_name: str | None = None
        self._runtime_numbers: tuple[int, ...] = ()

    # -- plumbing ---------------------------------------------------------------------------
    def _stubs(self) -> tuple[pb_grpc.RuntimeServiceStub, pb_grpc.ImageServiceStub]:
        with self._lock:
            if self._runtime_stub is None or self._image_stub is None:
                self._channel = grpc.insecure_channel(
                    grpc_target(self.endpoint),
                    options=[
                        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                    ],
                )
                self._runtime_stub = pb_grpc.RuntimeServiceStub(self._channel)
                self._image_stub = pb_grpc.ImageServiceStub(self._channel)
            return self._runtime_stub, self._image_stub

    @property
    def rt(self) -> pb_grpc.RuntimeServiceStub:
        """The RuntimeService stub (the channel is made on first use)."""
        return self._stubs()[0]

    @property
    def img(self) -> pb_grpc.ImageServiceStub:
        """The ImageService stub."""
        return self._stubs()[1]

    def _call(self, what: str, method: Callable[..., T], request: Any) -> T:
        """One unary RPC with `runtime.timeout` as its deadline; errors translated. A read (a
        listing, a status, the version) whose connection failed (UNAVAILABLE) is asked again
        briefly (`runtime.retry`); a change (stop, remove) never."""

        def once() -> T:
            self.requests += 1
            return method(request, timeout=self.timeout.total_seconds())

        try:
            if isinstance(request, _READS):
                return retried(once, self.transport, transient=_transient)
            return once()
        except grpc.RpcError as exc:
            raise self._translate(what, exc) from None
        except ValueError as exc:  # grpc: "Cannot invoke RPC on closed channel!"
            raise RuntimeUnavailable(f"{what}: connection to {self.endpoint}: {exc}") from None

    def _translate(self, what: str, exc: grpc.RpcError) -> RuntimeError_:
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = (exc.details() if isinstance(exc, grpc.Call) else "") or str(exc)
        if code in UNREACHABLE and self.transport.flaky:
            error = RuntimeUnavailable(
                f"{what}: runtime at {self.endpoint} flaky, this request failed ({code.name}): "
                f"{details} ({self.transport.describe(self.requests)})"
            )
            error.flaky = True
            return error
        if code in UNREACHABLE:
            return RuntimeUnavailable(
                f"{what}: runtime at {self.endpoint} unreachable or too slow "
                f"({code.name}): {details}"
            )
        if code is grpc.StatusCode.NOT_FOUND:
            return NotFound(f"{what}: {details}")
        return RuntimeError_(f"{what}: runtime answered {code.name}: {details}")

    def ping(self) -> None:
        self._call("version", self.rt.Version, pb.VersionRequest(version=CRI_API_VERSION))

    def version(self) -> pb.VersionResponse:
        """The runtime's name and version and its CRI API version."""
        return self._call("version", self.rt.Version, pb.VersionRequest(version=CRI_API_VERSION))

    def _runtime_version(self) -> tuple[str, tuple[int, ...]]:
        """The runtime's name and version numbers (asked once; ("", ()) if it does not answer)."""
        if self._runtime_name is None:
            try:
                answer = self.version()
            except RuntimeError_:
                return "", ()
            self._runtime_name = answer.runtime_name
            self._runtime_numbers = tuple(
                int(n) for n in re.findall(r"\d+", answer.runtime_version.split("+")[0])[:3]
            )
        return self._runtime_name, self._runtime_numbers

    def _grpc_channel(self) -> grpc.Channel:
        self._stubs()
        assert self._channel is not None
        return self._channel

    def _map(self, fn: Callable[[str], T], items: Sequence[str]) -> list[T]:
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(LOOKUP_POOL, len(items))) as pool:
            return list(pool.map(fn, items))
