"""Image GC metrics with the kubelet's names (KEP-6053, "Kubelet Image Garbage Collection
Observability"), `kubelet_` replaced by `nodegc_`, so that one dashboard or alert reads both.

One image GC cycle of the daemon is one *attempt*. Its `reason` is what set it going and its
`result` how it ended (the KEP's result words):

- reason `space` (disk usage at or above the high threshold), `inodes` (only inode usage at or
  above its high threshold), `age` / `superseded` (below the thresholds, the rules that remove
  whatever the disk planned removals), `none` (nothing to do), `unknown` (the cycle failed before
  it could plan: the engine or the filesystem did not answer);
- result `success` (what was asked was done), `partial` (under pressure, the target was not
  reached: the kubelet's FreeDiskSpaceFailed), `noop` (nothing removed, nothing needed),
  `error` (a removal failed, or the cycle did not finish).
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from nodegc.collect.cycle import CycleReport
from nodegc.model import (
    REMOVAL_REASONS,
    Action,
    FilesystemStats,
    Outcome,
    Reason,
    RemovalResult,
)

ATTEMPT_REASONS = ("space", "inodes", "age", "superseded", "none", "unknown")
ATTEMPT_RESULTS = ("success", "partial", "noop", "error")
DELETION_RESULTS = ("success", "error", "skipped")
SKIP_REASONS = ("in_use", "min_age", "pinned", "other")
_SKIP_OF = {Reason.IN_USE: "in_use", Reason.TOO_YOUNG: "min_age", Reason.PINNED: "pinned"}
# Kept for a reason of their own (not "the target is met" or "below the threshold"): skipped.
_NOT_SKIPPED = frozenset({Reason.TARGET_REACHED, Reason.BELOW_THRESHOLD})
_DELETION_RESULT = {
    Outcome.REMOVED: "success",
    Outcome.FAILED: "error",
    Outcome.SKIPPED: "skipped",
}
# A cycle lists, plans and removes: from tens of milliseconds to minutes on a busy engine.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# 1 MiB to 1 TiB, by factors of 4.
BYTES_BUCKETS = tuple(float(1 << (20 + 2 * n)) for n in range(11))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One image GC attempt as the metrics see it."""

    reason: str
    result: str
    target_bytes: int | None = None  # observed only when bytes were asked for
    freed_bytes: int | None = None  # observed only when the attempt had something to do
    skipped: Tally[str] | None = None


def attempt_of(report: CycleReport | None) -> Attempt:
    """Classify one finished image cycle (None: it failed before it could plan)."""
    if report is None:
        return Attempt("unknown", "error")
    plan = report.image_plan
    planned = {d.reason for d in plan.removals}
    planned |= {d.reason for d in report.build_cache_plan.removals}
    if plan.bytes_to_free:
        reason = "space"
    elif plan.inodes_to_free:
        reason = "inodes"
    elif Reason.AGE in planned:
        reason = "age"
    elif Reason.SUPERSEDED in planned:
        reason = "superseded"
    else:
        reason = "none"
    removed = any(r.outcome is Outcome.REMOVED for r in report.results)
    if report.failures or report.error:
        result = "error"
    elif not report.target_reached:
        result = "partial"
    elif removed or plan.under_pressure:
        result = "success"
    else:
        result = "noop"
    if reason == "none":
        return Attempt(reason, result)
    skipped = Tally(
        _SKIP_OF.get(d.reason, "other")
        for d in plan.decisions
        if d.action is Action.KEEP and d.reason not in _NOT_SKIPPED
    )
    target = plan.bytes_to_free if reason == "space" else None
    return Attempt(reason, result, target, report.disk_bytes_freed, skipped)


class ImageGCMetrics:
    """The KEP-6053 families, registered on `registry`; every known label child created at 0."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.attempts = Counter(
            "nodegc_image_gc_attempts",
            "Image GC attempts (one per image GC cycle of the daemon), by what set it going "
            "(reason: space, inodes, age, superseded, none, unknown) and how it ended (result: "
            "success, partial = target not reached (FreeDiskSpaceFailed), noop, error).",
            ["reason", "result"],
            registry=r,
        )
        self.duration = Histogram(
            "nodegc_image_gc_duration_seconds",
            "Wall time of one image GC attempt (listing, planning, removals, measurements), by "
            "result.",
            ["result"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.target = Histogram(
            "nodegc_image_gc_target_bytes",
            "Bytes one image GC attempt under disk pressure set out to free: capacity x (100 - "
            "low threshold) / 100 - available, from statvfs (measured, not estimated).",
            buckets=BYTES_BUCKETS,
            registry=r,
        )
        self.freed = Histogram(
            "nodegc_image_gc_freed_bytes",
            "Bytes one image GC attempt gave back to the image filesystem, measured with statvfs "
            "before and after it (build cache, images and dead containers it removed for the "
            "disk; not the images' listed sizes). Observed for attempts that had something to do.",
            buckets=BYTES_BUCKETS,
            registry=r,
        )
        self.deletions = Counter(
            "nodegc_image_deletions",
            "Image removals attempted, by the policy's reason (space, inodes, age, superseded) and "
            "result (success; error: the engine failed it; skipped: in use again or already gone).",
            ["reason", "result"],
            registry=r,
        )
        self.skipped = Counter(
            "nodegc_skipped_images",
            "Images an image GC attempt with something to do kept because they may not go, "
            "counted once per attempt: in_use (a container of any state uses it), min_age "
            "(first seen less than images.minimum_age ago), pinned, other (a parent of one that "
            "stays, or failed earlier in the cycle).",
            ["reason"],
            registry=r,
        )
        self.fs_usage_percent = Gauge(
            "nodegc_image_fs_usage_percent",
            "Image filesystem usage as the kubelet computes it, 100 - floor(available x 100 / "
            "capacity), from statvfs (measured) at the last look; NaN when it reports no capacity.",
            registry=r,
        )
        self._create_children()

    def _create_children(self) -> None:
        for reason in ATTEMPT_REASONS:
            for result in ATTEMPT_RESULTS:
                self.attempts.labels(reason=reason, result=result)
        for result in ATTEMPT_RESULTS:
            self.duration.labels(result=result)
        for removal in REMOVAL_REASONS["image"]:
            for result in DELETION_RESULTS:
                self.deletions.labels(reason=str(removal), result=result)
        for reason in SKIP_REASONS:
            self.skipped.labels(reason=reason)

    def attempt_finished(self, report: CycleReport | None, seconds: float) -> None:
        """Record one finished image GC attempt (`report` None: it failed before planning)."""
        attempt = attempt_of(report)
        self.attempts.labels(reason=attempt.reason, result=attempt.result).inc()
        self.duration.labels(result=attempt.result).observe(max(0.0, seconds))
        if attempt.target_bytes is not None:
            self.target.observe(attempt.target_bytes)
        if attempt.freed_bytes is not None:
            self.freed.observe(attempt.freed_bytes)
        for reason, count in (attempt.skipped or {}).items():
            self.skipped.labels(reason=reason).inc(count)

    def deletion(self, result: RemovalResult) -> None:
        """Count one image removal attempt (other kinds are not image deletions)."""
        if result.kind == "image":
            outcome = _DELETION_RESULT[result.outcome]
            self.deletions.labels(reason=str(result.reason), result=outcome).inc()

    def filesystem(self, fs: FilesystemStats) -> None:
        """The kubelet's usage figure from one measurement."""
        usage = fs.usage_percent if fs.capacity_bytes > 0 else float("nan")
        self.fs_usage_percent.set(usage)
