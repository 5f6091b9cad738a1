"""What the runtime holds: images, layers, containers, sandboxes, filesystems, the build cache,
a snapshot of it all, and the events the engine reports. Plain, immutable data; no I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

# Labels nodegc itself understands.
LABEL_PINNED = "nodegc.io/pinned"
LABEL_KEEP = "nodegc.io/keep"
# The pod sandbox a CRI container belongs to (set by the CRI adapter from the container's row).
LABEL_SANDBOX_ID = "io.kubernetes.sandbox.id"


# Labels that name a Kubernetes pod's container (dockershim / cri-dockerd) and a compose service.
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_COMPOSE_PROJECT = "com.docker.compose.project"
LABEL_COMPOSE_SERVICE = "com.docker.compose.service"
LABEL_COMPOSE_NUMBER = "com.docker.compose.container-number"
LABEL_COMPOSE_ONEOFF = "com.docker.compose.oneoff"


class ContainerState(enum.StrEnum):
    """A container's state, in the runtime's own words (Docker's states are a superset of CRI's)."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"
    UNKNOWN = "unknown"

    @property
    def is_dead(self) -> bool:
        """Not running and not busy: created, exited or dead (which of those GC may collect is
        the policy's rule: `policy.containers.COLLECTABLE`)."""
        return self in (ContainerState.CREATED, ContainerState.EXITED, ContainerState.DEAD)


@dataclass(frozen=True, slots=True)
class Image:
    """One image as the runtime lists it."""

    id: str
    tags: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()
    size_bytes: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    # The runtime itself says the image must stay (CRI's `pinned`).
    runtime_pinned: bool = False
    # The image this one was built on by the classic builder (Docker's `ParentId`), when listed:
    # the engine refuses to remove a parent before its children.
    parent_id: str = ""
    # Other names the runtime resolves to this image, for pin matching only (never removed by):
    # Podman lists a local `myapp:1` as `localhost/myapp:1` and resolves `myapp:1` to it.
    aliases: tuple[str, ...] = ()

    @property
    def references(self) -> tuple[str, ...]:
        """Every name a pin may match: tags, digests and aliases."""
        return self.tags + self.digests + self.aliases

    def describe(self) -> str:
        """A short human name: the first tag, else the first digest, else the short id."""
        if self.tags:
            return self.tags[0]
        if self.digests:
            return self.digests[0]
        return short_id(self.id)


@dataclass(frozen=True, slots=True)
class Layer:
    """One unit of storage that holders (images, and later build cache records and containers'
    writable layers) may share: it comes back to the disk when its last holder goes.

    `key` is the identity shared by every holder of the same layer (Docker: the chain id of the
    image's diff-id prefix). `size_bytes` / `inodes` are None where the runtime does not tell
    them (the accounting then estimates sizes and cannot project inodes).
    """

    key: str
    size_bytes: int | None
    inodes: int | None = None
    # The layer's unpacked size as the runtime told it, where `size_bytes` is its cost in a
    # store keeping more than one copy (`policy.space.store_costs`); None: the same.
    unpacked_bytes: int | None = None

    @property
    def told_bytes(self) -> int | None:
        """The size the runtime told (a build cache record backing it has this size)."""
        return self.unpacked_bytes if self.unpacked_bytes is not None else self.size_bytes


@dataclass(frozen=True, slots=True)
class Container:
    """One container as the runtime lists it."""

    id: str
    name: str
    image_id: str
    state: ContainerState
    created: datetime
    # When the container last stopped; None when it never ran or the runtime does not know.
    finished_at: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # While the exact finish time of a dead container is not known (it costs a request per
    # container), the window the listing vouches for: it stopped in [finished_after,
    # finished_before]. The policy asks for the exact time only where a decision depends on it.
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    # Images mounted into it as volumes (Kubernetes image volumes, CRI `Mount.image`): in use
    # by it as its own image is.
    mounted_images: tuple[str, ...] = ()

    @property
    def stopped_at(self) -> datetime:
        """When it stopped: the finish time; while only a window is known, the window's end (the
        youngest it can be; no decision `policy.finish_times` left open depends on it); else
        (never started, or the runtime does not know) the creation time."""
        return self.finished_at or self.finished_before or self.created

    @property
    def finish_known(self) -> bool:
        """Whether no decision can gain from asking the runtime when this container stopped."""
        return self.finished_at is not None or self.finished_before is None

    @property
    def pod(self) -> str | None:
        """`namespace/name` of the Kubernetes pod the container belongs to, when labelled."""
        name = self.labels.get(LABEL_POD_NAME)
        if not name:
            return None
        namespace = self.labels.get(LABEL_POD_NAMESPACE, "")
        return f"{namespace}/{name}" if namespace else name


class FilesystemRole(enum.StrEnum):
    """What of the runtime's a filesystem holds. The values are part of the JSON contract."""

    IMAGES = "images"  # image layers: graph driver layers, or containerd's content and snapshots
    CONTAINERS = "containers"  # containers' writable layers
    LOGS = "logs"  # container logs (json-file)
    VOLUMES = "volumes"  # named and anonymous volumes


ALL_ROLES = tuple(FilesystemRole)


class LayerStore(enum.StrEnum):
    """How a runtime keeps an image layer on the disk, which decides what removing it frees
    (`policy.space.store_costs`). The adapter declares it; the rule lives in the policy."""

    # overlay2, Podman's graph driver: a layer is its unpacked files, once (`/history` sizes).
    ONE_COPY = "one-copy"
    # Docker's containerd image store: the layer's content blob and its unpacked snapshot, both.
    CONTENT_AND_SNAPSHOT = "content+snapshot"
    # CRI: only the listed (compressed) size per image is told; the real cost is estimated.
    LISTED = "listed"


