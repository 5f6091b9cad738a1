"""What one cycle did (`CycleReport`): the plans carried out, the results of every removal, and
the filesystems as measured before and after."""

from __future__ import annotations

from dataclasses import dataclass, field

from nodegc.model import (
    BuildCachePlan,
    FilesystemPlan,
    FilesystemStats,
    ImagePlan,
    Outcome,
    Plan,
    RemovalResult,
)
from nodegc.policy.filesystems import short_of_target
from nodegc.policy.images import target_met
from nodegc.policy.ladder import Step


@dataclass
class CycleReport:
    """What one cycle did."""

    dry_run: bool
    plan: Plan  # the plan the cycle started from (its container part is what was carried out)
    image_plan: ImagePlan  # the image plan carried out (made after container GC, on a fresh look)
    filesystem_before: FilesystemStats
    filesystem_after: FilesystemStats | None = None
    container_results: list[RemovalResult] = field(default_factory=list)
    image_results: list[RemovalResult] = field(default_factory=list)
    ran_images: bool = True
    # The build cache plan carried out (made with the image plan), and what its walk did.
    build_cache_plan: BuildCachePlan = field(default_factory=lambda: BuildCachePlan(False))
    build_cache_results: list[RemovalResult] = field(default_factory=list)
    # Measured around the image removals alone (the build cache's and dead containers' steps of
    # the same image GC are not counted in it); None: no image step ran.
    images_freed: int | None = None
    # The image filesystem as measured when image GC was planned and when its loop stopped.
    images_before: FilesystemStats | None = None
    images_after: FilesystemStats | None = None
    # Every filesystem measured after the cycle (roles kept); empty: not measured (dry run).
    filesystems_after: tuple[FilesystemStats, ...] = ()
    # Planned removals left out because the measured disk had reached the target.
    images_not_needed: set[str] = field(default_factory=set)
    build_cache_not_needed: set[str] = field(default_factory=set)
    # The steps of the policy's ladder (`policy.ladder`) the cycle carried out, in order.
    steps: list[Step] = field(default_factory=list)
    # Planned removals never started because the engine was lost first (not in the audit).
    not_attempted: int = 0
    error: str | None = None  # why the cycle stopped short (the engine was lost), if it did

    @property
    def results(self) -> list[RemovalResult]:
        return self.container_results + self.build_cache_results + self.image_results

    @property
    def build_cache_bytes_freed(self) -> int:
        return sum(r.size_bytes for r in self.build_cache_results if r.outcome is Outcome.REMOVED)

    @property
    def failures(self) -> list[RemovalResult]:
        return [r for r in self.results if r.outcome is Outcome.FAILED]

    @property
    def image_bytes_freed(self) -> int:
        """Measured: the bytes statvfs shows came back while image GC removed (0 when the disk
        filled faster meanwhile). A dry run: what the plan says its removals free."""
        if self.dry_run:
            return self.image_plan.bytes_planned
        if self.images_freed is not None:
            return self.images_freed
        if self.images_before is None or self.images_after is None:
            return 0
        return max(0, self.images_after.available_bytes - self.images_before.available_bytes)

    @property
    def disk_bytes_freed(self) -> int:
        """Measured: the bytes statvfs shows came back over the whole of image GC (the build
        cache, images and dead containers it removed for the disk). A dry run: what the plan
        says all of them free."""
        if self.dry_run:
            return self.image_plan.freed_before + self.image_plan.bytes_planned
        if self.images_before is None or self.images_after is None:
            return 0
        return max(0, self.images_after.available_bytes - self.images_before.available_bytes)

    @property
    def image_inodes_freed(self) -> int:
        """Measured like the bytes: inodes that came back while image GC removed."""
        if self.dry_run or self.images_before is None or self.images_after is None:
            return 0
        return max(0, self.images_after.inodes_free - self.images_before.inodes_free)

    @property
    def target_reached(self) -> bool:
        """Whether every filesystem under pressure is where its thresholds asked, as last
        measured: the image filesystem (image GC) and any other (`filesystems_short`)."""
        return self.image_target_reached and not self.filesystems_short

    @property
    def image_target_reached(self) -> bool:
        """Whether the image filesystem is where image GC was asked to bring it, as last measured
        (a dry run: whether the plan's removals would get there)."""
        if self.dry_run:
            return self.image_plan.target_reachable
        if not self.image_plan.under_pressure:
            return True
        after = self.images_after or self.filesystem_after
        return after is not None and target_met(after, self.image_plan)

    @property
    def filesystems_short(self) -> list[tuple[FilesystemPlan, FilesystemStats]]:
        """Filesystems without images under pressure still short of their target, with their
        last measurement (a dry run: none is said to be; the closed loop decides there)."""
        return (
            [] if self.dry_run else short_of_target(self.plan.filesystems, self.filesystems_after)
        )
