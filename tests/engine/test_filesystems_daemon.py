"""Every filesystem under pressure counts, in the daemon and in `once`'s verdict.

Docker 28.5 from the forky engine root with the containerd image store, containerd's root on
a loop ext4 of its own and the data root (logs, volumes) on another (`RootedEngine` with
`containerd_size_mb`). Only the data root is filled: the image filesystem stays nearly empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodegc.testing.rooted import MountedFilesystem, RootedEngine
from tests.conftest import require_engine
from tests.engine.helpers import Daemon, nodegc, wait_for
from tests.engine.test_filesystems import SIZE_MB, THRESHOLDS, Setup, _busybox, _root_or_fail

CONFIG = """
[containers]
gc_period = "1h"
minimum_age = "0s"
[images]
gc_period = "1h"
pressure_check_period = "1s"
high_threshold_percent = 85
low_threshold_percent = 75
minimum_age = "0s"
"""
DEADLINE = 180  # generous: the machine is shared; nothing here depends on speed


@pytest.fixture
def own_fs() -> Iterator[Setup]:
    require_engine()
    root = _root_or_fail()
    with RootedEngine(SIZE_MB, root=root, store="containerd", containerd_size_mb=SIZE_MB) as e:
        yield Setup("containerd-own-fs", e, e.images_fs, MountedFilesystem(e.mountpoint))


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


def _on(path: str, fs: MountedFilesystem) -> bool:
    return os.stat(path).st_dev == os.stat(fs.mountpoint).st_dev


def _first_path(message: str) -> str:
    return message.split(" ", 1)[0]


def _dead_with_logs(setup: Setup, count: int) -> list[str]:
    """`count` dead containers whose json-file logs (under the data root) are ~20 MiB each."""
    busybox = setup.engine.load(_busybox())
    return [
        setup.engine.run_container(
            busybox, ["sh", "-c", "yes 0123456789abcdef0123456789 | head -c 9000000"]
        )
        for _ in range(count)
    ]


def test_the_daemon_relieves_a_full_data_root_at_once(
    own_fs: Setup, daemons: list[Daemon], tmp_path: Path
) -> None:
    """The daemon is watching (periodic GC once an hour) when the data root alone crosses 85%:
    the watch names it under pressure, starts image GC at once, the dead containers go (their
    logs with them) and the data root ends at or below 75%; no image is removed.
    Mutation caught: the watch measuring the image filesystem only (nothing starts within the
    hour: the wait fails)."""
    engine, data_fs = own_fs.engine, own_fs.data_fs
    dead = _dead_with_logs(own_fs, 2)
    with engine.api() as api:
        images = {i["Id"] for i in api.images()}
    daemon = Daemon(engine, tmp_path / "state", CONFIG).start()
    daemons.append(daemon)
    daemon.wait_ready(timeout=60)
    # The first periodic image GC (seconds after the start) finds nothing to do.
    wait_for(lambda: daemon.condition("ImageGCSucceeded")["status"] != "Unknown", DEADLINE)
    assert daemon.condition("DiskPressure")["status"] == "False"
    data_fs.fill_to_percent(92)

    def started() -> dict | None:  # type: ignore[type-arg]
        lines = [x for x in daemon.logs() if x.get("msg", "").startswith("usage crossed the high")]
        return lines[0] if lines else None

    line = wait_for(started, DEADLINE)
    (path,) = [p for p, kinds in line["filesystems"].items() if kinds]
    assert _on(path, data_fs), line
    with engine.api() as api:
        wait_for(lambda: not {c["Id"] for c in api.containers(all=True)} & set(dead), DEADLINE)
        assert {i["Id"] for i in api.images()} == images
    wait_for(lambda: daemon.condition("DiskPressure")["status"] == "False", DEADLINE)
    assert data_fs.usage_percent() <= 75
    gc = daemon.condition("ImageGCSucceeded")
    assert gc["status"] == "True" and gc["reason"] == "TargetReached", gc
    warned = [x for x in daemon.logs() if x.get("msg") == "disk pressure (bytes)"]
    assert warned and _on(_first_path(warned[0]["condition"]), data_fs), warned


def test_nothing_to_free_on_the_data_root_is_said_and_fails(
    own_fs: Setup, daemons: list[Daemon], tmp_path: Path
) -> None:
    """The data root at 92% with no dead container: DiskPressure names the data root (its
    roles, bytes) in /status, image GC ends FreeDiskSpaceFailed naming it; `once` exits 1 with a
    FreeDiskSpaceFailed line naming it and nothing else.
    Mutations caught: DiskPressure of the image filesystem only (False); the target of the
    image filesystem only (ImageGCSucceeded True, `once` exit 0, no line)."""
    engine, data_fs = own_fs.engine, own_fs.data_fs
    data_fs.fill_to_percent(92)
    daemon = Daemon(engine, tmp_path / "state", CONFIG).start()
    daemons.append(daemon)
    daemon.wait_ready(timeout=60)
    wait_for(lambda: daemon.condition("DiskPressure")["status"] == "True", DEADLINE)
    pressure = daemon.condition("DiskPressure")
    assert pressure["reason"] == "UsageAboveHighThreshold"
    path = _first_path(pressure["message"])
    assert _on(path, data_fs), pressure
    assert f"{path} (logs, volumes) is 92% used" in pressure["message"]
    assert "above the high threshold (bytes)" in pressure["message"]
    wait_for(lambda: daemon.condition("ImageGCSucceeded")["status"] == "False", DEADLINE)
    gc = daemon.condition("ImageGCSucceeded")
    assert gc["reason"] == "FreeDiskSpaceFailed" and gc["message"].startswith(path), gc
    daemon.stop()

    proc = nodegc(engine, tmp_path / "once", "once", *THRESHOLDS)
    assert proc.returncode == 1, proc.stderr
    failed = [x for x in proc.stderr.splitlines() if "FreeDiskSpaceFailed" in x]
    assert failed, proc.stderr
    assert f"filesystem {path} (logs, volumes) is 92% used" in failed[0]
    assert "image filesystem" not in failed[0]
