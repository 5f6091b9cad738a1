"""The daemon's fill-rate watch: each pressure check folds its measurement into the smoothed
estimate (`policy.fillrate`), exports it (`nodegc_filesystem_fill_rate_bytes_per_second`,
`nodegc_filesystem_seconds_until_high`, `nodegc_filesystem_seconds_until_full`; NaN while
nothing is projected), keeps it in /status (`details.fill_rate`) and says when
`images.lookahead` asks for image GC now (`projected`)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from nodegc.config import ImageSettings
from nodegc.model import FilesystemStats
from nodegc.policy import fillrate

log = logging.getLogger(__name__)


class FillWatch:
    def __init__(self, registry: CollectorRegistry, board: Any) -> None:
        self.board = board
        self.rate: fillrate.FillRate | None = None
        self.path: str | None = None
        labels = ["filesystem"]
        self.rate_gauge = Gauge(
            "nodegc_filesystem_fill_rate_bytes_per_second",
            "Smoothed rate at which the image filesystem fills (negative: it frees), from the "
            "pressure checks.",
            labels,
            registry=registry,
        )
        self.high_gauge = Gauge(
            "nodegc_filesystem_seconds_until_high",
            "Seconds until usage crosses the high threshold (or free space falls below "
            "minimum_free) at the current fill rate; NaN: not filling or no estimate yet.",
            labels,
            registry=registry,
        )
        self.full_gauge = Gauge(
            "nodegc_filesystem_seconds_until_full",
            "Seconds until the filesystem is full at the current fill rate; NaN: not filling.",
            labels,
            registry=registry,
        )

    def check(self, fs: FilesystemStats, settings: ImageSettings) -> bool:
        """Fold in one measurement; True when image GC should start now (`projected`)."""
        if fs.path != self.path:  # another filesystem: start again
            self.rate, self.path = None, fs.path
        self.rate = fillrate.update(self.rate, fs, time.monotonic())
        until_high = fillrate.seconds_until_high(fs, settings, self.rate)
        until_full = fillrate.seconds_until_full(fs, self.rate)
        self.rate_gauge.labels(filesystem=fs.path).set(self.rate.bytes_per_second)
        self.high_gauge.labels(filesystem=fs.path).set(_or_nan(until_high))
        self.full_gauge.labels(filesystem=fs.path).set(_or_nan(until_full))
        self.board.set_details(
            fill_rate={
                "filesystem": fs.path,
                "bytes_per_second": round(self.rate.bytes_per_second, 1),
                "seconds_until_high": _rounded(until_high),
                "seconds_until_full": _rounded(until_full),
                "samples": self.rate.samples,
            }
        )
        due = fillrate.projected(fs, settings, self.rate)
        if due:
            log.info(
                "usage projected to cross the high threshold within images.lookahead: starting "
                "image GC now",
                extra={
                    "path": fs.path,
                    "usage_percent": fs.usage_percent,
                    "reason": "projected",
                    "seconds_until_high": _rounded(until_high),
                    "bytes_per_second": round(self.rate.bytes_per_second, 1),
                },
            )
        return due


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
