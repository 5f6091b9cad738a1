"""Every filesystem under pressure counts: the disk watch and DiskPressure look at each, and
`once`'s target (exit code, FreeDiskSpaceFailed) covers each. The pure parts, the cycle over the
fake with two disks, and the daemon's watch with its measurements replaced."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nodegc.cli.render import free_disk_space_failed
from nodegc.collect.cycle import Collector, CycleReport
from nodegc.daemon import loop as daemon_loop
from nodegc.daemon.conditions import DISK_PRESSURE, IMAGE_GC_SUCCEEDED
from nodegc.daemon.disk import disk_pressure, filesystems_detail
from nodegc.daemon.loop import Daemon
from nodegc.model import FilesystemRole, FilesystemStats, StorePath
from nodegc.policy.containers import plan_containers
from nodegc.policy.filesystems import plan_filesystems, pressure_on_each, short_of_target
from nodegc.state.store import StateDir
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import (
    NOW,
    Clock,
    ago,
    container,
    container_settings,
    image,
    image_settings,
    make_settings,
)
from tests.unit.test_filesystems import TwoDisks

IMAGES, CONTAINERS, LOGS, VOLUMES = (
    FilesystemRole.IMAGES,
    FilesystemRole.CONTAINERS,
    FilesystemRole.LOGS,
    FilesystemRole.VOLUMES,
)


def stats(path: str, used: int, *, inodes_free: int = 900, roles=(), device=0) -> FilesystemStats:
    return FilesystemStats(path, 1000, 1000 - used, 1000, inodes_free, roles=roles, device=device)


def two(images_used: int, data_used: int, **kw: Any) -> tuple[FilesystemStats, ...]:
    return (
        stats("/containerd", images_used, roles=(IMAGES, CONTAINERS), device=1, **kw),
        stats("/docker", data_used, roles=(LOGS, VOLUMES), device=2),
    )


# -- the pure parts -------------------------------------------------------------------------------
def test_the_data_root_short_of_its_low_threshold_is_short() -> None:
    """Mutation caught: the image filesystem counted here (it is the image plan's), or a
    filesystem not measured again taken as relieved."""
    fss = two(950, 920)  # both above 85%; the image one is the image plan's business
    plans = plan_filesystems(
        fss, plan_containers([], container_settings(), NOW), image_settings(), container_settings()
    )
    assert [p.filesystem.path for p, _ in short_of_target(plans, ())] == ["/docker"]
    assert short_of_target(plans, (stats("/docker", 810),))[0][1].usage_percent == 81
    assert short_of_target(plans, (stats("/docker", 800),)) == []


def test_disk_pressure_names_each_filesystem_and_kind() -> None:
    """Mutation caught: the image filesystem alone looked at (status False, no /docker)."""
    settings = image_settings()
    status, reason, message = disk_pressure(pressure_on_each(two(100, 920), settings), settings)
    assert status is True and reason == "UsageAboveHighThreshold"
    assert message.startswith("/docker (logs, volumes) is 92% used (high threshold 85%)")
    assert "above the high threshold (bytes)" in message
    assert "/containerd (images, containers) is 10% used" in message
    inodes = pressure_on_each(two(100, 920, inodes_free=50), settings)
    assert disk_pressure(inodes, settings)[1] == "UsageAndInodeUsageAboveHighThreshold"
    detail = filesystems_detail(inodes, settings)
    assert [d["pressure"] for d in detail] == [["inodes"], ["bytes"]]
    assert [d["trigger"] for d in detail] == ["inode_high_threshold", "high_threshold"]
    calm = pressure_on_each(two(100, 300), settings)
    assert disk_pressure(calm, settings)[:2] == (False, "UsageBelowHighThreshold")


def test_disk_pressure_names_the_rule_that_triggered() -> None:
    """minimum_free alone (usage 70%, below high 85%, but 300 B free < 400 B): the reason is
    `FreeBelowMinimumFree`, the message says the free bytes, the detail's trigger
    `minimum_free`. Mutation caught: the percent rule's reason whatever triggered."""
    settings = image_settings(minimum_free=400, target_free=500)
    one = pressure_on_each((stats("/var/lib/docker", 700, roles=(IMAGES,)),), settings)
    status, reason, message = disk_pressure(one, settings)
    assert (status, reason) == (True, "FreeBelowMinimumFree")
    assert "300 B free (minimum_free 400 B)" in message, message
    assert filesystems_detail(one, settings)[0]["trigger"] == "minimum_free"
    inodes = pressure_on_each(
        (stats("/var/lib/docker", 700, roles=(IMAGES,), inodes_free=10),), settings
    )
    assert disk_pressure(inodes, settings)[1] == (
        "FreeBelowMinimumFreeAndInodeUsageAboveHighThreshold"
    )
    # The percent rule asks for more (usage 90%: 150 B to low 75%; minimum 400 B free is met).
    high = pressure_on_each((stats("/var/lib/docker", 900, roles=(IMAGES,)),), settings)
    assert disk_pressure(high, image_settings())[1] == "UsageAboveHighThreshold"


def test_a_projected_crossing_is_the_reason_without_pressure() -> None:
    """images.lookahead projects a crossing on /docker: DiskPressure stays False with reason
    `UsageProjectedAboveHighThreshold` and the message names the filesystem; pressure wins
    over a projection. Mutation caught: the projection not said, or said as pressure."""
    settings = image_settings()
    calm = pressure_on_each(two(100, 800), settings)
    status, reason, message = disk_pressure(calm, settings, ("/docker",))
    assert (status, reason) == (False, "UsageProjectedAboveHighThreshold")
    assert message.endswith(
        "projected to cross the high threshold within images.lookahead on /docker"
    )
    hot = pressure_on_each(two(100, 900), settings)
    assert disk_pressure(hot, settings, ("/containerd",))[:2] == (True, "UsageAboveHighThreshold")


def test_one_filesystem_says_what_it_always_said() -> None:
    settings = image_settings()
    one = pressure_on_each((stats("/var/lib/docker", 900, roles=(IMAGES,)),), settings)
    assert disk_pressure(one, settings) == (
        True,
        "UsageAboveHighThreshold",
        "/var/lib/docker is 90% used (high threshold 85%), 10% of inodes used "
        "(inode high threshold 95%)",
    )


# -- the cycle: target and FreeDiskSpaceFailed over every filesystem ----------------------------
def _two_disk_cycle(tmp_path: Path, other: int, dead: int) -> CycleReport:
    fake = FakeRuntime()
    fake.paths = [
        StorePath("/containerd", (IMAGES, CONTAINERS)),
        StorePath("/docker", (LOGS, VOLUMES)),
    ]
    fake.add_image(image("img", 100))
    for n in range(dead):
        fake.add_container(container(f"c{n}", "img", finished_at=ago(hours=n + 1)))
    state = StateDir(tmp_path / "state")
    settings = make_settings(
        state.path, "", images={"high_threshold_percent": 85, "low_threshold_percent": 75},
        containers={"max_per_pod_container": 5, "minimum_age": "0s"},
    )  # fmt: skip
    collector = Collector(settings, fake, state, clock=Clock(), measure=TwoDisks(fake, other))
    return collector.cycle()


def test_a_data_root_nothing_can_relieve_fails_the_target_and_is_named(tmp_path) -> None:
    """The data root at 92% with no dead container: the image filesystem is fine, the cycle is
    not. Mutation caught: target_reached of the image filesystem only (True; exit 0)."""
    report = _two_disk_cycle(tmp_path, other=920, dead=0)
    assert report.image_target_reached is True
    assert report.target_reached is False
    line = free_disk_space_failed(report)
    assert line.startswith("FreeDiskSpaceFailed: filesystem /docker (logs, volumes) is 92% used")
    assert "no dead container could go" in line and "image filesystem" not in line


def test_a_data_root_relieved_reaches_the_target(tmp_path) -> None:
    report = _two_disk_cycle(tmp_path, other=540, dead=4)  # 94% -> 74%
    assert report.target_reached is True and report.filesystems_short == []


# -- the daemon's watch ---------------------------------------------------------------------------
class _Jobs:
    def __init__(self) -> None:
        self.added: list[str] = []

    def add_job(self, func: Any, id: str, **_: Any) -> None:
        self.added.append(id)


@pytest.fixture
def daemon(tmp_path, monkeypatch) -> Daemon:
    state = StateDir(tmp_path / "state")
    settings = make_settings(state.path, "")
    d = Daemon(settings, lambda: settings, runtime_factory=lambda *_: FakeRuntime())
    d.scheduler = _Jobs()  # type: ignore[assignment]
    return d


def test_the_watch_starts_image_gc_when_the_data_root_alone_is_full(daemon, monkeypatch) -> None:
    """statvfs of every filesystem the last observation found; only the data root is above 85%.
    Mutation caught: the watch measuring the image filesystem alone (no job, no pressure)."""
    now = {"/containerd": 100, "/docker": 920}
    daemon._watched = two(0, 0)
    monkeypatch.setattr(
        daemon_loop,
        "remeasure",
        lambda fss: tuple(replace(fs, available_bytes=1000 - now[fs.path]) for fs in fss),
    )
    daemon.pressure_check()
    assert daemon.scheduler.added == ["image-gc-now"]  # type: ignore[union-attr]
    condition = daemon.board.get(DISK_PRESSURE)
    assert condition is not None and condition.status == "True"
    assert condition.message.startswith("/docker (logs, volumes) is 92% used")
    details = daemon.status()["details"]["filesystems"]
    assert [(d["path"], d["pressure"]) for d in details] == [
        ("/containerd", []),
        ("/docker", ["bytes"]),
    ]
    now["/docker"] = 700
    daemon.pressure_check()
    assert daemon.scheduler.added == ["image-gc-now"]  # type: ignore[union-attr]
    assert daemon.board.get(DISK_PRESSURE).status == "False"  # type: ignore[union-attr]
    daemon.runtime.close()


def test_an_image_cycle_that_leaves_the_data_root_full_failed(daemon, tmp_path) -> None:
    """ImageGCSucceeded False, FreeDiskSpaceFailed naming the data root, when the image
    filesystem was fine. Mutation caught: the image filesystem's target alone (True)."""
    report = _two_disk_cycle(tmp_path / "c", other=920, dead=0)
    daemon.collector = SimpleNamespace(last_snapshot=None)  # type: ignore[assignment]
    daemon._after_cycle("image", IMAGE_GC_SUCCEEDED, 0.0, report)
    condition = daemon.board.get(IMAGE_GC_SUCCEEDED)
    assert condition is not None and condition.status == "False"
    assert condition.reason == "FreeDiskSpaceFailed"
    assert condition.message.startswith("/docker (logs, volumes) is 92% used, short of its low")
    assert daemon.board.get(DISK_PRESSURE).status == "True"  # type: ignore[union-attr]


# -- a fresh node: containerd has not made its content store's directory yet ----------------------
def test_a_root_not_made_yet_is_measured_at_containerd_root(tmp_path) -> None:
    """Found on Docker 28 with a fresh containerd (nothing pulled): the daemon never became
    ready, `.../io.containerd.content.v1.content` could not be measured. Mutation caught: the
    root named as is (the path does not exist)."""
    from nodegc.runtime.containerd_store import StoreRoots, containerd_store_paths

    root = tmp_path / "containerd"
    (root / "io.containerd.snapshotter.v1.overlayfs").mkdir(parents=True)
    roots = StoreRoots(
        content=str(root / "io.containerd.content.v1.content"),
        snapshots=str(root / "io.containerd.snapshotter.v1.overlayfs"),
        source="test",
    )
    paths = [p.path for p in containerd_store_paths(roots, "/var/lib/docker")]
    assert paths == [roots.snapshots, str(root), "/var/lib/docker"]
    (root / "io.containerd.content.v1.content").mkdir()
    assert containerd_store_paths(roots, "/d")[1].path == roots.content
    gone = StoreRoots(str(tmp_path / "none" / "content"), str(tmp_path / "none" / "snap"), "t")
    assert containerd_store_paths(gone, "/d")[1].path == gone.content  # never above the root
