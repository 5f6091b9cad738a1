"""What the disk asks image GC for: the one home of the trigger and target rules.

Two rules ask for bytes, one for inodes:

- `high_threshold`: usage (the kubelet's percent) at or above `images.high_threshold_percent`
  (100 = off) asks for usage down to `images.low_threshold_percent`;
- `minimum_free`: free space below `images.minimum_free` (bytes; 0 = off) asks for free space
  up to `images.target_free` (0: the same as `minimum_free`);
- `inode_high_threshold`: inode usage at or above the inode high threshold asks for inode usage
  down to the inode low threshold.

Whichever of the byte rules asks for more wins, both for the trigger (either one starts image
GC) and for the amount (once started, image GC frees until both targets are met: the larger of
the two amounts). `trigger` names the rule that asked for the most.

While image GC brings a disk down (`while_freeing`), each trigger sits just past its target, so
what is left to free is asked for down to the target (the kubelet's hysteresis).

Pure: measurements and settings in, figures out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nodegc.config import ImageSettings
from nodegc.model import FilesystemStats

HIGH_THRESHOLD = "high_threshold"
MINIMUM_FREE = "minimum_free"
INODE_HIGH_THRESHOLD = "inode_high_threshold"
PROJECTED = "projected"


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the rules ask of one filesystem: bytes, inodes, and the rule that triggered ("":
    none)."""

    bytes: int
    inodes: int
    trigger: str
    target_free_bytes: int = 0

    @property
    def under_pressure(self) -> bool:
        return bool(self.bytes or self.inodes)


def target_free(settings: ImageSettings) -> int:
    """The free space the byte rule brings a disk back to (0: off)."""
    return int(settings.target_free) or int(settings.minimum_free)


def percent_triggered(fs: FilesystemStats, high: int) -> bool:
    """The kubelet's trigger: usage at or above the high threshold (100 turns it off)."""
    return high < 100 and fs.usage_percent >= high


def minimum_free_triggered(fs: FilesystemStats, minimum_free: int) -> bool:
    """Free space below `minimum_free` (0 turns it off)."""
    return minimum_free > 0 and fs.available_bytes < minimum_free


def inode_triggered(fs: FilesystemStats, high: int) -> bool:
    """Inode usage at or above the inode high threshold (100 off; no inode count: never)."""
    return high < 100 and fs.inodes_total > 0 and fs.inode_usage_percent >= high


def percent_amount(fs: FilesystemStats, high: int, low: int) -> int:
    """Bytes to bring usage down to `low` (the kubelet's arithmetic); 0 with the rule off."""
    if high >= 100:
        return 0
    return max(0, fs.capacity_bytes * (100 - low) // 100 - fs.available_bytes)


def bytes_amount(fs: FilesystemStats, target: int) -> int:
    """Bytes to bring free space up to `target`; 0 with the rule off."""
    return max(0, target - fs.available_bytes) if target > 0 else 0


def bytes_wanted(fs: FilesystemStats, settings: ImageSettings) -> tuple[int, str]:
    """(bytes the byte rules ask for, the rule that triggered and asks for the most; "")."""
    high, low = settings.high_threshold_percent, settings.low_threshold_percent
    by_percent = percent_triggered(fs, high)
    by_bytes = minimum_free_triggered(fs, int(settings.minimum_free))
    if not by_percent and not by_bytes:
        return 0, ""
    pct, size = percent_amount(fs, high, low), bytes_amount(fs, target_free(settings))
    percent_wins = by_percent and (not by_bytes or pct >= size)
    trigger = HIGH_THRESHOLD if percent_wins else MINIMUM_FREE
    return max(pct, size), trigger


def inodes_amount(fs: FilesystemStats, high: int, low: int) -> int:
    """Inodes the inode rule asks for: 0 below `high` (or 100, off), else down to `low`."""
    if not inode_triggered(fs, high):
        return 0
    return max(0, fs.inodes_total * (100 - low) // 100 - fs.inodes_free)


def inodes_wanted(fs: FilesystemStats, settings: ImageSettings) -> int:
    """Inodes the inode rule asks for, with `settings`' inode thresholds (`inodes_amount`)."""
    high, low = settings.inode_high_threshold_percent, settings.inode_low_threshold_percent
    return inodes_amount(fs, high, low)


def wanted(fs: FilesystemStats, settings: ImageSettings) -> Wanted:
    """Everything the rules ask of `fs`: the one function plans and triggers come from."""
    size, trigger = bytes_wanted(fs, settings)
    inodes = inodes_wanted(fs, settings)
    if not trigger and inodes:
        trigger = INODE_HIGH_THRESHOLD
    return Wanted(size, inodes, trigger, target_free(settings))


def pressure_kinds(fs: FilesystemStats, settings: ImageSettings) -> tuple[str, ...]:
    """What a rule asks for: ("bytes",), ("inodes",), both, or ()."""
    w = wanted(fs, settings)
    kinds = (("bytes",) if w.trigger in (HIGH_THRESHOLD, MINIMUM_FREE) else ()) + (
        ("inodes",) if w.inodes else ()
    )
    return kinds


def under_pressure(fs: FilesystemStats, settings: ImageSettings) -> bool:
    """Whether any rule asks image GC to free something on `fs`."""
    return bool(pressure_kinds(fs, settings))


def bytes_met(fs: FilesystemStats, high: int, low: int, target: int) -> bool:
    """Whether `fs` meets the byte targets: usage at or below `low` (with the percent rule on,
    `high` < 100) and free space at or above `target` (with the byte rule on)."""
    if high < 100 and fs.usage_percent > low:
        return False
    return not (target > 0 and fs.available_bytes < target)


def while_freeing(
    settings: ImageSettings, *, found_bytes: bool, found_inodes: bool
) -> ImageSettings:
    """The settings later plans of one image GC are made with, once a plan found bytes
    (`found_bytes`) or inodes wanted: each trigger just past its target, so what is left is
    asked for down to the target whatever the triggers say."""
    update: dict[str, int] = {}
    if found_bytes and settings.high_threshold_percent < 100:
        update["high_threshold_percent"] = settings.low_threshold_percent + 1
    if found_bytes and target_free(settings):
        update["minimum_free"] = target_free(settings)
        update["target_free"] = target_free(settings)
    if found_inodes and settings.inode_high_threshold_percent < 100:
        update["inode_high_threshold_percent"] = settings.inode_low_threshold_percent + 1
    return settings.model_copy(update=update) if update else settings


def capacity_problems(settings: ImageSettings, filesystems: Sequence[FilesystemStats]) -> list[str]:
    """One line per byte target a measured filesystem cannot hold (at or above its capacity):
    configuration errors, found at the first measurement."""
    problems = []
    for name in ("minimum_free", "target_free"):
        value = int(getattr(settings, name))
        for fs in filesystems:
            if value and value >= fs.capacity_bytes:
                problems.append(
                    f"images.{name} = {value:,} bytes: must be below the capacity of the "
                    f"filesystem at {fs.path} ({fs.capacity_bytes:,} bytes)"
                )
    return problems
