"""What the kubelet's own image GC would do now, for `nodegc report` beside nodegc's plan.

Pure: the kubelet's thresholds (read by nodegc.config.kubelet; any object with the two fields
will do, so the policy imports nothing that reads files) and a filesystem measurement in, a
figure out. The disk rule itself is policy.images.bytes_to_free; the line `report` prints is
rendered by nodegc.cli.kubelet.
"""

from __future__ import annotations

from typing import Protocol

from nodegc.model import FilesystemStats
from nodegc.policy.images import bytes_to_free


class KubeletThresholds(Protocol):
    """The kubelet's image GC thresholds (imageGCHighThresholdPercent, ...LowThresholdPercent)."""

    @property
    def high_threshold_percent(self) -> int: ...

    @property
    def low_threshold_percent(self) -> int: ...


class EvictionThreshold(Protocol):
    """The kubelet's hard eviction threshold of the image filesystem (`imagefs.available`):
    exactly one of a percentage and a byte count set."""

    @property
    def percent(self) -> float | None: ...

    @property
    def bytes(self) -> int | None: ...


def eviction_reached(fs: FilesystemStats, eviction: EvictionThreshold | None) -> bool:
    """Whether the filesystem is past the kubelet's hard eviction threshold (its eviction
    manager would reclaim images and evict pods): less available than the threshold."""
    if eviction is None:
        return False
    if eviction.percent is not None:
        return fs.available_bytes * 100 < eviction.percent * fs.capacity_bytes
    return eviction.bytes is not None and fs.available_bytes < eviction.bytes


def kubelet_bytes_to_free(fs: FilesystemStats, k: KubeletThresholds) -> int:
    """Bytes the kubelet's image GC would free now: 0 below its high threshold (or when off)."""
    return bytes_to_free(fs, k.high_threshold_percent, k.low_threshold_percent)
