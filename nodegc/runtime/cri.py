"""The CRI adapter: containerd, CRI-O or any Kubernetes CRI v1 runtime over gRPC.

The only module that talks gRPC. One listing call per kind of object per observation; what a
listing lacks is fetched once per object and cached where it cannot change:

- a container's finish time (ContainerStatus), for the containers policy.finish_times names
  (until then it is listed as the window [creation, listing]): a CRI container is never
  restarted (the kubelet makes a new attempt), so an exited container's finish time is final
  (`finish_cache`);
- an image's labels and diff ids (ImageStatus, verbose): fixed for an image id. Its layers are
  the chain ids of its diff ids, sized on containerd by its snapshots service (CRI lists one
  total per image; elsewhere the policy estimates per-layer sizes from the totals, see
  docs/containerd.md).

CRI is more permissive than the Docker Engine, so nodegc's own checks are the only protection:
RemoveImage succeeds while containers use the image and RemoveContainer kills a running container.
Every removal therefore re-reads the object's state right before the call and raises Conflict
itself (the window left between that check and the removal is the size of one local RPC).

The runtime's sandbox (pause) image is reported as runtime-pinned even when the runtime says
`pinned=false` (containerd 1.6 does): it is discovered from `Status(verbose=true)` →
`info["config"]` → `sandboxImage` (containerd 1.6/1.7), or given by the `runtime.sandbox_image`
setting. containerd 2.x (config version 3) no longer shows it in Status but lists it `pinned`:
an image the runtime pins is never removed, and then nothing needs saying.

Containers carry the kubelet's labels (pod uid/name/namespace, container name, sandbox id); where
absent they are filled in from CRI metadata, so the policy needs no CRI-specific code.

Events: `GetContainerEvents` (CRI v1, Kubernetes 1.26+; containerd 1.7+). A runtime without it
(containerd 1.6 answers UNIMPLEMENTED) gets a stream that yields nothing and blocks, pinging the
runtime, until `stop_events()` or the runtime stops answering: last use is then learnt at each
listing (a container that lived between two listings goes unnoticed). CRI has no image events.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import grpc

from nodegc.model import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_SANDBOX_ID,
    BuildCacheRecord,
    Container,
    ContainerState,
    DiskUsage,
    FilesystemRole,
    Image,
    Layer,
    LayerStore,
    RuntimeEvent,
    Sandbox,
    StorePath,
    short_id,
)
from nodegc.references import normalized
from nodegc.runtime import Conflict, NotFound, RuntimeError_, RuntimeUnavailable
from nodegc.runtime.containerd_config import sandbox_image_of_endpoint
from nodegc.runtime.containerd_snapshots import LayerSizes, snapshotter_of
from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.runtime.cri_proto import api_pb2_grpc as pb_grpc
from nodegc.runtime.layers import chain_ids
from nodegc.runtime.retry import TransportStats, retried

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"
CRI_API_VERSION = "v1"
# The kubelet's limit for CRI messages: a listing of a big node exceeds gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Without GetContainerEvents, how often the blocked event stream checks the runtime still answers.
EVENTLESS_PING_SECONDS = 5.0
_LOOKUP_POOL = 8

_STATES = {
    pb.CONTAINER_CREATED: ContainerState.CREATED,
    pb.CONTAINER_RUNNING: ContainerState.RUNNING,
    pb.CONTAINER_EXITED: ContainerState.EXITED,
    pb.CONTAINER_UNKNOWN: ContainerState.UNKNOWN,
}
_EVENT_ACTIONS = {
    pb.CONTAINER_CREATED_EVENT: "create",
    pb.CONTAINER_STARTED_EVENT: "start",
    pb.CONTAINER_STOPPED_EVENT: "die",
    pb.CONTAINER_DELETED_EVENT: "destroy",
}
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
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


_POD_LABELS = (LABEL_POD_UID, LABEL_POD_NAME, LABEL_POD_NAMESPACE)


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


def from_nanos(value: int) -> datetime | None:
    """CRI's nanoseconds since the epoch to an aware datetime; 0 (unset) to None."""
    if value <= 0:
        return None
    return datetime.fromtimestamp(value / 1e9, UTC)


