"""The data nodegc reasons about: what the runtime holds, what history remembers, what a plan says.

Everything here is plain, immutable data. Adapters produce it, the policy consumes it, the
executor and the renderers read it. Nothing in this module does I/O.
"""

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


def keep_labelled(labels: Mapping[str, str]) -> bool:
    """True for an object labelled nodegc.io/keep=true (any case): never removed."""
    return labels.get(LABEL_KEEP, "").lower() == "true"


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
        """True for the states the kubelet's container GC may collect: not running, not busy."""
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
class ImageRecord:
    """What history remembers of one image id."""

    first_seen: datetime
    last_used: datetime | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Everything nodegc remembers between observations.

    `since` is when the record began: the maximum-age rule acts only once history covers that long.
    """

    since: datetime
    images: Mapping[str, ImageRecord] = field(default_factory=dict)

    @classmethod
    def empty(cls, now: datetime) -> History:
        """History that begins now: every rule that needs the past stays conservative."""
        return cls(since=now, images={})


class Action(enum.StrEnum):
    REMOVE = "remove"
    KEEP = "keep"


class Reason(enum.StrEnum):
    """Why the policy decided what it did. The values are part of the JSON contract."""

    # Images (and build cache records) removed.
    SPACE = "space"
    INODES = "inodes"
    AGE = "age"
    # Containers removed.
    PER_UNIT_CAP = "per-unit-cap"
    GLOBAL_CAP = "global-cap"
    DISK_PRESSURE = "disk-pressure"  # under disk pressure, when the caps would keep it
    # (containers also use AGE)

    # Images kept.
    IN_USE = "in-use"
    PINNED = "pinned"
    TOO_YOUNG = "too-young"
    TARGET_REACHED = "target-reached"
    BELOW_THRESHOLD = "below-threshold"
    FAILED_THIS_CYCLE = "failed-this-cycle"
    # Build cache records kept (they also use IN_USE, TOO_YOUNG, TARGET_REACHED,
    # BELOW_THRESHOLD): the record backs an image layer.
    SHARED = "shared"
    # An image built on it (a child, classic builder) stays: in use, pinned, too young or failed.
    PARENT_OF_IN_USE = "parent-of-in-use"
    # Containers kept.
    RUNNING = "running"
    KEEP_LABEL = "keep-label"
    WITHIN_CAP = "within-cap"
    # Pod sandboxes (CRI): removed when superseded; kept when ready or the newest of their pod
    # (they also use IN_USE, TOO_YOUNG and KEEP_LABEL). Images: removed when older than the
    # newest images.keep_per_repository of their repository (policy/superseded.py).
    SUPERSEDED = "superseded"
    READY = "ready"
    NEWEST_OF_POD = "newest-of-pod"


REMOVAL_REASONS: Mapping[str, tuple[Reason, ...]] = {
    "image": (Reason.SPACE, Reason.INODES, Reason.AGE, Reason.SUPERSEDED),
    "container": (Reason.AGE, Reason.PER_UNIT_CAP, Reason.GLOBAL_CAP, Reason.DISK_PRESSURE),
    "sandbox": (Reason.SUPERSEDED,),
    "build-cache": (Reason.SPACE, Reason.INODES, Reason.AGE),
}
"""The reasons the policy removes each kind of object for (the rest are reasons to keep): a new
removal reason is added here, beside the enum, and metrics and docs follow from it."""


@dataclass(frozen=True, slots=True)
class ImageDecision:
    image: Image
    record: ImageRecord
    action: Action
    reason: Reason
    # Container ids that keep the image in use (for `in-use`).
    used_by: tuple[str, ...] = ()
    # Bytes removing this image alone would free now: its layers no other image holds.
    unique_size_bytes: int = 0
    # Bytes (inodes) removing it frees in this plan, given the removals planned before it; 0 when
    # kept. A layer shared by several removed images counts on the last of them.
    frees_bytes: int = 0
    frees_inodes: int | None = 0


@dataclass(frozen=True, slots=True)
class ContainerDecision:
    container: Container
    evict_unit: str
    action: Action
    reason: Reason


@dataclass(frozen=True, slots=True)
class ImagePlan:
    high_threshold_percent: int
    low_threshold_percent: int
    usage_percent: int
    # Bytes the disk rule asks for (0 when usage is below the high threshold).
    bytes_to_free: int
    # Decisions in the order removals are carried out: least recently used first, an image's
    # children (classic builder) just before it; then the images kept.
    decisions: tuple[ImageDecision, ...]
    inode_high_threshold_percent: int = 100
    inode_low_threshold_percent: int = 100
    inode_usage_percent: int = 0
    # Inodes the inode rule asks for (0 below the inode high threshold).
    inodes_to_free: int = 0
    # What the plan frees before images and counts towards bytes_to_free: the build cache, and
    # dead containers removed under disk pressure.
    freed_before: int = 0
    # The rule that asked for the most (`policy.targets`: high_threshold, minimum_free,
    # inode_high_threshold; "": none) and the free space the byte rule brings the disk to (0: off).
    trigger: str = ""
    target_free_bytes: int = 0

    @property
    def removals(self) -> tuple[ImageDecision, ...]:
        return tuple(d for d in self.decisions if d.action is Action.REMOVE)

    @property
    def bytes_planned(self) -> int:
        """What the planned removals really free: the layers they leave without a holder."""
        return sum(d.frees_bytes for d in self.removals)

    @property
    def inodes_planned(self) -> int | None:
        """Inodes the planned removals free; None where the runtime cannot tell per-layer
        inode counts (the closed loop still measures and stops at the inode low threshold)."""
        total = 0
        for d in self.removals:
            if d.frees_inodes is None:
                return None
            total += d.frees_inodes
        return total

    @property
    def under_pressure(self) -> bool:
        return self.bytes_to_free > 0 or self.inodes_to_free > 0

    @property
    def target_reachable(self) -> bool:
        """Whether the planned removals (with what the plan frees before images: build cache,
        dead containers under pressure) cover what the disk rules ask for (inodes: where the
        runtime cannot tell, whether anything can be removed at all)."""
        if self.freed_before + self.bytes_planned < self.bytes_to_free:
            return False
        if not self.inodes_to_free:
            return True
        planned = self.inodes_planned
        return bool(self.removals) if planned is None else planned >= self.inodes_to_free


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    decisions: tuple[ContainerDecision, ...]

    @property
    def removals(self) -> tuple[ContainerDecision, ...]:
        return tuple(d for d in self.decisions if d.action is Action.REMOVE)


@dataclass(frozen=True, slots=True)
class BuildCacheDecision:
    record: BuildCacheRecord
    action: Action
    reason: Reason
    # What removing it frees in this plan (0 when kept; a shared record frees nothing alone).
    frees_bytes: int = 0


@dataclass(frozen=True, slots=True)
class BuildCachePlan:
    """The build cache's part of a plan. `observed` False: not looked at (below the
    thresholds with no maximum age, build cache GC off, or an engine without BuildKit)."""

    observed: bool
    decisions: tuple[BuildCacheDecision, ...] = ()
    # What removing every record not in use and not shared would free (docker's "reclaimable").
    bytes_reclaimable: int = 0

    @property
    def removals(self) -> tuple[BuildCacheDecision, ...]:
        return tuple(d for d in self.decisions if d.action is Action.REMOVE)

    @property
    def bytes_planned(self) -> int:
        return sum(d.frees_bytes for d in self.removals)


@dataclass(frozen=True, slots=True)
class FilesystemPlan:
    """One measured filesystem: its thresholds, what they ask for, what frees space there
    (`frees`: the kinds of removal whose bytes live on it) and, for a filesystem without
    images, the dead containers planned for it (longest stopped first; the image filesystem's
    removals are the image plan's)."""

    filesystem: FilesystemStats
    high_threshold_percent: int
    low_threshold_percent: int
    inode_high_threshold_percent: int
    inode_low_threshold_percent: int
    bytes_to_free: int
    inodes_to_free: int
    frees: tuple[str, ...]
    containers: tuple[ContainerDecision, ...] = ()
    trigger: str = ""  # the rule that asked for the most (`policy.targets`)
    target_free_bytes: int = 0

    @property
    def under_pressure(self) -> bool:
        return bool(self.bytes_to_free or self.inodes_to_free)

    @property
    def images(self) -> bool:
        """Whether it is the (an) image filesystem."""
        return FilesystemRole.IMAGES in self.filesystem.roles


@dataclass(frozen=True, slots=True)
class Plan:
    """What one full cycle would do, and why, for every object on the node."""

    now: datetime
    filesystem: FilesystemStats
    containers: ContainerPlan
    images: ImagePlan
    build_cache: BuildCachePlan = field(default_factory=lambda: BuildCachePlan(observed=False))
    # Every measured filesystem (the image filesystem first) and what its thresholds ask for.
    filesystems: tuple[FilesystemPlan, ...] = ()


class Outcome(enum.StrEnum):
    REMOVED = "removed"
    SKIPPED = "skipped"
    FAILED = "failed"
    # Found gone when nodegc started again, with nothing to show nodegc had asked for it:
    # someone else removed it (recorded, never counted as nodegc's removal or bytes).
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class RemovalResult:
    """What happened when the executor tried one planned removal."""

    kind: str  # "image", "container", "sandbox" or "build-cache"
    id: str
    name: str
    reason: Reason
    outcome: Outcome
    detail: str = ""
    size_bytes: int = 0
    tags: tuple[str, ...] = ()  # an image's tags, for the audit record
    pod: str | None = None  # a container's pod (namespace/name), for the audit record


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
