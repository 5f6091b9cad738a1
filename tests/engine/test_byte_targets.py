"""Targets in bytes (images.minimum_free / images.target_free) on a real dockerd and a real loop
ext4: the figures are statvfs's, the images the engine's."""

from __future__ import annotations

import os
from pathlib import Path

import docker

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import busybox_image_tar
from tests.engine.helpers import (
    Daemon,
    MiB,
    inventory,
    nodegc,
    nodegc_json,
    removed_ids,
    wait_for,
)

SIZE = 20 * MiB
# Percent thresholds that would never trigger on this disk (it stays well below 95%).
PERCENT_OFF = ("--image-gc-high-threshold=95", "--image-gc-low-threshold=90")


def available(engine: IsolatedEngine) -> int:
    st = os.statvfs(engine.mountpoint)
    return st.f_bavail * st.f_frsize


def test_byte_targets_drive_a_real_cycle_to_the_byte(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """Free space below minimum_free starts image GC although usage is far below the high
    threshold, and `once` stops with free space at target_free or just above it (less than one
    image more). Catches: the byte trigger ignored (nothing removed), the amount taken from the
    percentages (nothing or everything removed), the closed loop not stopping at target_free
    (far above), the header not naming the rule."""
    engine.load_many(busybox_image_tar([f"app/{n}:1"], extra_size_bytes=SIZE) for n in "abcdefgh")
    state = tmp_path / "state"
    free = available(engine)
    assert engine.usage_percent() < 85, "the disk must stay far below the percent thresholds"
    minimum, target = free + 30 * MiB, free + 50 * MiB
    byte_flags = (f"--image-gc-minimum-free={minimum}", f"--image-gc-target-free={target}")
    common = ("--minimum-image-ttl-duration=0s", *PERCENT_OFF)

    # The percentages alone ask for nothing.
    code, out = nodegc_json(engine, state, "report", *common)
    assert code == 0 and out["images"]["trigger"] is None
    assert not removed_ids(out, "images")

    code, out = nodegc_json(engine, state, "report", *common, *byte_flags)
    assert code == 0, out
    assert out["images"]["trigger"] == "minimum_free"
    assert out["images"]["target_free_bytes"] == target
    assert out["images"]["bytes_to_free"] == target - out["filesystem"]["available_bytes"]
    table = nodegc(engine, state, "report", *common, *byte_flags)
    assert "is below minimum_free" in table.stdout, table.stdout

    code, out = nodegc_json(engine, state, "once", *common, *byte_flags)
    assert code == 0, out
    assert out["images"]["trigger"] == "minimum_free"
    now = available(engine)
    removed = 8 - len([i for i in api.images() if i["RepoTags"]])
    assert now >= target, (now, target)
    # Not far above: less than what one removal frees (20 MiB with overlay2; blob and snapshot,
    # twice that, with the containerd image store).
    step = max(d["frees_bytes"] for d in out["images"]["decisions"] if d["action"] == "remove")
    assert SIZE <= step <= 2 * SIZE + 4 * MiB, step
    assert now - target < step + 4 * MiB, f"{now - target} bytes above target_free ({removed} gone)"
    assert 1 <= removed <= 4  # ~50 MiB of 20 MiB images: three (two with blob + snapshot)


def test_a_byte_target_beyond_the_capacity_exits_2_naming_it_before_anything_goes(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """minimum_free above the filesystem's capacity: exit 2 naming images.minimum_free, nothing
    removed (checked at the first measurement). Catches: no capacity check (the disk is then
    always "below minimum_free" and every unused image goes)."""
    engine.load_many(busybox_image_tar([f"app/{n}:1"], extra_size_bytes=MiB) for n in "ab")
    before = inventory(api)
    proc = nodegc(
        engine,
        tmp_path / "state",
        "once",
        "--minimum-image-ttl-duration=0s",
        "--image-gc-minimum-free=10GiB",
        "--image-gc-target-free=11GiB",
    )
    assert proc.returncode == 2, proc.stderr
    assert "images.minimum_free" in proc.stderr and "capacity" in proc.stderr, proc.stderr
    assert inventory(api) == before


def test_the_daemon_exits_2_naming_a_byte_target_beyond_the_capacity(
    engine: IsolatedEngine, api: docker.APIClient, daemons: list[Daemon], tmp_path: Path
) -> None:
    """`nodegc run` with minimum_free above the capacity: at its first cycle it stops with exit
    2, the log naming images.minimum_free, and removes nothing. Catches: the error taken as a
    failed observation and retried for ever (the daemon keeps running)."""
    engine.load_many(busybox_image_tar([f"app/{n}:1"], extra_size_bytes=MiB) for n in "ab")
    before = inventory(api)
    config = '[images]\nminimum_free = "10GiB"\nminimum_age = "0s"\n'
    daemon = Daemon(engine, tmp_path / "s", config).start()
    daemons.append(daemon)
    assert daemon.wait(60) == 2, daemon.log.read_text()
    assert "images.minimum_free" in daemon.log.read_text()
    assert inventory(api) == before


def test_the_daemons_disk_watch_starts_image_gc_below_minimum_free(
    engine: IsolatedEngine, api: docker.APIClient, daemons: list[Daemon], tmp_path: Path
) -> None:
    """`nodegc run`: free space falling below minimum_free (usage far below the percentages)
    starts image GC at the next pressure check, which frees up to target_free. Catches: the
    disk watch looking at the percentages only."""
    engine.load_many(busybox_image_tar([f"app/{n}:1"], extra_size_bytes=SIZE) for n in "abcdef")
    free = available(engine)
    minimum, target = free - 10 * MiB, free + 20 * MiB
    config = (
        f'[images]\nhigh_threshold_percent = 95\nlow_threshold_percent = 90\nminimum_age = "0s"\n'
        f'gc_period = "1h"\npressure_check_period = "1s"\n'
        f"minimum_free = {minimum}\ntarget_free = {target}\n"
    )
    daemon = Daemon(engine, tmp_path / "s", config).start()
    daemons.append(daemon)
    daemon.wait_ready()
    assert len([i for i in api.images() if i["RepoTags"]]) == 6  # above minimum_free: nothing
    engine.fill(20 * MiB)  # now below minimum_free
    wait_for(lambda: available(engine) >= target, timeout=60)
    assert engine.usage_percent() < 85
    # DiskPressure named the rule that triggered: minimum_free, not the percent rule.
    said = [x for x in daemon.logs() if x.get("msg") == "disk pressure (bytes)"]
    assert said and said[0]["reason"] == "FreeBelowMinimumFree", said
    assert "minimum_free" in said[0]["condition"], said
