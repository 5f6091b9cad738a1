"""Prometheus metrics of the daemon, on an injected registry (never the process-global one).

The metric names and labels are a contract (dashboards and alerts use them). Every label child
whose values are known in advance is created at construction, so a series exists (at 0) from the
first scrape and `rate()` / `absent()` behave from the start.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from nodegc import __version__
from nodegc.collect.cycle import CycleReport
from nodegc.collect.usage import SpaceReport
from nodegc.config import ImageSettings
from nodegc.daemon.image_gc_metrics import ImageGCMetrics
from nodegc.model import REMOVAL_REASONS, FilesystemStats, Outcome, RemovalResult, Snapshot
from nodegc.policy.images import under_disk_pressure, under_inode_pressure
from nodegc.policy.targets import minimum_free_triggered

log = logging.getLogger(__name__)

KINDS = ("image", "container")
RESULTS = ("success", "failure")
# A cycle lists, plans and removes: from tens of milliseconds to minutes on a busy engine.
CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    """Every nodegc metric, registered on `registry` (a new, private registry by default).

    `record_removal` has the Collector listener signature: pass `metrics.record_removal` in the
    collector's `listeners` and removal counters move where the removal happens. The image GC
    families with the kubelet's names (KEP-6053) are `image_gc` (daemon/image_gc_metrics.py).
    """

    def __init__(self, registry: CollectorRegistry | None = None, node: str = "") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.node = node
        r = self.registry

        self._register_cycles(r)
        self._register_removals(r)
        self._register_image_filesystem(r)
        self._register_filesystems(r)
        self._register_inventory(r)
        self._register_settings(r)

        self.image_gc = ImageGCMetrics(r)
        self._create_children()
        self.set_info("")

    def _register_cycles(self, r: CollectorRegistry) -> None:
        """The cycles: their duration, count by result, last success."""
        self.cycle_duration = Histogram(
            "nodegc_cycle_duration_seconds",
            "Wall time of one garbage-collection cycle, by kind (image or container).",
            ["kind"],
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        self.cycles = Counter(
            "nodegc_cycles_total",
            "Garbage-collection cycles run, by kind and result (success or failure).",
            ["kind", "result"],
            registry=r,
        )
        self.last_success = Gauge(
            "nodegc_last_success_timestamp_seconds",
            "Unix time of the end of the last successful cycle, by kind (0: none yet).",
            ["kind"],
            registry=r,
        )

    def _register_removals(self, r: CollectorRegistry) -> None:
        """What removals did: by kind and reason, in objects and bytes; failures, skips, and
        the bytes image GC measured."""
        self.removed = Counter(
            "nodegc_removed_total",
            "Objects removed, by kind and the policy's reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.removed_bytes = Counter(
            "nodegc_removed_bytes",
            "Bytes removals let go, by kind and the policy's reason, as nodegc accounts each one "
            "(estimated: an image's layers no other image holds, from the layer ledger; a build "
            "cache record's or a container's size as the engine lists it). The measured total "
            "is nodegc_bytes_freed_total.",
            ["kind", "reason"],
            registry=r,
        )
        self.removal_failures = Counter(
            "nodegc_removal_failures_total",
            "Removals the runtime failed (an error other than in-use or already-gone), by kind.",
            ["kind"],
            registry=r,
        )
        self.removal_skips = Counter(
            "nodegc_removal_skips_total",
            "Planned removals skipped because the object was in use again or already gone.",
            ["kind"],
            registry=r,
        )
        self.bytes_freed = Counter(
            "nodegc_bytes_freed_total",
            "Bytes image GC gave back to the image filesystem, as statvfs measured it around "
            "each image cycle (not the images' listed sizes).",
            registry=r,
        )

    def _register_image_filesystem(self, r: CollectorRegistry) -> None:
        """The image filesystem at the last look."""
        self.fs_capacity = Gauge(
            "nodegc_filesystem_capacity_bytes",
            "Capacity of the image filesystem.",
            registry=r,
        )
        self.fs_available = Gauge(
            "nodegc_filesystem_available_bytes",
            "Bytes of the image filesystem available to unprivileged users.",
            registry=r,
        )
        self.fs_usage_ratio = Gauge(
            "nodegc_filesystem_usage_ratio",
            "Used fraction of the image filesystem, (capacity - available) / capacity, 0..1.",
            registry=r,
        )
        self.fs_inodes_total = Gauge(
            "nodegc_filesystem_inodes",
            "Inodes of the image filesystem.",
            registry=r,
        )
        self.fs_inodes_free = Gauge(
            "nodegc_filesystem_inodes_free",
            "Free inodes of the image filesystem (available to unprivileged users).",
            registry=r,
        )

    def _register_filesystems(self, r: CollectorRegistry) -> None:
        """Every filesystem the runtime uses (the image filesystem among them), one series
        each, and the last breakdown by kind."""
        labels = ("filesystem", "roles")
        self.each_fs_capacity = Gauge(
            "nodegc_filesystems_capacity_bytes",
            "Capacity of each filesystem the runtime uses (roles: images, containers, logs, "
            "volumes), at the last look.",
            labels,
            registry=r,
        )
        self.each_fs_available = Gauge(
            "nodegc_filesystems_available_bytes",
            "Bytes of each filesystem the runtime uses available to unprivileged users.",
            labels,
            registry=r,
        )
        self.each_fs_usage_ratio = Gauge(
            "nodegc_filesystems_usage_ratio",
            "Used fraction of each filesystem the runtime uses, 0..1.",
            labels,
            registry=r,
        )
        self.each_fs_inodes_free = Gauge(
            "nodegc_filesystems_inodes_free",
            "Free inodes of each filesystem the runtime uses.",
            labels,
            registry=r,
        )
        self.fs_bytes = Gauge(
            "nodegc_filesystem_bytes",
            "Bytes of each measured filesystem by kind (images_in_use, images_unused, "
            "build_cache_*, containers_running/dead, logs, volumes_*, rest, reserved), from the "
            "last breakdown (made when image GC could not reach its target).",
            ["filesystem", "kind"],
            registry=r,
        )

    def _register_inventory(self, r: CollectorRegistry) -> None:
        """What the node holds at the last look, and whether the runtime answers."""
        self.images = Gauge("nodegc_images", "Images on the node at the last look.", registry=r)
        self.image_bytes = Gauge(
            "nodegc_image_bytes",
            "Sum of the images' sizes at the last look (shared layers count once per image).",
            registry=r,
        )
        self.containers = Gauge(
            "nodegc_containers", "Containers in any state at the last look.", registry=r
        )
        self.dead_containers = Gauge(
            "nodegc_dead_containers",
            "Containers container GC may collect (created, exited or dead) at the last look.",
            registry=r,
        )
        self.runtime_up_gauge = Gauge(
            "nodegc_runtime_up",
            "1 when the last request to the container runtime succeeded, else 0.",
            registry=r,
        )

    def _register_settings(self, r: CollectorRegistry) -> None:
        """The thresholds in effect, disk pressure, and who we are."""
        self.thresholds = Gauge(
            "nodegc_image_gc_threshold_percent",
            "The image GC thresholds in effect (settings, or derived from the kubelet's "
            "configuration), percent: resource bytes or inodes, level high or low (a high "
            "threshold of 100 turns that rule off).",
            ["resource", "level"],
            registry=r,
        )
        self.disk_pressure = Gauge(
            "nodegc_disk_pressure",
            "1 when image filesystem usage, or its inode usage, is at or above the image GC high "
            "threshold, or the inode high threshold (below 100).",
            registry=r,
        )
        self.info = Gauge(
            "nodegc_info",
            "Always 1; labels name the nodegc version, the node and the runtime.",
            ["version", "node", "runtime"],
            registry=r,
        )

    def _create_children(self) -> None:
        for kind in KINDS:
            self.cycle_duration.labels(kind=kind)
            self.last_success.labels(kind=kind)
            self.removal_failures.labels(kind=kind)
            self.removal_skips.labels(kind=kind)
            for result in RESULTS:
                self.cycles.labels(kind=kind, result=result)
        for kind in (*KINDS, "build-cache"):
            for reason in REMOVAL_REASONS[kind]:
                self.removed.labels(kind=kind, reason=str(reason))
                self.removed_bytes.labels(kind=kind, reason=str(reason))
        self.removal_failures.labels(kind="build-cache")
        self.removal_skips.labels(kind="build-cache")

    # -- cycles -----------------------------------------------------------------------------
    def cycle_finished(
        self,
        kind: str,
        seconds: float,
        succeeded: bool,
        at_timestamp: float | datetime,
        report: CycleReport | None = None,
    ) -> None:
        """Count one finished cycle of `kind` and observe its duration.

        `at_timestamp` (Unix seconds or an aware datetime) becomes the last-success time when the
        cycle succeeded. An image cycle is also one image GC attempt (`report` None: it failed
        before it could plan). Raises ValueError for a kind other than "image" or "container".
        """
        if kind not in KINDS:
            raise ValueError(f"cycle kind {kind!r}: must be one of {', '.join(KINDS)}")
        if kind == "image":
            self.image_gc.attempt_finished(report, seconds)
        self.cycle_duration.labels(kind=kind).observe(max(0.0, seconds))
        self.cycles.labels(kind=kind, result="success" if succeeded else "failure").inc()
        if succeeded:
            when = at_timestamp.timestamp() if isinstance(at_timestamp, datetime) else at_timestamp
            self.last_success.labels(kind=kind).set(when)

    # -- removals ---------------------------------------------------------------------------
    def record_removal(self, result: RemovalResult) -> None:
        """Count one removal attempt by its outcome (a Collector listener; never raises)."""
        kind = result.kind
        self.image_gc.deletion(result)
        if result.outcome is Outcome.REMOVED:
            reason = str(result.reason)
            self.removed.labels(kind=kind, reason=reason).inc()
            self.removed_bytes.labels(kind=kind, reason=reason).inc(max(0, result.size_bytes))
        elif result.outcome is Outcome.FAILED:
            self.removal_failures.labels(kind=kind).inc()
        elif result.outcome in (Outcome.SKIPPED, Outcome.GONE):
            self.removal_skips.labels(kind=kind).inc()
        else:  # pragma: no cover - a new Outcome member must be mapped here
            log.warning("removal outcome not counted", extra={"outcome": str(result.outcome)})

    def image_cycle_freed(self, measured_bytes: int) -> None:
        """Add what one image cycle gave back to the disk (measured; never negative)."""
        if measured_bytes > 0:
            self.bytes_freed.inc(measured_bytes)

    # -- observations -----------------------------------------------------------------------
    def observe_filesystem(
        self,
        fs: FilesystemStats,
        high_threshold_percent: int,
        inode_high_threshold_percent: int = 100,
        minimum_free: int = 0,
    ) -> None:
        """Set the filesystem gauges, and disk pressure as the kubelet's usage >= high threshold.

        A high threshold of 100 turns image GC by disk usage off, and with it disk pressure (as the
        DiskPressure condition). A filesystem reporting no capacity sets the usage ratio to NaN
        and leaves disk pressure as it was: nothing can be said about it.
        """
        self.fs_capacity.set(fs.capacity_bytes)
        self.fs_available.set(fs.available_bytes)
        self.fs_inodes_total.set(fs.inodes_total)
        self.fs_inodes_free.set(fs.inodes_free)
        self.image_gc.filesystem(fs)
        if fs.capacity_bytes <= 0:
            self.fs_usage_ratio.set(math.nan)
            return
        ratio = fs.used_bytes / fs.capacity_bytes
        self.fs_usage_ratio.set(min(1.0, max(0.0, ratio)))
        pressure = (
            under_disk_pressure(fs, high_threshold_percent)
            or under_inode_pressure(fs, inode_high_threshold_percent)
            or minimum_free_triggered(fs, minimum_free)
        )
        self.disk_pressure.set(1 if pressure else 0)

    def set_thresholds(self, images: ImageSettings) -> None:
        """The thresholds in effect (they change on a reload)."""
        for resource, high, low in (
            ("bytes", images.high_threshold_percent, images.low_threshold_percent),
            ("inodes", images.inode_high_threshold_percent, images.inode_low_threshold_percent),
        ):
            self.thresholds.labels(resource=resource, level="high").set(high)
            self.thresholds.labels(resource=resource, level="low").set(low)

    def observe_snapshot(self, snapshot: Snapshot) -> None:
        """Set the image and container counts from one complete snapshot."""
        self.images.set(len(snapshot.images))
        self.image_bytes.set(sum(i.size_bytes for i in snapshot.images))
        self.containers.set(len(snapshot.containers))
        self.dead_containers.set(sum(1 for c in snapshot.containers if c.state.is_dead))
        self.observe_filesystems(snapshot.measured)

    def observe_space(self, space: SpaceReport) -> None:
        """Replace `nodegc_filesystem_bytes{filesystem,kind}` with this breakdown."""
        self.fs_bytes.clear()
        for b in space.filesystems:
            for kind, size in b.by_kind:
                self.fs_bytes.labels(filesystem=b.path, kind=str(kind)).set(size)

    def observe_filesystems(self, filesystems: Sequence[FilesystemStats]) -> None:
        """Replace the per-filesystem series with these measurements."""
        gauges = (
            self.each_fs_capacity,
            self.each_fs_available,
            self.each_fs_usage_ratio,
            self.each_fs_inodes_free,
        )
        for gauge in gauges:
            gauge.clear()
        for fs in filesystems:
            key = {"filesystem": fs.path, "roles": ",".join(str(r) for r in fs.roles)}
            self.each_fs_capacity.labels(**key).set(fs.capacity_bytes)
            self.each_fs_available.labels(**key).set(fs.available_bytes)
            ratio = fs.used_bytes / fs.capacity_bytes if fs.capacity_bytes > 0 else math.nan
            self.each_fs_usage_ratio.labels(**key).set(ratio)
            self.each_fs_inodes_free.labels(**key).set(fs.inodes_free)

    def runtime_up(self, up: bool) -> None:
        """Record whether the last request to the runtime succeeded."""
        self.runtime_up_gauge.set(1 if up else 0)

    def set_info(self, runtime: str) -> None:
        """Replace the info series: nodegc_info{version, node, runtime} 1."""
        self.info.clear()
        self.info.labels(version=__version__, node=self.node, runtime=runtime).set(1)
