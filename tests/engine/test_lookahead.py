"""images.lookahead on a real dockerd and a real loop ext4: a writer fills the disk at a steady
rate, and `nodegc run` starts image GC before usage crosses the high threshold (`projected`);
on a flat or falling disk it never does."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import docker

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import build_image_tar
from tests.engine.helpers import Daemon, MiB, nodegc_json, wait_for

HIGH, LOW = 85, 70
CONFIG = f"""
[images]
high_threshold_percent = {HIGH}
low_threshold_percent = {LOW}
minimum_age = "0s"
gc_period = "1h"
pressure_check_period = "1s"
lookahead = "60s"
"""


def projected(daemon: Daemon) -> list[dict[str, Any]]:
    return [e for e in daemon.logs() if e.get("reason") == "projected"]


def samples(daemon: Daemon) -> int:
    code, body = daemon.get("/status")
    assert code == 200, body
    return int(json.loads(body)["details"].get("fill_rate", {}).get("samples", 0))


class Writer(threading.Thread):
    """Adds 2 MiB of filler every 0.25 s until told to stop or usage reaches `ceiling`."""

    def __init__(self, engine: IsolatedEngine, ceiling: int) -> None:
        super().__init__(daemon=True)
        self.engine, self.ceiling, self.done = engine, ceiling, threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and self.engine.usage_percent() < self.ceiling:
            self.engine.fill(2 * MiB)
            self.done.wait(0.25)


def test_a_steady_writer_starts_image_gc_before_the_high_threshold(
    engine: IsolatedEngine, api: docker.APIClient, daemons: list[Daemon], tmp_path: Path
) -> None:
    """Catches: no lookahead (nothing starts below the high threshold: the writer stops at
    HIGH - 1, so the disk never crosses it), a projection that does not plan as if high had been
    crossed (no image removed)."""
    engine.load_many(build_image_tar([f"bulk/{n}:1"], 20 * MiB) for n in range(6))
    engine.fill_to_percent(LOW + 3)
    daemon = Daemon(engine, tmp_path / "s", CONFIG).start()
    daemons.append(daemon)
    daemon.wait_ready()
    writer = Writer(engine, HIGH - 1)
    writer.start()
    try:
        first = wait_for(lambda: projected(daemon), timeout=120, interval=0.2)[0]
    finally:
        writer.done.set()
        writer.join(10)
    assert first["usage_percent"] < HIGH, first
    assert first["seconds_until_high"] <= 60 and first["bytes_per_second"] > 0, first
    wait_for(lambda: len(api.images()) < 6, timeout=60)
    assert engine.usage_percent() < HIGH
    # `report` shows the daemon's last estimate.
    code, out = nodegc_json(
        engine, tmp_path / "r", "report", f"--metrics-bind-address=127.0.0.1:{daemon.port}"
    )
    assert code == 0 and out["fill_rate"]["samples"] >= 4, out.get("fill_rate")
    assert out["fill_rate"]["filesystem"] == first["path"]


def test_never_on_a_flat_or_falling_disk(
    engine: IsolatedEngine, api: docker.APIClient, daemons: list[Daemon], tmp_path: Path
) -> None:
    """Flat at HIGH - 5 for 10 checks, then falling for 10 more: no projection, no removal.
    Catches: a projection from a rate at or below zero, or from too few measurements."""
    engine.load_many(build_image_tar([f"bulk/{n}:1"], 20 * MiB) for n in range(3))
    engine.fill_to_percent(HIGH - 8)
    fillers = [engine.fill(4 * MiB) for _ in range(8)]
    daemon = Daemon(engine, tmp_path / "s", CONFIG).start()
    daemons.append(daemon)
    daemon.wait_ready()
    wait_for(lambda: samples(daemon) >= 10, timeout=120, interval=0.2)
    seen = samples(daemon)
    for path in fillers:  # falling: 4 MiB less at each step
        path.unlink()
        wait_for(lambda s=seen: samples(daemon) > s, timeout=30, interval=0.1)
        seen = samples(daemon)
    wait_for(lambda: samples(daemon) >= seen + 3, timeout=30, interval=0.2)
    assert not projected(daemon)
    assert len(api.images()) == 3