@dataclass(frozen=True, slots=True)
class StorePath:
    """A directory where the runtime keeps some of its data, with what it holds there and how
    the adapter found it (the report names it)."""

    path: str
    roles: tuple[FilesystemRole, ...]
    source: str = ""


@dataclass(frozen=True, slots=True)
class FilesystemStats:
    """Bytes and inodes of the filesystem that holds the runtime's images and containers."""

    path: str
    capacity_bytes: int
    available_bytes: int
    inodes_total: int
    inodes_free: int
    # What the runtime keeps on it (empty: not said, e.g. a measurement by path alone) and the
    # device (st_dev; 0: unknown) that tells two paths on one filesystem apart from two.
    roles: tuple[FilesystemRole, ...] = ()
    device: int = 0
    # Free blocks, the root reserve and ext4's reserved clusters included (statvfs f_bfree;
    # None: not measured). `df`'s Used is capacity - free.
    free_bytes: int | None = None

    @property
    def used_bytes(self) -> int:
        return self.capacity_bytes - self.available_bytes

    @property
    def usage_percent(self) -> int:
        """The kubelet's figure: 100 - floor(available * 100 / capacity)."""
        if self.capacity_bytes <= 0:
            raise ValueError(f"filesystem {self.path} reports a capacity of {self.capacity_bytes}")
        return 100 - (self.available_bytes * 100) // self.capacity_bytes

    @property
    def used_inodes(self) -> int:
        return max(0, self.inodes_total - self.inodes_free)

    @property
    def inode_usage_percent(self) -> int:
        """The same figure for inodes: 100 - floor(free * 100 / total); 0 on a filesystem that
        reports no inode count (btrfs and others allocate them as needed)."""
        if self.inodes_total <= 0:
            return 0
        return 100 - (self.inodes_free * 100) // self.inodes_total

    def usage_percent_after(self, freed_bytes: int) -> int:
        """`usage_percent` once `freed_bytes` more are available (never past the capacity)."""
        return replace(
            self, available_bytes=min(self.capacity_bytes, self.available_bytes + freed_bytes)
        ).usage_percent


@dataclass(frozen=True, slots=True)
class BuildCacheRecord:
    """One BuildKit build cache record as the engine lists it (`/system/df` `BuildCache[]`)."""

    id: str
    # The record this one was made on top of (a record with children stays until they go).
    parent: str | None
    type: str  # regular, source.local, exec.cachemount, internal, frontend, ...
    description: str
    in_use: bool  # a build holds it now: never removed
    shared: bool  # its snapshot also backs an image layer: its bytes come back with the image
    size_bytes: int
    created_at: datetime | None
    last_used: datetime | None  # the engine's LastUsedAt (None: never used)
    usage_count: int

    def describe(self) -> str:
        text = self.description.strip() or self.type
        return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """What only a costly question tells (asked under disk pressure, or for `report`).

    `build_cache` None: not asked, or the engine has no build cache (no BuildKit: Podman, CRI).
    `container_sizes`: container id -> bytes of its writable layer, for the containers the
    engine measured (None: not asked, or the runtime cannot tell).
    """

    build_cache: tuple[BuildCacheRecord, ...] | None = None
    container_sizes: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One complete observation of the node: never built from a partial listing."""

    taken_at: datetime
    filesystem: FilesystemStats
    images: tuple[Image, ...]
    containers: tuple[Container, ...]
    # The build cache and writable-layer sizes, when the cycle needed them (see DiskUsage).
    disk_usage: DiskUsage = field(default_factory=DiskUsage)
    # Image id -> its layers, bottom first, where known (learnt once per image id and kept).
    # An image missing here counts as one layer of its listed size that nothing shares.
    layers: Mapping[str, tuple[Layer, ...]] = field(default_factory=dict)
    # Every filesystem measured, once each (by device), with its roles; `filesystem` (the image
    # filesystem) is among them. Empty: only `filesystem` was measured.
    filesystems: tuple[FilesystemStats, ...] = ()
    # How the runtime stores a layer (what removing one frees): see LayerStore.
    store: LayerStore = LayerStore.ONE_COPY

    @property
    def measured(self) -> tuple[FilesystemStats, ...]:
        """Every filesystem measured (at least the image filesystem)."""
        return self.filesystems or (self.filesystem,)


@dataclass(frozen=True, slots=True)
class RuntimeEvent:
    """Something the engine reported as it happened (container lifecycle, image arrival)."""

    kind: str  # "container" or "image"
    action: str  # create, start, die, destroy; pull, load, tag, untag, delete
    object_id: str  # the container id, or the image id when known
    image_id: str | None  # the image a container event concerns / the image id of an image event
    time: datetime
    name: str = ""  # container name or image reference, for logs
    # A container event's image as the container was created from it (a reference or an id),
    # for events whose container is gone (`Runtime.past_events`); "" where not told.
    image_ref: str = ""


def short_id(object_id: str) -> str:
    """The 12-character id people know from `docker ps`, without the digest algorithm."""
    return object_id.split(":", 1)[-1][:12]


@dataclass(frozen=True, slots=True)
class Sandbox:
    """One pod sandbox as a CRI runtime lists it: the environment a pod's containers share."""

    id: str
    name: str  # the pod's name
    namespace: str
    uid: str
    attempt: int
    ready: bool  # CRI's SANDBOX_READY: its pause process runs
    created: datetime
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def pod(self) -> str:
        """`namespace/name` of the pod."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name
