"""The daemon's view of the disk: the DiskPressure condition over every filesystem the runtime
uses, and what an image cycle says about the ones without images.

The thresholds apply to each filesystem (`policy.filesystems.pressure_on_each`); this module
only words the answer. With one filesystem the words are what they always were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nodegc.collect.cycle import CycleReport
from nodegc.config import ImageSettings
from nodegc.model import FilesystemStats
from nodegc.units import human_bytes

Observed = Sequence[tuple[FilesystemStats, tuple[str, ...]]]

_REASONS = {
    ("bytes",): "UsageAboveHighThreshold",
    ("inodes",): "InodeUsageAboveHighThreshold",
    ("bytes", "inodes"): "UsageAndInodeUsageAboveHighThreshold",
}


def _roles(fs: FilesystemStats) -> str:
    return ", ".join(str(r) for r in fs.roles) or "measured"


def _usage(fs: FilesystemStats, images: ImageSettings) -> str:
    return (
        f"{fs.usage_percent}% used (high threshold {images.high_threshold_percent}%), "
        f"{fs.inode_usage_percent}% of inodes used "
        f"(inode high threshold {images.inode_high_threshold_percent}%)"
    )


def disk_pressure(observed: Observed, images: ImageSettings) -> tuple[bool, str, str]:
    """DiskPressure's status, reason and message from each filesystem and what is above its
    high threshold there. The reason names the kinds over all of them (bytes, inodes, both);
    the message names every filesystem (those under pressure first) with its roles, usage and
    the kinds above the threshold."""
    kinds = tuple(k for k in ("bytes", "inodes") if any(k in ks for _, ks in observed))
    reason = _REASONS.get(kinds, "UsageBelowHighThreshold")
    if len(observed) == 1:
        fs, _ = observed[0]
        return bool(kinds), reason, f"{fs.path} is {_usage(fs, images)}"
    ordered = sorted(observed, key=lambda o: not o[1])  # stable: under pressure first
    texts = []
    for fs, ks in ordered:
        above = f": above the high threshold ({' and '.join(ks)})" if ks else ""
        texts.append(f"{fs.path} ({_roles(fs)}) is {_usage(fs, images)}{above}")
    return bool(kinds), reason, "; ".join(texts)


def filesystems_detail(observed: Observed) -> list[dict[str, Any]]:
    """/status details: each filesystem watched with its roles, usage and pressure kinds."""
    return [
        {
            "path": fs.path,
            "roles": [str(r) for r in fs.roles],
            "usage_percent": fs.usage_percent,
            "inode_usage_percent": fs.inode_usage_percent,
            "pressure": list(ks),
        }
        for fs, ks in observed
    ]


def pressure_log_fields(observed: Observed) -> dict[str, Any]:
    """The log fields naming the filesystems under pressure: path -> kinds."""
    return {"filesystems": {fs.path: list(ks) for fs, ks in observed if ks}}


def other_filesystems_message(report: CycleReport) -> str:
    """What an image cycle left on the filesystems without images that were under pressure:
    each with its usage now, its low threshold and whether it got there ("" when none was)."""
    plans = [p for p in report.plan.filesystems if p.under_pressure and not p.images]
    later = {fs.path: fs for fs in report.filesystems_after}
    short = {p.filesystem.path for p, _ in report.filesystems_short}
    texts = []
    for p in plans:
        fs = later.get(p.filesystem.path, p.filesystem)
        freed = max(0, fs.available_bytes - p.filesystem.available_bytes)
        state = "short of" if fs.path in short else "at or below"
        texts.append(
            f"{fs.path} ({_roles(fs)}) is {fs.usage_percent}% used, {state} its low threshold "
            f"{p.low_threshold_percent}% (removing dead containers freed {human_bytes(freed)})"
        )
    return "; ".join(texts)


def image_outcome(
    report: CycleReport, fs: FilesystemStats, removed: int, explain: Callable[[], str]
) -> tuple[str, str]:
    """ImageGCSucceeded's reason and message: the image filesystem's figures, and those of
    every other filesystem that was under pressure (`other_filesystems_message`); `explain()`
    says where the space is when the target was out of reach."""
    plan = report.image_plan
    others = other_filesystems_message(report)
    if not plan.under_pressure and not others:
        return "BelowHighThreshold", (
            f"{fs.path} is {fs.usage_percent}% used, below the high threshold "
            f"{plan.high_threshold_percent}%; removed {removed} images"
        )
    reason = "TargetReached" if report.target_reached else "FreeDiskSpaceFailed"
    if not plan.under_pressure:
        return reason, others
    message = (
        f"freed {human_bytes(report.disk_bytes_freed)} (measured) of "
        f"{human_bytes(plan.bytes_to_free)} needed; {fs.path} is {fs.usage_percent}% used"
    )
    if plan.inodes_to_free:
        message += (
            f"; freed {report.image_inodes_freed:,} inodes of {plan.inodes_to_free:,} "
            f"needed, {fs.inode_usage_percent}% of inodes used"
        )
    if not report.target_reached:  # where the space is: what nodegc may not touch
        message += explain()
    return reason, message + (f"; {others}" if others else "")
