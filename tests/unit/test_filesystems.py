"""The pure parts of issue 19's filesystems: what a layer costs per store, which filesystems are
measured (once each), which is under pressure and what frees there, how containerd's roots are
read from its introspection answer, and the JSON and table of several filesystems."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodegc.cli.filesystems import filesystem_lines, filesystems_json
from nodegc.collect.cycle import Collector
from nodegc.collect.observe import measure_all, store_paths
from nodegc.model import (
    ALL_ROLES,
    ContainerState,
    FilesystemRole,
    FilesystemStats,
    Layer,
    LayerStore,
    Outcome,
    StorePath,
)
from nodegc.policy import plan
from nodegc.policy.containers import plan_containers
from nodegc.policy.filesystems import filesystem_target_met, frees_on, plan_filesystems
from nodegc.policy.space import Ledger, store_costs
from nodegc.runtime.containerd_store import (
    containerd_store_paths,
    is_containerd_store,
    plugin_roots,
    store_roots,
)
from nodegc.state.store import StateDir
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import (
    NOW,
    Clock,
    ago,
    container,
    container_settings,
    history,
    image,
    image_settings,
    make_settings,
    snapshot,
)

IMAGES, CONTAINERS, LOGS, VOLUMES = (
    FilesystemRole.IMAGES,
    FilesystemRole.CONTAINERS,
    FilesystemRole.LOGS,
    FilesystemRole.VOLUMES,
)


def stats(path: str, used: int, capacity: int = 1000, device: int = 0, roles=()) -> FilesystemStats:
    return FilesystemStats(path, capacity, capacity - used, 1000, 900, roles=roles, device=device)


# -- what a layer costs per store ---------------------------------------------------------------
def test_one_copy_keeps_the_sizes_told() -> None:
    layers = {"a": (Layer("k1", 40, None), Layer("k2", 3, None))}
    assert store_costs(LayerStore.ONE_COPY, [image("a", 43)], layers) == layers


def test_containerd_store_adds_the_content_blob_to_each_snapshot() -> None:
    """Listed size = content + snapshots: the content (listed - snapshots) spread over the
    layers by snapshot size; a shared layer costs the least any image gives it."""
    base = Layer("base", 40_000, None)
    layers = {
        "a": (base, Layer("a1", 3_000, None)),
        "b": (base, Layer("b1", 5_000, None)),
    }
    # a: content 43,000 (uncompressed: blob = snapshot); b: content 22,500 (compressed 2:1).
    images = [image("a", 43_000 + 43_000), image("b", 45_000 + 22_500)]
    costed = store_costs(LayerStore.CONTENT_AND_SNAPSHOT, images, layers)
    assert costed["a"][1].size_bytes == 6_000
    assert costed["b"][1].size_bytes == 7_500
    assert costed["a"][0].size_bytes == costed["b"][0].size_bytes == 60_000
    ledger = Ledger(costed)
    assert ledger.remove("a").bytes == 6_000
    assert ledger.remove("b").bytes == 67_500  # b's own layer and, last holder, the base


def test_containerd_store_without_snapshot_sizes_spreads_the_content_evenly() -> None:
    layers = {"a": (Layer("k1", 0, None), Layer("k2", 0, None))}
    costed = store_costs(LayerStore.CONTENT_AND_SNAPSHOT, [image("a", 1000)], layers)
    assert [layer.size_bytes for layer in costed["a"]] == [500, 500]


def test_listed_store_leaves_unknown_sizes_to_the_estimate() -> None:
    layers = {"a": (Layer("k1", None, None),)}
    assert store_costs(LayerStore.LISTED, [image("a", 10)], layers) == layers


@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=5),
    st.integers(0, 50_000),
)
def test_containerd_store_costs_add_up_to_the_listed_size(sizes: list[int], content: int) -> None:
    """One image alone: removing it frees its listed size (content + snapshots), give or take
    the rounding of the spread (a byte per layer)."""
    stack = tuple(Layer(f"k{n}", size, None) for n, size in enumerate(sizes))
    listed = sum(sizes) + content
    costed = store_costs(LayerStore.CONTENT_AND_SNAPSHOT, [image("a", listed)], {"a": stack})
    freed = Ledger(costed).remove("a").bytes
    assert listed - len(sizes) <= freed <= listed


# -- which filesystems are measured --------------------------------------------------------------
def test_paths_on_one_device_are_one_filesystem_with_every_role() -> None:
    devices = {"/snap": 7, "/content": 7, "/docker": 9}

    def measure(path: str) -> FilesystemStats:
        return stats(path, 500, device=devices[path])

    paths = [
        StorePath("/docker", (LOGS, VOLUMES)),
        StorePath("/snap", (IMAGES, CONTAINERS)),
        StorePath("/content", (IMAGES,)),
    ]
    measured = measure_all(paths, measure)
    assert [(fs.path, fs.roles) for fs in measured] == [
        ("/snap", (IMAGES, CONTAINERS)),  # the image filesystem comes first
        ("/docker", (LOGS, VOLUMES)),
    ]


def test_the_override_is_the_one_filesystem_measured() -> None:
    """images.filesystem_path: that path, holding everything; the runtime is not asked."""
    fake = FakeRuntime()
    assert store_paths(fake, "/host/var/lib/docker") == [
        StorePath("/host/var/lib/docker", ALL_ROLES, "images.filesystem_path")
    ]
    assert fake.calls == []
    assert store_paths(fake, "")[0].roles == ALL_ROLES


# -- the pressure rule ----------------------------------------------------------------------------
def test_what_frees_where() -> None:
    assert frees_on((IMAGES, CONTAINERS)) == ("build-cache", "image", "container")
    assert frees_on((LOGS, VOLUMES)) == ("container",)
    assert frees_on(()) == ()


def _two_filesystems(images_used: int, data_used: int) -> tuple[FilesystemStats, ...]:
    return (
        stats("/containerd", images_used, device=1, roles=(IMAGES, CONTAINERS)),
        stats("/docker", data_used, device=2, roles=(LOGS, VOLUMES)),
    )


def test_a_full_data_root_gets_its_dead_containers_longest_stopped_first() -> None:
    dead = [
        container("late", finished_at=ago(hours=1)),
        container("early", finished_at=ago(hours=5)),
        container("up", state=ContainerState.RUNNING),
        container("kept", finished_at=ago(hours=9), labels={"nodegc.io/keep": "true"}),
    ]
    caps = plan_containers(dead, container_settings(max_per_pod_container=5), NOW)
    plans = plan_filesystems(
        _two_filesystems(100, 920), caps, image_settings(), container_settings()
    )
    image_fs, data_fs = plans
    assert not image_fs.under_pressure and image_fs.containers == ()
    assert data_fs.under_pressure and data_fs.bytes_to_free == 920 - 800  # down to the low 80%
    assert [d.container.id for d in data_fs.containers] == ["early", "late"]
    assert all(str(d.reason) == "disk-pressure" for d in data_fs.containers)
    off = plan_filesystems(
        _two_filesystems(100, 920),
        caps,
        image_settings(),
        container_settings(remove_under_disk_pressure=False),
    )
    assert off[1].under_pressure and off[1].containers == ()


def test_the_image_plan_ignores_a_full_data_root() -> None:
    """The data root full, containerd's filesystem not: no image is planned for it."""
    fss = _two_filesystems(100, 950)
    snap = replace(snapshot(fss[0], images=[image("a", 50), image("b", 50)]), filesystems=fss)
    p = plan(snap, history(), image_settings(), container_settings(), NOW)
    assert p.images.removals == ()
    assert [fp.under_pressure for fp in p.filesystems] == [False, True]