def normalize_reference(reference: str) -> str:
    """An image reference as containerd names it: registry and `library/` made explicit, `:latest`
    added to a bare name ("pause:3.9" -> "docker.io/library/pause:3.9"); image ids unchanged.
    The grammar is nodegc.references' (the one the policy's pin patterns use too)."""
    return normalized(reference)


def image_labels_from_info(info: Mapping[str, str]) -> dict[str, str]:
    """An image config's labels from verbose ImageStatus info (containerd: imageSpec.config.Labels;
    CRI-O: labels); {} when the runtime does not say."""
    try:
        data = json.loads(info.get("info") or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    spec = data.get("imageSpec") or {}
    config = spec.get("config") if isinstance(spec, dict) else None
    labels = (config or {}).get("Labels") if isinstance(config, dict) else None
    if labels is None:
        labels = data.get("labels")
    if not isinstance(labels, dict):
        return {}
    return {str(k): str(v) for k, v in labels.items()}


def diff_ids_from_info(info: Mapping[str, str]) -> list[str]:
    """An image's diff ids, bottom first, from verbose ImageStatus info (containerd:
    imageSpec.rootfs.diff_ids); [] when the runtime does not say."""
    try:
        data = json.loads(info.get("info") or "{}")
    except ValueError:
        return []
    spec = data.get("imageSpec") if isinstance(data, dict) else None
    rootfs = spec.get("rootfs") if isinstance(spec, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        return []
    return [str(d) for d in diff_ids if d]


def sandbox_image_from_status(info: Mapping[str, str]) -> str:
    """The sandbox (pause) image a runtime names in verbose Status info (containerd:
    info["config"] -> sandboxImage); "" when it does not say."""
    try:
        config = json.loads(info.get("config") or "{}")
    except ValueError:
        return ""
    if not isinstance(config, dict):
        return ""
    return str(config.get("sandboxImage") or "")


class CriRuntime:
    """A Runtime (and sandbox runtime) over the CRI v1 gRPC API."""

    name = "cri"
    walks_tags = False  # RemoveImage removes every name in one call
    # containerd (1.7, 2.x) gives an image's space back when its GC runs, after RemoveImage
    # returns: the closed loop lets the disk settle before deciding more is needed.
    frees_asynchronously = True

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: timedelta = timedelta(seconds=30),
        finish_cache: MutableMapping[str, datetime] | None = None,
        *,
        sandbox_image: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        eventless_ping_seconds: float = EVENTLESS_PING_SECONDS,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._clock = clock
        self.finish_cache: MutableMapping[str, datetime] = (
            finish_cache if finish_cache is not None else {}
        )
        self.requests = 0  # RPCs made (retries included), for benchmarks and tests
        self.transport = TransportStats()  # connection faults: a flaky runtime or a lost one
        self._channel: grpc.Channel | None = None
        self._runtime_stub: pb_grpc.RuntimeServiceStub | None = None
        self._image_stub: pb_grpc.ImageServiceStub | None = None
        self._lock = threading.Lock()
        self._paths: list[StorePath] | None = None
        self._sizes_of: LayerSizes | Literal[False] | None = None  # False: not containerd
        self._runtime_name: str | None = None
        self._runtime_numbers: tuple[int, ...] = ()
        # The sandbox image: the setting when given, else what the runtime says (None: not asked).
        self._sandbox_setting = sandbox_image.strip()
        self._sandbox_discovered: str | None = None
        self._sandbox_warned = False
        self._image_labels: dict[str, dict[str, str]] = {}
        self._image_diff_ids: dict[str, list[str]] = {}
        # Every name (id, tag, digest) of every listed image -> its id, from the last listing.
        self._image_ids: dict[str, str] = {}
        # Sandbox id -> sandbox, for the pod labels of containers that lack them.
        self._pods: dict[str, pb.PodSandbox] = {}
        # Container id -> image id, from listings, for events that do not carry it.
        self._container_image: dict[str, str] = {}
        # Container id -> references of the images mounted into it as volumes.
        self._mounts: dict[str, tuple[str, ...]] = {}
        # Events: whether the runtime has GetContainerEvents (None: not known yet).
        self.events_supported: bool | None = None
        self._eventless_ping = eventless_ping_seconds
        self._stop_events = threading.Event()
        self._event_call: Any = None

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
        if code in _UNREACHABLE and self.transport.flaky:
            error = RuntimeUnavailable(
                f"{what}: runtime at {self.endpoint} flaky, this request failed ({code.name}): "
                f"{details} ({self.transport.describe(self.requests)})"
            )
            error.flaky = True
            return error
        if code in _UNREACHABLE:
            return RuntimeUnavailable(
                f"{what}: runtime at {self.endpoint} unreachable or too slow "
                f"({code.name}): {details}"
            )
        if code is grpc.StatusCode.NOT_FOUND:
            return NotFound(f"{what}: {details}")
        return RuntimeError_(f"{what}: runtime answered {code.name}: {details}")

    def close(self) -> None:
        self.stop_events()
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._runtime_stub = self._image_stub = None

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

    def _image_volumes_possible(self) -> bool:
        """Whether the runtime can mount an image into a container (KEP-4639): containerd from
        2.1, and any other CRI runtime (CRI-O from 1.31; asked, as nodegc cannot tell)."""
        name, numbers = self._runtime_version()
        return name != "containerd" or numbers >= (2, 1)

    @property
    def listed_size_cost(self) -> float:
        """What a listed image byte costs on the disk, as a first guess (`collect.cost` learns
        the real one): containerd keeps the compressed blob and the unpacked snapshot (twice a
        layer's unpacked size for content that does not compress, twice the listed compressed
        size at least); other runtimes (CRI-O) list what unpacks."""
        name, _ = self._runtime_version()
        return 2.0 if name == "containerd" else 1.0

    # -- observation ------------------------------------------------------------------------
    def data_root(self) -> str:
        """The image filesystem's mountpoint (ImageFsInfo): statvfs there gives bytes and inodes
        as of now (the runtime's own figures are refreshed only every ~10 s)."""
        return self.filesystems()[0].path

    layer_store = LayerStore.LISTED  # CRI lists compressed sizes per image only

    def filesystems(self) -> Sequence[StorePath]:
        """ImageFsInfo's image filesystems (images) and, where the runtime reports them apart
        (KEP-4191, split image filesystem), its container filesystems (writable layers). Asked
        once. Raises RuntimeError_ when it names no image filesystem."""
        if self._paths is None:
            info = self._call(
                "image filesystem info", self.img.ImageFsInfo, pb.ImageFsInfoRequest()
            )
            images = [fs.fs_id.mountpoint for fs in info.image_filesystems if fs.fs_id.mountpoint]
            if not images:
                raise RuntimeError_(
                    "image filesystem info: the runtime names no image filesystem; set "
                    "images.filesystem_path"
                )
            containers = [
                fs.fs_id.mountpoint for fs in info.container_filesystems if fs.fs_id.mountpoint
            ]
            source = "CRI ImageFsInfo"
            roles = (
                (FilesystemRole.IMAGES,)
                if containers
                else (FilesystemRole.IMAGES, FilesystemRole.CONTAINERS)
            )
            paths = [StorePath(path, roles, source) for path in dict.fromkeys(images)]
            paths += [
                StorePath(path, (FilesystemRole.CONTAINERS,), source)
                for path in dict.fromkeys(containers)
            ]
            self._paths = paths
        return self._paths

    def sandbox_image(self) -> str | None:
        """The runtime's sandbox (pause) image reference: the setting, else what the runtime says
        in verbose Status (asked once); None when neither says."""
        if self._sandbox_setting:
            return self._sandbox_setting
        if self._sandbox_discovered is None:
            status = self._call("status", self.rt.Status, pb.StatusRequest(verbose=True))
            self._sandbox_discovered = sandbox_image_from_status(status.info)
            if not self._sandbox_discovered and self.endpoint.startswith("unix://"):
                # containerd 2.x: its config version 3 names it, Status no longer does.
                socket = self.endpoint.removeprefix("unix://")
                self._sandbox_discovered = sandbox_image_of_endpoint(socket)
        return self._sandbox_discovered or None

    def _check_sandbox_known(self, rows: Sequence[pb.Image], sandbox: str | None) -> None:
        """Warn (once) when nothing says which image is the sandbox image: neither the setting,
        nor Status (containerd 1.6/1.7 config `sandboxImage`), nor the runtime's own `pinned`
        flag (containerd 1.7 and 2.x pin it: a version 3 config keeps it under
        `[plugins."io.containerd.cri.v1.images".pinned_images] sandbox`, which 2.x's Status no
        longer shows)."""
        if sandbox or self._sandbox_warned or any(row.pinned for row in rows):
            return
        self._sandbox_warned = True
        log.warning(
            "the runtime does not name its sandbox (pause) image nor pins any image; set "
            "runtime.sandbox_image so that it is never removed",
            extra={"endpoint": self.endpoint},
        )

    def list_images(self) -> Sequence[Image]:
        rows = self._call("list images", self.img.ListImages, pb.ListImagesRequest()).images
        sandbox = self.sandbox_image()
        self._check_sandbox_known(rows, sandbox)
        labels = self._labels_of([row.id for row in rows])
        self._image_ids = {
            name: row.id
            for row in rows
            for name in (row.id, *row.repo_tags, *row.repo_digests)
            if name
        }
        return [
            Image(
                id=row.id,
                tags=tuple(t for t in row.repo_tags if t),
                digests=tuple(d for d in row.repo_digests if d),
                size_bytes=int(row.size),
                labels=labels.get(row.id, {}),
                runtime_pinned=row.pinned or _names(row, sandbox),
            )
            for row in rows
        ]

    def inspect_image(self, image_id: str) -> Image | None:
        what = f"inspect image {short_id(image_id)}"
        spec = pb.ImageSpec(image=image_id)
        row = self._call(what, self.img.ImageStatus, pb.ImageStatusRequest(image=spec)).image
        if not row.id:
            return None
        return Image(
            id=row.id,
            tags=tuple(t for t in row.repo_tags if t),
            digests=tuple(d for d in row.repo_digests if d),
            size_bytes=int(row.size),
        )

    def tag_image(self, image_id: str, reference: str) -> None:
        raise RuntimeError_(
            f"restore tag {reference} on {short_id(image_id)}: the CRI has no call to tag an "
            "image (and nodegc never takes a CRI image's names off one by one)"
        )

    def _labels_of(self, image_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Labels of every listed image: cached by id, verbose ImageStatus for the new ones."""
        for gone in set(self._image_labels) - set(image_ids):
            del self._image_labels[gone]
            self._image_diff_ids.pop(gone, None)
        need = [i for i in image_ids if i not in self._image_labels]
        for image_id, found in self._map(self._image_info_of, need):
            if found is not None:
                self._image_labels[image_id], self._image_diff_ids[image_id] = found
        return self._image_labels

    def _image_info_of(self, image_id: str) -> tuple[str, tuple[dict[str, str], list[str]] | None]:
        request = pb.ImageStatusRequest(image=pb.ImageSpec(image=image_id), verbose=True)
        try:
            status = self._call(f"image status {short_id(image_id)}", self.img.ImageStatus, request)
        except NotFound:
            return image_id, None
        if not status.image.id:
            return image_id, None
        return image_id, (image_labels_from_info(status.info), diff_ids_from_info(status.info))

    def image_layers(self, image_ids: Sequence[str]) -> dict[str, tuple[Layer, ...]]:
        """Chain ids of each image's diff ids (from the verbose ImageStatus the listing already
        asked for new images), each sized by its snapshot on containerd (unknown elsewhere: the
        policy estimates), inodes unknown; no layers where the runtime names no diff ids
        (CRI-O): the image then counts as one layer of its listed size."""
        need = [i for i in image_ids if i not in self._image_diff_ids]
        for image_id, found in self._map(self._image_info_of, need):
            if found is not None:
                self._image_labels[image_id], self._image_diff_ids[image_id] = found
        chains = {
            image_id: chain_ids(self._image_diff_ids[image_id])
            for image_id in image_ids
            if image_id in self._image_diff_ids
        }
        sized = self._layer_sizes()
        size = {} if sized is None else dict(zip(*self._sized(sized, chains), strict=True))
        return {
            image_id: tuple(Layer(key=key, size_bytes=size.get(key), inodes=None) for key in keys)
            for image_id, keys in chains.items()
        }

    def _sized(
        self, sized: LayerSizes, chains: dict[str, list[str]]
    ) -> tuple[list[str], list[int | None]]:
        keys = list(dict.fromkeys(k for stack in chains.values() for k in stack))
        return keys, self._map(sized.size, keys)

    def _layer_sizes(self) -> LayerSizes | None:
        """containerd's snapshot sizes (`runtime.containerd_snapshots`): each layer's unpacked
        size, where the runtime is containerd and its image filesystem names its snapshotter."""
        if self._sizes_of is None:
            name, _ = self._runtime_version()
            snapshotter = (
                snapshotter_of(self.filesystems()[0].path) if name == "containerd" else None
            )
            use = snapshotter is not None
            self._sizes_of = LayerSizes(self._grpc_channel, snapshotter or "") if use else False
        return self._sizes_of or None

    def _grpc_channel(self) -> grpc.Channel:
        self._stubs()
        assert self._channel is not None
        return self._channel

    def image_tagged_at(self, image_ids: Sequence[str]) -> dict[str, datetime]:
        """CRI has no tag or pull time: history's first sighting is the only evidence."""
        return {}

    def list_containers(self) -> Sequence[Container]:
        """One listing. An exited container's finish time comes from the cache, else as the
        window [creation, now]; `finish_times` asks for the exact ones a decision needs."""
        rows = self._call(
            "list containers", self.rt.ListContainers, pb.ListContainersRequest()
        ).containers
        now = datetime.now(UTC)
        pods = self._pods_of(rows)
        live_ids: set[str] = set()
        for row in rows:
            live_ids.add(row.id)
            if row.state != pb.CONTAINER_EXITED:
                self.finish_cache.pop(row.id, None)
        for gone in set(self.finish_cache) - live_ids:
            del self.finish_cache[gone]
        mounts = self._mounts_of(rows)
        containers = [
            self._container(row, pods.get(row.pod_sandbox_id), now, mounts.get(row.id, ()))
            for row in rows
        ]
        self._container_image = {c.id: c.image_id for c in containers}
        return containers

    def _mounts_of(self, rows: Sequence[pb.Container]) -> Mapping[str, tuple[str, ...]]:
        """Container id -> the images mounted into it as volumes (Kubernetes image volumes:
        `Mount.image` in ContainerStatus), asked once per container (its mounts never change);
        not asked of a runtime that cannot mount images (containerd before 2.1)."""
        if not self._image_volumes_possible():
            return {}
        unknown = [row.id for row in rows if row.id not in self._mounts]
        for container_id, refs in self._map(self._mounted_images, unknown):
            self._mounts[container_id] = refs
        listed = {row.id for row in rows}
        for gone in set(self._mounts) - listed:
            del self._mounts[gone]
        return self._mounts

    def _mounted_images(self, container_id: str) -> tuple[str, tuple[str, ...]]:
        try:
            status = self._container_status(container_id)
        except NotFound:
            return container_id, ()
        return container_id, tuple(m.image.image for m in status.mounts if m.image.image)

    def _image_id_named(self, reference: str) -> str:
        """An image reference resolved to its id through the last listing (as is if unknown)."""
        ids = self._image_ids
        return ids.get(reference) or ids.get(normalize_reference(reference)) or reference

    def finish_times(self, container_ids: Sequence[str]) -> dict[str, datetime | None]:
        """ContainerStatus of each (in parallel), cached: an exited CRI container never runs
        again (a restart is a new container)."""
        found = dict(self._map(self._finished_at, container_ids))
        for container_id, finished in found.items():
            if finished is not None:
                self.finish_cache[container_id] = finished
        return found

    def _pods_of(self, rows: Sequence[pb.Container]) -> Mapping[str, pb.PodSandbox]:
        """The sandboxes of the containers that lack a kubelet pod label: cached by id (a
        sandbox's metadata never changes), one ListPodSandbox when an unknown one appears."""
        wanted = {
            row.pod_sandbox_id
            for row in rows
            if row.pod_sandbox_id and not all(row.labels.get(k) for k in _POD_LABELS)
        }
        if not wanted <= self._pods.keys():
            self._pods = {s.id: s for s in self._list_sandbox_rows()}
        return self._pods

    def _finished_at(self, container_id: str) -> tuple[str, datetime | None]:
        try:
            status = self._container_status(container_id)
        except NotFound:
            return container_id, None
        return container_id, from_nanos(status.finished_at)

    def _container_status(self, container_id: str) -> pb.ContainerStatus:
        response = self._call(
            f"container status {short_id(container_id)}",
            self.rt.ContainerStatus,
            pb.ContainerStatusRequest(container_id=container_id),
        )
        return response.status

    def _container(
        self,
        row: pb.Container,
        pod: pb.PodSandbox | None,
        listed_at: datetime,
        mounted: Sequence[str] = (),
    ) -> Container:
        created = from_nanos(row.created_at) or datetime.fromtimestamp(0, UTC)
        finished = self.finish_cache.get(row.id)
        window = row.state == pb.CONTAINER_EXITED and finished is None
        return Container(
            id=row.id,
            name=row.metadata.name or short_id(row.id),
            image_id=self._image_id_of(row),
            state=_STATES.get(row.state, ContainerState.UNKNOWN),
            created=created,
            finished_at=finished,
            labels=pod_labels(row, pod),
            finished_after=created if window else None,
            finished_before=max(created, listed_at) if window else None,
            mounted_images=tuple(dict.fromkeys(self._image_id_named(r) for r in mounted)),
        )

    def _image_id_of(self, row: pb.Container | pb.ContainerStatus) -> str:
        """The id of the image a container uses: CRI's image_id (newer runtimes), else image_ref
        (an id, or a digest or tag resolved through the last image listing)."""
        for ref in (row.image_id, row.image_ref, row.image.image):
            if ref and ref in self._image_ids:
                return self._image_ids[ref]
        return row.image_id or row.image_ref or row.image.image

    def _map(self, fn: Callable[[str], T], items: Sequence[str]) -> list[T]:
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(_LOOKUP_POOL, len(items))) as pool:
            return list(pool.map(fn, items))

    # -- sandboxes --------------------------------------------------------------------------
    def _list_sandbox_rows(self, sandbox_id: str = "") -> Sequence[pb.PodSandbox]:
        request = pb.ListPodSandboxRequest(
            filter=pb.PodSandboxFilter(id=sandbox_id) if sandbox_id else None
        )
        return self._call("list pod sandboxes", self.rt.ListPodSandbox, request).items

    def list_sandboxes(self) -> Sequence[Sandbox]:
        """Every pod sandbox, ready or not, in one listing."""
        return [_sandbox(row) for row in self._list_sandbox_rows()]

    def remove_sandbox(self, sandbox: Sandbox) -> None:
        """Stop and remove a sandbox that is not ready and that no container references.

        CRI's RemovePodSandbox would kill and remove the sandbox's containers: the state is read
        again first, and Conflict raised when it is ready again or has containers.
        """
        what = f"remove sandbox {short_id(sandbox.id)} ({sandbox.pod})"
        rows = [r for r in self._list_sandbox_rows(sandbox.id) if r.id == sandbox.id]
        if not rows:
            raise NotFound(f"{what}: no such sandbox")
        if rows[0].state == pb.SANDBOX_READY:
            raise Conflict(f"{what}: it is ready (running) now")
        members = self._call(
            f"list containers of sandbox {short_id(sandbox.id)}",
            self.rt.ListContainers,
            pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=sandbox.id)),
        ).containers
        if members:
            first = members[0]
            raise Conflict(
                f"{what}: it has {len(members)} container(s), e.g. {short_id(first.id)} "
                f"({first.metadata.name})"
            )
        stop = pb.StopPodSandboxRequest(pod_sandbox_id=sandbox.id)
        self._call(what, self.rt.StopPodSandbox, stop)
        remove = pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id)
        self._call(what, self.rt.RemovePodSandbox, remove)
        self._pods.pop(sandbox.id, None)

    # -- events -----------------------------------------------------------------------------
    def past_events(self, until: datetime) -> list[RuntimeEvent]:
        """None: CRI keeps no event history (the containers' own times are the evidence)."""
        return []

    def events(self, since: datetime | None = None) -> Iterator[RuntimeEvent]:
        """Container events as they happen (`since` is ignored: CRI keeps no event history).

        Without GetContainerEvents, yields nothing: blocks until `stop_events()`, or raises
        RuntimeUnavailable when the runtime stops answering.
        """
        if self._take_stop():
            return
        if self.events_supported is not False:
            call = self.rt.GetContainerEvents(pb.GetEventsRequest())
            self._event_call = call
            self.requests += 1
            try:
                if self._take_stop():  # asked to stop before the call could be cancelled
                    call.cancel()
                    return
                for response in call:
                    self.events_supported = True
                    event = self._event(response)
                    if event is not None:
                        yield event
                return
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                if code is grpc.StatusCode.CANCELLED and self._take_stop():
                    return
                if code is not grpc.StatusCode.UNIMPLEMENTED:
                    raise self._translate("watch container events", exc) from None
                self.events_supported = False
                log.info(
                    "the runtime has no GetContainerEvents: image use is learnt at each listing",
                    extra={"endpoint": self.endpoint},
                )
            finally:
                self._event_call = None
        while not self._stop_events.wait(self._eventless_ping):
            self.ping()
        self._take_stop()

    def _take_stop(self) -> bool:
        """Whether `stop_events()` was asked (and not yet honoured); clears the request."""
        if self._stop_events.is_set():
            self._stop_events.clear()
            return True
        return False

    def stop_events(self) -> None:
        """Make a blocked `events()` return (or the next one return at once)."""
        self._stop_events.set()
        call = self._event_call
        if call is not None:
            try:
                call.cancel()
            except Exception:  # cancelling a finished call may raise anything
                log.debug("cancelling the event stream failed", exc_info=True)

    def _event(self, response: pb.ContainerEventResponse) -> RuntimeEvent | None:
        action = _EVENT_ACTIONS.get(response.container_event_type)
        if action is None:
            return None
        container_id = response.container_id
        image_id = self._container_image.get(container_id)
        name = ""
        for status in response.containers_statuses:
            if status.id == container_id:
                image_id = self._image_id_of(status) or image_id
                name = status.metadata.name
        if action == "destroy":
            self._container_image.pop(container_id, None)
        elif image_id:
            self._container_image[container_id] = image_id
        when = from_nanos(response.created_at) or self._clock()
        return RuntimeEvent("container", action, container_id, image_id, when, name)

    # -- disk usage -------------------------------------------------------------------------
    def disk_usage(self, *, build_cache: bool, container_sizes: bool) -> DiskUsage:
        """CRI has no build cache. Writable-layer sizes: one ListContainerStats
        (`writable_layer.used_bytes`, dead containers included on containerd 1.6), asked only
        under pressure. A container the runtime gives no stats for is left out (the plan counts
        it as 0; the closed loop measures what its removal frees)."""
        if not container_sizes:
            return DiskUsage()
        try:
            stats = self._call(
                "list container stats", self.rt.ListContainerStats, pb.ListContainerStatsRequest()
            ).stats
        except RuntimeUnavailable:
            raise
        except RuntimeError_ as exc:  # UNIMPLEMENTED and the like: sizes are only an estimate
            log.info("container stats unavailable", extra={"error": str(exc)})
            return DiskUsage(container_sizes={})
        sizes = {
            s.attributes.id: int(s.writable_layer.used_bytes.value)
            for s in stats
            if s.attributes.id and s.HasField("writable_layer")
        }
        return DiskUsage(container_sizes=sizes)

    def cri_space_hooks(self) -> Any:
        """Where the space is (issue 22; the code is `runtime/cri_usage.py`): container
        statuses through this runtime's calls."""
        from nodegc.runtime.cri_usage import LogPaths

        return LogPaths(self._container_status, self._map)

    def remove_build_cache(self, record: BuildCacheRecord) -> int:
        raise NotFound(f"remove build cache {record.id}: a CRI runtime has no build cache")

    # -- removal ----------------------------------------------------------------------------
    def remove_container(self, container: Container) -> None:
        """Remove a container that is not running, re-checked right before the call (CRI's
        RemoveContainer would kill a running one)."""
        what = f"remove container {short_id(container.id)} ({container.name})"
        status = self._container_status(container.id)
        state = _STATES.get(status.state, ContainerState.UNKNOWN)
        if not state.is_dead:
            raise Conflict(f"{what}: it is {state} now")
        self._call(
            what, self.rt.RemoveContainer, pb.RemoveContainerRequest(container_id=container.id)
        )
        self.finish_cache.pop(container.id, None)

    def remove_image(
        self, image: Image, before_delete: Callable[[], None] | None = None
    ) -> str | None:
        """Remove an image with every name, after checking right before the call that no
        container (any state) uses it (CRI's RemoveImage would not refuse) and that it is not the
        sandbox image. By id: RemoveImage takes only that image's own names."""
        what = f"remove image {short_id(image.id)} ({image.describe()})"
        spec = pb.ImageSpec(image=image.id)
        current = self._call(what, self.img.ImageStatus, pb.ImageStatusRequest(image=spec)).image
        if not current.id:
            raise NotFound(f"{what}: no such image")
        if _names(current, self.sandbox_image()):
            raise Conflict(f"{what}: it is the runtime's sandbox (pause) image")
        if current.pinned:
            raise Conflict(f"{what}: the runtime pins it")
        names = {current.id, *current.repo_tags, *current.repo_digests}
        rows = self._call(what, self.rt.ListContainers, pb.ListContainersRequest()).containers
        mounts = self._mounts_of(rows)
        users = [
            r
            for r in rows
            if _uses(r, names)
            or self._image_id_of(r) == current.id
            or any(self._image_id_named(m) == current.id for m in mounts.get(r.id, ()))
        ]
        if users:
            first = users[0]
            raise Conflict(
                f"{what}: in use by {len(users)} container(s), e.g. {short_id(first.id)} "
                f"({first.metadata.name}, {_STATES.get(first.state, ContainerState.UNKNOWN)})"
            )
        if before_delete is not None:
            before_delete()
        self._call(what, self.img.RemoveImage, pb.RemoveImageRequest(image=spec))
        self._image_labels.pop(image.id, None)
        return None


