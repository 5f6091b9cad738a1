"""images.lookahead on every filesystem the daemon watches: Docker 28.5 (forky root) with the
containerd image store on a loop ext4 of its own and the data root (logs, volumes) on another.
A writer fills the data root alone at a steady rate and stops below the high threshold: the
projected crossing there starts image GC, which removes dead containers (their logs fill it)
down to the low threshold, before the high one is ever crossed. The image filesystem stays
nearly empty and flat."""

from __future__ import annotations

import threading
from pathlib import Path

from nodegc.testing.rooted import MountedFilesystem
from tests.engine.helpers import Daemon, MiB, wait_for
from tests.engine.test_filesystems import Setup
from tests.engine.test_filesystems_daemon import (  # noqa: F401  (fixtures)
    DEADLINE,
    _dead_with_logs,
    _on,
    daemons,
    own_fs,
)

HIGH, LOW = 85, 75
CONFIG = f"""
[containers]
gc_period = "1h"
minimum_age = "0s"
[images]
gc_period = "1h"
pressure_check_period = "1s"
high_threshold_percent = {HIGH}
low_threshold_percent = {LOW}
minimum_age = "0s"
lookahead = "60s"
"""


class Writer(threading.Thread):
    """Adds 1 MiB of filler to `fs` every 0.25 s until told to stop or usage reaches `ceiling`."""

    def __init__(self, fs: MountedFilesystem, ceiling: int) -> None:
        super().__init__(daemon=True)
        self.fs, self.ceiling, self.done = fs, ceiling, threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and self.fs.usage_percent() < self.ceiling:
            self.fs.fill(1 * MiB)
            self.done.wait(0.25)


def test_a_projected_crossing_on_the_data_root_frees_it_before_the_threshold(
    own_fs: Setup,  # noqa: F811
    daemons: list[Daemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Mutation caught: the fill rate kept for the image filesystem only (the data root never
    projected: nothing starts, the dead containers stay: the wait fails), or a projection that
    does not plan the other filesystems as if high were crossed (nothing removed there)."""
    engine, data_fs = own_fs.engine, own_fs.data_fs
    dead = _dead_with_logs(own_fs, 2)
    with engine.api() as api:
        images = {i["Id"] for i in api.images()}
    data_fs.fill_to_percent(LOW + 3)
    daemon = Daemon(engine, tmp_path / "state", CONFIG).start()
    daemons.append(daemon)
    daemon.wait_ready(timeout=60)
    writer = Writer(data_fs, HIGH - 1)
    writer.start()

    def projected() -> dict | None:  # type: ignore[type-arg]
        lines = [x for x in daemon.logs() if x.get("reason") == "projected"]
        return lines[0] if lines else None

    try:
        first = wait_for(projected, DEADLINE, interval=0.2)
    finally:
        writer.done.set()
        writer.join(10)
    assert _on(first["path"], data_fs), first
    assert first["usage_percent"] < HIGH, first
    with engine.api() as api:
        wait_for(lambda: len({c["Id"] for c in api.containers(all=True)} & set(dead)) < 2, DEADLINE)
        assert {i["Id"] for i in api.images()} == images
    assert data_fs.usage_percent() <= LOW
    said = [x for x in daemon.logs() if x.get("reason") == "UsageProjectedAboveHighThreshold"]
    assert said and first["path"] in said[0]["condition"], said