def test_target_on_a_filesystem_is_its_low_threshold() -> None:
    fss = _two_filesystems(100, 920)
    data_plan = plan_filesystems(fss, plan_containers([], container_settings(), NOW),
                                 image_settings(), container_settings())[1]  # fmt: skip
    assert not filesystem_target_met(stats("/docker", 810), plan=data_plan)
    assert filesystem_target_met(stats("/docker", 800), plan=data_plan)


# -- the cycle on a node with two filesystems (the fake's disk as the image filesystem) --------
class TwoDisks:
    """The fake's disk at /containerd; a data root at /docker whose use is dead containers'
    logs (100 bytes each) on top of `other`."""

    def __init__(self, fake: FakeRuntime, other: int) -> None:
        self.fake = fake
        self.other = other

    def __call__(self, path: str) -> FilesystemStats:
        if path == "/containerd":
            return replace(self.fake.measure(path), device=1)
        logs = 100 * sum(1 for c in self.fake.containers.values() if c.state.is_dead)
        return stats(path, self.other + logs, device=2)


@pytest.mark.parametrize("containers", [True, False])  # once; the daemon's image GC
def test_once_frees_a_full_data_root_of_dead_containers_and_no_image(
    tmp_path, caplog, containers: bool
) -> None:
    fake = FakeRuntime()
    fake.paths = [
        StorePath("/containerd", (IMAGES, CONTAINERS)),
        StorePath("/docker", (LOGS, VOLUMES)),
    ]
    fake.add_image(image("img", 100))
    fake.add_image(image("unused", 100))
    for n in range(4):
        fake.add_container(container(f"c{n}", "img", finished_at=ago(hours=n + 1)))
    disk = TwoDisks(fake, other=540)  # 540 + 4 x 100 = 94%
    state = StateDir(tmp_path / "state")
    settings = make_settings(
        state.path, "", images={"high_threshold_percent": 85, "low_threshold_percent": 75},
        containers={"max_per_pod_container": 5, "minimum_age": "0s"},
    )  # fmt: skip
    collector = Collector(settings, fake, state, clock=Clock(), measure=disk)
    with caplog.at_level(logging.INFO):
        report = collector.cycle(containers=containers)
    removed = [r.id for r in report.container_results if r.outcome is Outcome.REMOVED]
    assert removed == ["c3", "c2"]  # longest stopped first, down to 74%
    assert set(fake.images) == {"img", "unused"}
    after = {fs.path: fs.usage_percent for fs in report.filesystems_after}
    assert after == {"/containerd": 20, "/docker": 74}
    data = filesystems_json(report.plan, report.filesystems_after)
    assert [d["path"] for d in data] == ["/containerd", "/docker"]
    assert data[1]["roles"] == ["logs", "volumes"] and data[1]["under_pressure"] is True
    assert data[1]["after"]["usage_percent"] == 74
    assert any(getattr(r, "path", None) == "/docker" for r in caplog.records)


