"""The summary lines above the tables: what image GC asks for and why (which rule of
`policy.targets` triggered), what it planned and the projected usage; what the build cache
holds."""

from __future__ import annotations

from nodegc.model import BuildCachePlan, FilesystemStats, ImagePlan
from nodegc.policy.targets import MINIMUM_FREE
from nodegc.units import human_bytes


def image_summary(p: ImagePlan, fs: FilesystemStats) -> str:
    n = len(p.removals)
    head = image_head(p, fs)
    before = (
        f" after {human_bytes(p.freed_before)} of build cache and dead containers"
        if p.freed_before
        else ""
    )
    tail = (
        f"; planned {human_bytes(p.bytes_planned)} in {n} image{'s' * (n != 1)}{before}, "
        f"projected usage {fs.usage_percent_after(p.freed_before + p.bytes_planned)}%"
    )
    if p.inodes_to_free:
        projected = projected_inode_usage(p, fs)
        tail += (
            f"; inode usage {p.inode_usage_percent}% >= inode high threshold "
            f"{p.inode_high_threshold_percent}%: free {p.inodes_to_free:,} inodes to reach "
            f"{p.inode_low_threshold_percent}%, projected "
            + (f"{projected}%" if projected is not None else "unknown (measured while removing)")
        )
    if p.under_pressure and not p.target_reachable:
        tail += " — NOT ENOUGH removable images to reach the low threshold"
    return head + tail


def image_head(p: ImagePlan, fs: FilesystemStats) -> str:
    """The header's first part: which rule triggered (`policy.targets`) and what it asks for."""
    if p.trigger == MINIMUM_FREE:
        return (
            f"Image GC: free space {human_bytes(fs.available_bytes)} is below minimum_free: "
            f"free {human_bytes(p.bytes_to_free)} to reach {target_text(p)}"
        )
    if p.bytes_to_free:
        return (
            f"Image GC: usage {p.usage_percent}% >= high threshold {p.high_threshold_percent}%: "
            f"free {human_bytes(p.bytes_to_free)} to reach {target_text(p)}"
        )
    if p.high_threshold_percent >= 100 and not p.target_free_bytes:
        return "Image GC by disk usage is off (high threshold 100%)"
    free = f" and free space {human_bytes(fs.available_bytes)} is not below minimum_free"
    return (
        f"Image GC: usage {p.usage_percent}% is below the high threshold "
        f"{p.high_threshold_percent}%{free if p.target_free_bytes else ''}: no space to free"
    )


def target_text(p: ImagePlan) -> str:
    """What the byte targets ask for: "80%", "20.0 GiB free" or both."""
    parts = []
    if p.high_threshold_percent < 100:
        parts.append(f"{p.low_threshold_percent}%")
    if p.target_free_bytes:
        parts.append(f"{human_bytes(p.target_free_bytes)} free")
    return " and ".join(parts) or "the target"


def build_cache_summary(p: BuildCachePlan) -> str | None:
    """One line about the build cache; None when it was not looked at or holds no record (an
    engine without BuildKit, such as Podman, lists none: silent)."""
    if not p.observed or not p.decisions:
        return None
    n = len(p.removals)
    return (
        f"Build cache: {len(p.decisions)} record{'s' * (len(p.decisions) != 1)}, "
        f"{human_bytes(p.bytes_reclaimable)} reclaimable; planned "
        f"{human_bytes(p.bytes_planned)} in {n} record{'s' * (n != 1)}"
    )


def projected_inode_usage(p: ImagePlan, fs: FilesystemStats) -> int | None:
    """Inode usage once the planned removals are done; None where the runtime cannot tell
    per-layer inode counts (Docker, CRI): the closed loop measures instead."""
    planned = p.inodes_planned
    if planned is None:
        return None
    if fs.inodes_total <= 0:
        return 0
    free = min(fs.inodes_total, fs.inodes_free + planned)
    return 100 - (free * 100) // fs.inodes_total
