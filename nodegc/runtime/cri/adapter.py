"""The CRI adapter (`CriRuntime`): observation and removal over the CRI v1 API.

One listing call per kind of object per observation; what a listing lacks is fetched once per
object and cached where it cannot change (see the package's docstring). CRI is more permissive
than the Docker Engine, so nodegc's own checks are the only protection: RemoveImage succeeds
while containers use the image and RemoveContainer kills a running container. Every removal
therefore re-reads the object's state right before the call and raises Conflict itself (the
window left between that check and the removal is the size of one local RPC).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from nodegc.model import (
    BuildCacheRecord,
    Container,
    ContainerState,
    DiskUsage,
    FilesystemRole,
    Image,
    Layer,
    LayerStore,
    Sandbox,
    StorePath,
    short_id,
)
from nodegc.runtime import Conflict, NotFound, RuntimeError_, RuntimeUnavailable
from nodegc.runtime.cri.containerd import RuntimeDifferences
from nodegc.runtime.cri.decoding import (
    POD_LABELS,
    STATES,
    decode_sandbox,
    diff_ids_from_info,
    from_nanos,
    image_labels_from_info,
    names_image,
    pod_labels,
    uses_any,
)
from nodegc.runtime.cri.transport import DEFAULT_ENDPOINT, EVENTLESS_PING_SECONDS
from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.runtime.layers import chain_ids

log = logging.getLogger("nodegc.runtime.cri")


class CriRuntime(RuntimeDifferences):
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
        super().__init__(endpoint, timeout)
        self._clock = clock
        self.finish_cache: MutableMapping[str, datetime] = (
            finish_cache if finish_cache is not None else {}
        )
        self._paths: list[StorePath] | None = None
        self._sizes_of = None
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
        self._event_call = None

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
                runtime_pinned=row.pinned or names_image(row, sandbox),
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
            if row.pod_sandbox_id and not all(row.labels.get(k) for k in POD_LABELS)
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
            state=STATES.get(row.state, ContainerState.UNKNOWN),
            created=created,
            finished_at=finished,
            labels=pod_labels(row, pod),
            finished_after=created if window else None,
            finished_before=max(created, listed_at) if window else None,
            mounted_images=tuple(dict.fromkeys(self._image_id_named(r) for r in mounted)),
        )

    # -- sandboxes --------------------------------------------------------------------------
    def _list_sandbox_rows(self, sandbox_id: str = "") -> Sequence[pb.PodSandbox]:
        request = pb.ListPodSandboxRequest(
            filter=pb.PodSandboxFilter(id=sandbox_id) if sandbox_id else None
        )
        return self._call("list pod sandboxes", self.rt.ListPodSandbox, request).items

    def list_sandboxes(self) -> Sequence[Sandbox]:
        """Every pod sandbox, ready or not, in one listing."""
        return [decode_sandbox(row) for row in self._list_sandbox_rows()]

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
        state = STATES.get(status.state, ContainerState.UNKNOWN)
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
        if names_image(current, self.sandbox_image()):
            raise Conflict(f"{what}: it is the runtime's sandbox (pause) image")
        if current.pinned:
            raise Conflict(f"{what}: the runtime pins it")
        names = {current.id, *current.repo_tags, *current.repo_digests}
        rows = self._call(what, self.rt.ListContainers, pb.ListContainersRequest()).containers
        mounts = self._mounts_of(rows)
        users = [
            r
            for r in rows
            if uses_any(r, names)
            or self._image_id_of(r) == current.id
            or any(self._image_id_named(m) == current.id for m in mounts.get(r.id, ()))
        ]
        if users:
            first = users[0]
            raise Conflict(
                f"{what}: in use by {len(users)} container(s), e.g. {short_id(first.id)} "
                f"({first.metadata.name}, {STATES.get(first.state, ContainerState.UNKNOWN)})"
            )
        if before_delete is not None:
            before_delete()
        self._call(what, self.img.RemoveImage, pb.RemoveImageRequest(image=spec))
        self._image_labels.pop(image.id, None)
        return None
