"""The daemon's fill-rate watch over every watched filesystem (daemon/fill.py), with the
measurements and the monotonic clock given: a rate per filesystem, gauges labelled by it, /status
details for each, and the lookahead's projection on the filesystem that fills."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from nodegc.daemon import fill
from nodegc.daemon.fill import FillWatch
from nodegc.model import FilesystemRole, FilesystemStats
from tests.unit.builders import image_settings

CAP = 1_000_000


class Board:
    def __init__(self) -> None:
        self.details: dict[str, Any] = {}

    def set_details(self, **details: Any) -> None:
        self.details.update(details)


def disk(path: str, free: int, roles: tuple[FilesystemRole, ...]) -> FilesystemStats:
    return FilesystemStats(path, CAP, free, 1000, 900, roles=roles)


def test_each_filesystem_has_its_rate_and_the_one_filling_is_projected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The image filesystem is flat; the container filesystem loses 10,000 B/s from 50% used:
    high (85%) in ~35 s, inside a 60 s lookahead. Mutation caught: the image filesystem's rate
    alone (the second never projected), rates mixed between filesystems, gauges unlabelled."""
    clock = iter(range(100))
    monkeypatch.setattr(fill.time, "monotonic", lambda: float(next(clock)))
    registry, board = CollectorRegistry(), Board()
    watch = FillWatch(registry, board)
    settings = image_settings(lookahead=timedelta(seconds=60))
    images = (FilesystemRole.IMAGES,)
    data = (FilesystemRole.CONTAINERS, FilesystemRole.LOGS)
    due: tuple[str, ...] = ()
    for step in range(6):
        measured = (disk("/images", 600_000, images), disk("/data", 500_000 - step * 10_000, data))
        due = watch.check(measured, settings)
    assert due == ("/data",)
    rates = {r["filesystem"]: r for r in board.details["fill_rates"]}
    assert rates["/images"]["bytes_per_second"] == 0.0
    assert rates["/data"]["bytes_per_second"] == 10_000.0
    assert rates["/data"]["seconds_until_high"] == pytest.approx(
        (450_000 - 159_999) / 10_000, abs=0.1
    )
    assert board.details["fill_rate"]["filesystem"] == "/images"  # the image filesystem's
    sample = registry.get_sample_value
    name = "nodegc_filesystem_fill_rate_bytes_per_second"
    assert sample(name, {"filesystem": "/data"}) == 10_000.0
    assert sample(name, {"filesystem": "/images"}) == 0.0
    assert sample("nodegc_filesystem_seconds_until_full", {"filesystem": "/data"}) == 45.0
    # A filesystem no longer watched: its estimate and series go.
    watch.check((disk("/images", 600_000, images),), settings)
    assert sample(name, {"filesystem": "/data"}) is None
    assert [r["filesystem"] for r in board.details["fill_rates"]] == ["/images"]


def test_a_falling_filesystem_is_never_projected(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(100))
    monkeypatch.setattr(fill.time, "monotonic", lambda: float(next(clock)))
    watch = FillWatch(CollectorRegistry(), Board())
    settings = image_settings(lookahead=timedelta(days=365))
    for step in range(8):
        due = watch.check((disk("/data", 200_000 + step * 1000, ()),), settings)
        assert due == ()
