"""`nodegc report` beside the kubelet: what the kubelet's own image GC would do now, as one line
for the table and as JSON. The figure is the policy's (nodegc.policy.kubelet); the settings were
read by nodegc.config.kubelet; this module only renders."""

from __future__ import annotations

from typing import Any

from nodegc.config.kubelet import KubeletGC
from nodegc.durations import format_duration
from nodegc.model import FilesystemStats
from nodegc.policy.kubelet import eviction_reached, kubelet_bytes_to_free
from nodegc.units import human_bytes


def kubelet_json(fs: FilesystemStats, k: KubeletGC) -> dict[str, Any]:
    """The kubelet's settings and what it would do now, for `report --output json`."""
    return {
        "source": k.source or None,
        "high_threshold_percent": k.high_threshold_percent,
        "low_threshold_percent": k.low_threshold_percent,
        "minimum_age": format_duration(k.minimum_age),
        "maximum_age": format_duration(k.maximum_age),
        "usage_percent": fs.usage_percent,
        "bytes_to_free": kubelet_bytes_to_free(fs, k),
        "eviction_threshold": k.imagefs_eviction.describe() if k.imagefs_eviction else None,
        "eviction_reached": eviction_reached(fs, k.imagefs_eviction),
        "summary": kubelet_would(fs, k),
    }


def kubelet_would(fs: FilesystemStats, k: KubeletGC) -> str:
    """One line: what the kubelet's own image GC would do at the filesystem's current usage.

    The kubelet's arithmetic (image_gc_manager.go): usage = 100 - floor(available*100/capacity);
    at usage >= high it frees capacity*(100-low)/100 - available bytes of unused images.
    """
    usage = fs.usage_percent
    head = f"{k.label}: usage {usage}%"
    if k.high_threshold_percent >= 100:
        line = f"{head}: its image GC by disk usage is off (high threshold 100%)"
    elif usage < k.high_threshold_percent:
        line = (
            f"{head} is below its high threshold {k.high_threshold_percent}%; it would free nothing"
        )
    else:
        line = (
            f"{head} is at or above its high threshold {k.high_threshold_percent}%; it would free "
            f"{human_bytes(kubelet_bytes_to_free(fs, k))} of unused images to reach "
            f"{k.low_threshold_percent}%"
        )
    if k.maximum_age:
        line += f"; images unused for {format_duration(k.maximum_age)} go in any case"
    if k.imagefs_eviction is not None and eviction_reached(fs, k.imagefs_eviction):
        line += (
            f"; but past {k.imagefs_eviction.describe()} its eviction manager would reclaim "
            "images and evict pods"
        )
    return line
