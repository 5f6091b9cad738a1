"""How fast a filesystem fills, and when it will cross the high threshold: the daemon's pressure
checks feed a short smoothed estimate (an exponentially weighted average of the rate between
consecutive measurements). Pure: measurements and times (seconds, any monotonic origin) in.

`images.lookahead`: when usage is projected to cross the high threshold (or free space to fall
below `minimum_free`) within that time at the current rate, image GC starts now as if it had
(`projected`). Never on a flat or falling disk: a rate at or below zero projects nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodegc.config import ImageSettings
from nodegc.model import FilesystemStats
from nodegc.policy import targets

# Weight of the newest rate in the average: a few checks make the estimate, one spike does not.
ALPHA = 0.3
# Rates between this many measurements at least before a projection is made.
MIN_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class FillRate:
    """The smoothed rate (bytes per second; > 0: filling) and the last measurement."""

    bytes_per_second: float
    available_bytes: int
    at: float
    samples: int  # measurements folded in

    @property
    def ready(self) -> bool:
        return self.samples > MIN_SAMPLES


def update(previous: FillRate | None, fs: FilesystemStats, at: float) -> FillRate:
    """The estimate with one more measurement of `fs` at `at` folded in."""
    if previous is None:
        return FillRate(0.0, fs.available_bytes, at, 1)
    elapsed = at - previous.at
    if elapsed <= 0:
        return previous
    rate = (previous.available_bytes - fs.available_bytes) / elapsed
    if previous.samples > 1:
        rate = ALPHA * rate + (1 - ALPHA) * previous.bytes_per_second
    return FillRate(rate, fs.available_bytes, at, previous.samples + 1)


def available_at_trigger(fs: FilesystemStats, settings: ImageSettings) -> int:
    """The most free space at which a byte rule triggers (-1: none can): usage >= high once
    available <= (capacity * (101 - high) - 1) // 100; below minimum_free once it is less."""
    levels = [-1]
    high = settings.high_threshold_percent
    if high < 100:
        levels.append((fs.capacity_bytes * (101 - high) - 1) // 100)
    if int(settings.minimum_free):
        levels.append(int(settings.minimum_free) - 1)
    return max(levels)


def seconds_until(available: int, level: int, rate: FillRate) -> float | None:
    """Seconds until free space falls to `level` at the current rate; None: never (not filling,
    or no estimate yet); 0 when it is there already."""
    if available <= level:
        return 0.0
    if not rate.ready or rate.bytes_per_second <= 0 or level < 0:
        return None
    return (available - level) / rate.bytes_per_second


def seconds_until_high(
    fs: FilesystemStats, settings: ImageSettings, rate: FillRate
) -> float | None:
    return seconds_until(fs.available_bytes, available_at_trigger(fs, settings), rate)


def seconds_until_full(fs: FilesystemStats, rate: FillRate) -> float | None:
    return seconds_until(fs.available_bytes, 0, rate)


def projected(fs: FilesystemStats, settings: ImageSettings, rate: FillRate) -> bool:
    """Whether image GC should start now for `images.lookahead`: not triggered yet, filling,
    and projected to trigger within the lookahead."""
    lookahead = settings.lookahead.total_seconds()
    if lookahead <= 0 or targets.under_pressure(fs, settings):
        return False
    eta = seconds_until_high(fs, settings, rate)
    return eta is not None and eta <= lookahead
