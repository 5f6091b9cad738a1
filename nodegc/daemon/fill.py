"""The daemon's fill-rate watch: each pressure check folds the measurement of every filesystem
it watches into that filesystem's smoothed estimate (`policy.fillrate`), exports it
(`nodegc_filesystem_fill_rate_bytes_per_second`, `nodegc_filesystem_seconds_until_high`,
`nodegc_filesystem_seconds_until_full`, labelled by filesystem; NaN while nothing is projected),
keeps it in /status (`details.fill_rate`: the image filesystem's, as before; `details.fill_rates`:
every filesystem's) and says on which filesystems `images.lookahead` asks for image GC now
(`projected`)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from nodegc.config import ImageSettings
from nodegc.model import FilesystemStats
from nodegc.policy import fillrate

log = logging.getLogger(__name__)


class FillWatch:
    def __init__(self, registry: CollectorRegistry, board: Any) -> None:
        self.board = board
        self.rates: dict[str, fillrate.FillRate] = {}  # by filesystem path
        labels = ["filesystem"]
        self.rate_gauge = Gauge(
            "nodegc_filesystem_fill_rate_bytes_per_second",
            "Smoothed rate at which each watched filesystem fills (negative: it frees), from "
            "the pressure checks.",
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

    @property
    def rate(self) -> fillrate.FillRate | None:
        """The first watched filesystem's (the image filesystem's) estimate."""
        return next(iter(self.rates.values()), None)

    def check(
        self, measured: Sequence[FilesystemStats], settings: ImageSettings
    ) -> tuple[str, ...]:
        """Fold in one measurement of each watched filesystem (the image filesystem first); the
        paths where image GC should start now (`projected`), empty for none."""
        gone = set(self.rates) - {fs.path for fs in measured}
        for path in gone:  # no longer watched: its estimate and series go
            del self.rates[path]
            for gauge in (self.rate_gauge, self.high_gauge, self.full_gauge):
                gauge.remove(path)
        now = time.monotonic()
        details, due = [], []
        for fs in measured:
            detail, projected = self._fold(fs, settings, now)
            details.append(detail)
            if projected:
                due.append(fs.path)
        if details:
            self.board.set_details(fill_rate=details[0], fill_rates=details)
        return tuple(due)

    def _fold(
        self, fs: FilesystemStats, settings: ImageSettings, now: float
    ) -> tuple[dict[str, Any], bool]:
        rate = self.rates[fs.path] = fillrate.update(self.rates.get(fs.path), fs, now)
        until_high = fillrate.seconds_until_high(fs, settings, rate)
        until_full = fillrate.seconds_until_full(fs, rate)
        self.rate_gauge.labels(filesystem=fs.path).set(rate.bytes_per_second)
        self.high_gauge.labels(filesystem=fs.path).set(_or_nan(until_high))
        self.full_gauge.labels(filesystem=fs.path).set(_or_nan(until_full))
        detail = {
            "filesystem": fs.path,
            "roles": [str(r) for r in fs.roles],
            "bytes_per_second": round(rate.bytes_per_second, 1),
            "seconds_until_high": _rounded(until_high),
            "seconds_until_full": _rounded(until_full),
            "samples": rate.samples,
        }
        due = fillrate.projected(fs, settings, rate)
        if due:
            log.info(
                "usage projected to cross the high threshold within images.lookahead: starting "
                "image GC now",
                extra={
                    "path": fs.path,
                    "usage_percent": fs.usage_percent,
                    "reason": "projected",
                    "seconds_until_high": _rounded(until_high),
                    "bytes_per_second": round(rate.bytes_per_second, 1),
                },
            )
        return detail, due


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
