"""The daemon's view of the disk: the DiskPressure condition over every filesystem the runtime
uses, and what an image cycle says about the ones without images.

The thresholds apply to each filesystem (`policy.filesystems.pressure_on_each`); this module
only words the answer. With one filesystem the words are what they always were.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from nodegc.collect.cycle import CycleReport
from nodegc.config import ImageSettings
from nodegc.model import FilesystemStats
from nodegc.policy import targets
from nodegc.units import human_bytes

Observed = Sequence[tuple[FilesystemStats, tuple[str, ...]]]

# DiskPressure's reason: the rule that triggered (`policy.targets` trigger values) over every
# filesystem; the percent rule's words are what they always were.
_BYTES = {
    targets.HIGH_THRESHOLD: "UsageAboveHighThreshold",
    targets.MINIMUM_FREE: "FreeBelowMinimumFree",
}
_INODES = "InodeUsageAboveHighThreshold"
_PROJECTED = "UsageProjectedAboveHighThreshold"


def _trigger(fs: FilesystemStats, images: ImageSettings) -> str:
    """The rule that triggered on `fs` ("" for none): the policy's `wanted` says."""
    return targets.wanted(fs, images).trigger


def _roles(fs: FilesystemStats) -> str:
    return ", ".join(str(r) for r in fs.roles) or "measured"


def _usage(fs: FilesystemStats, images: ImageSettings) -> str:
    text = (
        f"{fs.usage_percent}% used (high threshold {images.high_threshold_percent}%), "
        f"{fs.inode_usage_percent}% of inodes used "
        f"(inode high threshold {images.inode_high_threshold_percent}%)"
    )
    if _trigger(fs, images) == targets.MINIMUM_FREE:
        text += (
            f", {human_bytes(fs.available_bytes)} free "
            f"(minimum_free {human_bytes(int(images.minimum_free))})"
        )
    return text


def triggers(
    observed: Observed, images: ImageSettings, projected: Collection[str] = ()
) -> list[str]:
    """The rules that triggered over every filesystem (`trigger` values: `high_threshold`,
    `minimum_free`, `inode_high_threshold`, `projected`), each once, in that order."""
    found = {_trigger(fs, images) for fs, ks in observed if ks}
    if any("inodes" in ks for _, ks in observed):
        found.add(targets.INODE_HIGH_THRESHOLD)
    if projected and not any(ks for _, ks in observed):
        found.add(targets.PROJECTED)
    order = [
        targets.HIGH_THRESHOLD,
        targets.MINIMUM_FREE,
        targets.INODE_HIGH_THRESHOLD,
        targets.PROJECTED,
    ]
    return [t for t in order if t in found]


def _reason(rules: Sequence[str]) -> str:
    """`UsageAboveHighThreshold`, `FreeBelowMinimumFree`, `InodeUsageAboveHighThreshold`, joined
    with "And" (the byte part's "Inode" prefix kept: `UsageAndInodeUsageAboveHighThreshold`);
    `UsageProjectedAboveHighThreshold` for `projected`; `UsageBelowHighThreshold` for none."""
    if targets.PROJECTED in rules:
        return _PROJECTED
    parts = [_BYTES[r] for r in rules if r in _BYTES]
    if targets.INODE_HIGH_THRESHOLD in rules:
        parts.append(_INODES)
    if not parts:
        return "UsageBelowHighThreshold"
    if parts[-1] == _INODES and parts[0] == _BYTES[targets.HIGH_THRESHOLD] and len(parts) == 2:
        return "UsageAndInodeUsageAboveHighThreshold"
    return "And".join(parts)


def disk_pressure(
    observed: Observed, images: ImageSettings, projected: Collection[str] = ()
) -> tuple[bool, str, str]:
    """DiskPressure's status, reason and message from each filesystem and what is above its
    high threshold there. The reason names the rules that triggered over all of them
    (`triggers`; `projected`: the paths `images.lookahead` projects a crossing on, status
    False); the message names every filesystem (those under pressure first) with its roles,
    usage and the kinds above the threshold."""
    pressure = any(ks for _, ks in observed)
    reason = _reason(triggers(observed, images, projected))
    soon = [] if pressure else [p for p in projected if p in {fs.path for fs, _ in observed}]
    ahead = (
        f"; projected to cross the high threshold within images.lookahead on {', '.join(soon)}"
        if soon
        else ""
    )
    if len(observed) == 1:
        fs, _ = observed[0]
        return pressure, reason, f"{fs.path} is {_usage(fs, images)}{ahead}"
    ordered = sorted(observed, key=lambda o: not o[1])  # stable: under pressure first
    texts = []
    for fs, ks in ordered:
        above = f": above the high threshold ({' and '.join(ks)})" if ks else ""
        texts.append(f"{fs.path} ({_roles(fs)}) is {_usage(fs, images)}{above}")
    return pressure, reason, "; ".join(texts) + ahead


def filesystems_detail(observed: Observed, images: ImageSettings) -> list[dict[str, Any]]:
    """/status details: each filesystem watched with its roles, usage, pressure kinds and the
    rule that triggered there (`trigger`, None below every threshold)."""
    return [
        {
            "path": fs.path,
            "roles": [str(r) for r in fs.roles],
            "usage_percent": fs.usage_percent,
            "inode_usage_percent": fs.inode_usage_percent,
            "pressure": list(ks),
            "trigger": _trigger(fs, images) or None,
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


def pressure_change_text(observed: Any, pressure: bool, projected: bool, unchanged: bool) -> str:
    """The log line of a DiskPressure change: the kinds under pressure, a projected crossing,
    no pressure (first look, or only the reason changed) or pressure relieved."""
    if pressure:
        kinds = sorted({k for _, ks in observed for k in ks})
        return f"disk pressure ({' and '.join(kinds)})"
    if projected:
        return "disk pressure projected within images.lookahead"
    return "no disk pressure" if unchanged else "disk pressure relieved"