def _uses(row: pb.Container, names: Iterable[str]) -> bool:
    refs = {row.image_id, row.image_ref, row.image.image} - {""}
    return not refs.isdisjoint(names)


def _names(row: pb.Image, reference: str | None) -> bool:
    """Whether the image listed as `row` is the one `reference` names (id, tag or digest)."""
    if not reference:
        return False
    wanted = normalize_reference(reference)
    if wanted == row.id:
        return True
    return any(normalize_reference(n) == wanted for n in (*row.repo_tags, *row.repo_digests) if n)


def pod_labels(row: pb.Container, pod: pb.PodSandbox | None) -> dict[str, str]:
    """The container's labels, with the kubelet's pod labels filled in from CRI metadata where
    absent (container name, pod uid/name/namespace, sandbox id)."""
    labels = dict(row.labels)
    found = {
        LABEL_CONTAINER_NAME: row.metadata.name,
        LABEL_SANDBOX_ID: row.pod_sandbox_id,
    }
    if pod is not None:
        found |= {
            LABEL_POD_UID: pod.metadata.uid,
            LABEL_POD_NAME: pod.metadata.name,
            LABEL_POD_NAMESPACE: pod.metadata.namespace,
        }
    for key, value in found.items():
        if value and not labels.get(key):
            labels[key] = value
    return labels


def _sandbox(row: pb.PodSandbox) -> Sandbox:
    return Sandbox(
        id=row.id,
        name=row.metadata.name,
        namespace=row.metadata.namespace,
        uid=row.metadata.uid,
        attempt=int(row.metadata.attempt),
        ready=row.state == pb.SANDBOX_READY,
        created=from_nanos(row.created_at) or datetime.fromtimestamp(0, UTC),
        labels=dict(row.labels),
    )
