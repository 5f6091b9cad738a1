"""What history remembers and what a plan says: image records, the reasons and decisions, the
plans of each kind, and the outcome of a removal. Plain, immutable data; no I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from nodegc.model.objects import (
    BuildCacheRecord,
    Container,
    FilesystemRole,
    FilesystemStats,
    Image,
)


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