# -- containerd's roots ----------------------------------------------------------------------------
def test_the_containerd_store_is_told_by_driver_type() -> None:
    assert is_containerd_store({"DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]})
    assert not is_containerd_store({"DriverStatus": [["Backing Filesystem", "extfs"]]})
    assert not is_containerd_store({"DriverStatus": None})


def test_roots_are_read_from_the_plugins_that_work() -> None:
    plugins = [
        ("io.containerd.snapshotter.v1", "btrfs", {"root": "/r/btrfs"}, "not a btrfs fs"),
        ("io.containerd.snapshotter.v1", "native", {"root": "/r/native"}, ""),
        ("io.containerd.snapshotter.v1", "overlayfs", {"root": "/r/overlayfs"}, ""),
        ("io.containerd.content.v1", "content", {"root": "/r/content"}, ""),
        ("io.containerd.content.v1", "relative", {"root": "x"}, ""),
    ]
    assert plugin_roots(plugins, "overlayfs") == ("/r/content", "/r/overlayfs")
    assert plugin_roots(plugins, "btrfs") == ("/r/content", "")


def test_without_containerd_the_managed_layout_is_assumed_and_said(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        roots = store_roots(str(tmp_path / "no.sock"), "overlayfs", "/var/lib/docker")
    assert roots.snapshots == (
        "/var/lib/docker/containerd/daemon/io.containerd.snapshotter.v1.overlayfs"
    )
    assert roots.content == "/var/lib/docker/containerd/daemon/io.containerd.content.v1.content"
    assert "assumed" in roots.source
    assert "containerd's root could not be asked" in caplog.text
    paths = containerd_store_paths(roots, "/var/lib/docker")
    assert [p.roles for p in paths] == [(IMAGES, CONTAINERS), (IMAGES,), (LOGS, VOLUMES)]


# -- rendering ----------------------------------------------------------------------------------
def test_one_filesystem_renders_as_before() -> None:
    snap = snapshot(stats("/var/lib/docker", 500, roles=ALL_ROLES))
    p = plan(snap, history(), image_settings(), container_settings(), NOW)
    lines = filesystem_lines(p)
    assert lines == [
        "Filesystem /var/lib/docker: 50% used (500 B of 1000 B, 500 B free; 900 of 1,000 "
        "inodes free)"
    ]
    (entry,) = filesystems_json(p)
    assert entry["roles"] == ["images", "containers", "logs", "volumes"]
    assert entry["used_bytes"] == 500 and entry["after"] is None


def test_several_filesystems_each_have_a_line_with_their_roles() -> None:
    fss = _two_filesystems(100, 920)
    snap = replace(snapshot(fss[0]), filesystems=fss)
    p = plan(snap, history(), image_settings(), container_settings(), NOW)
    lines = filesystem_lines(p)
    assert lines[0].startswith("Filesystem /containerd (images, containers): 10% used")
    assert lines[1].startswith("Filesystem /docker (logs, volumes): 92% used")
    assert "removing images frees nothing here" in lines[2]


def test_a_snapshot_without_filesystems_measured_the_image_filesystem_alone() -> None:
    snap = snapshot()
    assert snap.measured == (snap.filesystem,)
    assert snap.store is LayerStore.ONE_COPY


# -- metrics ------------------------------------------------------------------------------------
def test_each_filesystem_has_its_own_series() -> None:
    from prometheus_client import CollectorRegistry

    from nodegc.daemon.metrics import Metrics

    registry = CollectorRegistry()
    metrics = Metrics(registry, node="n")
    fss = _two_filesystems(100, 920)
    metrics.observe_snapshot(replace(snapshot(fss[0]), filesystems=fss))
    data = {"filesystem": "/docker", "roles": "logs,volumes"}
    assert registry.get_sample_value("nodegc_filesystems_usage_ratio", data) == 0.92
    assert registry.get_sample_value("nodegc_filesystems_available_bytes", data) == 80
    image = {"filesystem": "/containerd", "roles": "images,containers"}
    assert registry.get_sample_value("nodegc_filesystems_capacity_bytes", image) == 1000
    # A later look with one filesystem drops the other's series.
    metrics.observe_snapshot(snapshot(fss[0]))
    assert registry.get_sample_value("nodegc_filesystems_usage_ratio", data) is None
