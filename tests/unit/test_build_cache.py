"""Build cache GC and dead containers under disk pressure: the policy, and the cycle over the
fake runtime (whose disk follows its images, build cache records and writable layers)."""

from __future__ import annotations

from datetime import timedelta

import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from nodegc import policy
from nodegc.collect.cycle import Collector
from nodegc.config import BuildCacheSettings
from nodegc.model import Action, BuildCacheRecord, Layer, Reason
from nodegc.policy.build_cache import plan_build_cache, removal_order, shared_layers
from nodegc.state.store import StateDir
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import (
    NOW,
    ago,
    container,
    container_settings,
    fs,
    history,
    image,
    image_settings,
    make_settings,
    snapshot,
)

FS_PATH = "/fake/var/lib/docker"


def rec(
    id: str,
    size: int = 100,
    *,
    used: float = 60,  # minutes ago
    parent: str | None = None,
    in_use: bool = False,
    shared: bool = False,
) -> BuildCacheRecord:
    return BuildCacheRecord(
        id=id,
        parent=parent,
        type="regular",
        description=f"mount / from exec {id}",
        in_use=in_use,
        shared=shared,
        size_bytes=size,
        created_at=ago(days=1),
        last_used=ago(minutes=used),
        usage_count=1,
    )


def cache(**kw: object) -> BuildCacheSettings:
    return BuildCacheSettings(**{"minimum_age": timedelta(minutes=10), **kw})


def verdicts(plan) -> dict[str, tuple[Action, Reason]]:
    return {d.record.id: (d.action, d.reason) for d in plan.decisions}


# -- the policy -----------------------------------------------------------------------------------


def test_least_recently_used_records_go_until_the_need_is_covered():
    records = [rec("new", used=20), rec("old", used=300), rec("mid", used=100)]
    plan = plan_build_cache(records, cache(), NOW, bytes_wanted=150)
    assert [d.record.id for d in plan.removals] == ["old", "mid"]
    assert verdicts(plan)["new"] == (Action.KEEP, Reason.TARGET_REACHED)
    assert plan.bytes_planned == 200


def test_in_use_shared_and_young_records_stay_and_keep_their_parents():
    records = [
        rec("base", used=500),
        rec("busy", parent="base", in_use=True),
        rec("img-base", used=500),
        rec("img", parent="img-base", shared=True),
        rec("young-base", used=500),
        rec("young", parent="young-base", used=1),
    ]
    plan = plan_build_cache(records, cache(), NOW, bytes_wanted=10_000)
    v = verdicts(plan)
    assert v["busy"] == v["base"] == (Action.KEEP, Reason.IN_USE)
    assert v["img"] == v["img-base"] == (Action.KEEP, Reason.SHARED)
    assert v["young"] == v["young-base"] == (Action.KEEP, Reason.TOO_YOUNG)
    assert plan.removals == ()


def test_children_go_before_their_parents():
    records = [rec("p", used=500), rec("c", used=400, parent="p"), rec("g", used=400, parent="c")]
    assert [r.id for r in removal_order(records)] == ["g", "c", "p"]
    plan = plan_build_cache(records, cache(), NOW, bytes_wanted=10_000)
    assert [d.record.id for d in plan.removals] == ["g", "c", "p"]


def test_below_the_thresholds_only_age_removes():
    records = [rec("ancient", used=60 * 24 * 3), rec("recent", used=60)]
    plan = plan_build_cache(records, cache(maximum_age=timedelta(days=2)), NOW, bytes_wanted=0)
    assert verdicts(plan) == {
        "ancient": (Action.REMOVE, Reason.AGE),
        "recent": (Action.KEEP, Reason.BELOW_THRESHOLD),
    }


def test_inode_pressure_removes_every_candidate_for_inodes():
    records = [rec("a", used=300), rec("b", used=200)]
    plan = plan_build_cache(records, cache(), NOW, bytes_wanted=0, inodes_wanted=True)
    assert {v for v in verdicts(plan).values()} == {(Action.REMOVE, Reason.INODES)}


def test_off_or_without_build_cache_nothing_is_said():
    assert not plan_build_cache(None, cache(), NOW, bytes_wanted=100).observed
    off = plan_build_cache([rec("a")], cache(enabled=False), NOW, bytes_wanted=100)
    assert not off.observed and off.decisions == ()


def test_bytes_reclaimable_counts_records_neither_in_use_nor_shared():
    records = [rec("a", 10), rec("b", 20, in_use=True), rec("c", 40, shared=True), rec("d", 80)]
    assert plan_build_cache(records, cache(), NOW, bytes_wanted=0).bytes_reclaimable == 90


def test_a_shared_record_is_matched_to_the_one_layer_of_its_size():
    layers = {"i1": (Layer("base", 50), Layer("l1", 300)), "i2": (Layer("base", 50),)}
    held = shared_layers([rec("r", 300, shared=True), rec("u", 50)], layers)
    assert held == {"build-cache:r": (Layer("l1", 300),)}
    twin = {**layers, "i3": (Layer("l3", 300),)}
    assert shared_layers([rec("r", 300, shared=True)], twin) == {}


@st.composite
def trees(draw):
    n = draw(st.integers(1, 12))
    out = []
    for i in range(n):
        parent = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        out.append(
            rec(
                f"r{i}",
                draw(st.integers(0, 100)),
                used=draw(st.integers(0, 600)),
                parent=None if parent is None else f"r{parent}",
                in_use=draw(st.booleans()) and draw(st.booleans()),
                shared=draw(st.booleans()) and draw(st.booleans()),
            )
        )
    return out, draw(st.integers(0, 600))


@hypothesis.settings(max_examples=200)
@given(trees())
def test_property_no_parent_is_planned_before_or_without_its_children(node):
    """Whatever the records: a removed record's children are removed before it (the engine keeps
    a parent with children), nothing in use, shared or young is removed, and the walk stops at
    the first record that covers the need."""
    records, wanted = node
    plan = plan_build_cache(records, cache(), NOW, bytes_wanted=wanted)
    order = [d.record.id for d in plan.removals]
    for d in plan.removals:
        children = [r.id for r in records if r.parent == d.record.id]
        assert all(c in order and order.index(c) < order.index(d.record.id) for c in children)
        assert not d.record.in_use and not d.record.shared
        assert NOW - d.record.last_used >= timedelta(minutes=10)
    space = [d for d in plan.removals if d.reason is Reason.SPACE]
    if space:
        assert sum(d.frees_bytes for d in space[:-1]) < wanted


# -- the pressure order ---------------------------------------------------------------------------


def _snapshot_with(records, sizes, disk, images=(), containers=()):
    from dataclasses import replace

    from nodegc.model import DiskUsage

    snap = snapshot(disk, list(images), list(containers))
    return replace(snap, disk_usage=DiskUsage(build_cache=tuple(records), container_sizes=sizes))


def test_build_cache_first_then_images_for_what_is_left():
    """Usage 95%, low 80: 150 bytes wanted; the cache frees 100, so one image (100) follows."""
    snap = _snapshot_with(
        [rec("r", 100, used=300)],
        {},
        fs(1000, 50),
        images=[image("a", 100), image("b", 100)],
    )
    hist = history()
    p = policy.plan(snap, hist, image_settings(), container_settings(), NOW, build_cache=cache())
    assert [d.record.id for d in p.build_cache.removals] == ["r"]
    assert len(p.images.removals) == 1 and p.images.freed_before == 100
    assert p.images.target_reachable


def test_dead_containers_go_last_longest_stopped_first_never_kept_or_young():
    """Nothing else to free: the dead containers the caps keep go, longest stopped first, with
    their writable layers; the keep-labelled and the too-young stay."""
    containers = [
        container("old", "i", finished_at=ago(hours=5), name="old"),
        container("mid", "i2", finished_at=ago(hours=3), name="mid"),
        container("new", "i3", finished_at=ago(hours=1), name="new"),
        container(
            "kept", "i4", finished_at=ago(hours=9), name="kept", labels={"nodegc.io/keep": "true"}
        ),
        container("fresh", "i5", finished_at=ago(seconds=5), name="fresh"),
    ]
    sizes = {"old": 60, "mid": 60, "new": 60, "kept": 500, "fresh": 500}
    snap = _snapshot_with([], sizes, fs(1000, 100), containers=containers)
    p = policy.plan(
        snap,
        history(),
        image_settings(),
        container_settings(minimum_age=timedelta(minutes=1)),
        NOW,
        build_cache=cache(),
    )
    by = {d.container.id: (d.action, d.reason) for d in p.containers.decisions}
    assert by["old"] == by["mid"] == (Action.REMOVE, Reason.DISK_PRESSURE)
    assert by["new"] == (Action.KEEP, Reason.WITHIN_CAP)
    assert by["kept"] == (Action.KEEP, Reason.KEEP_LABEL)
    assert by["fresh"] == (Action.KEEP, Reason.TOO_YOUNG)
    off = policy.plan(
        snap,
        history(),
        image_settings(),
        container_settings(remove_under_disk_pressure=False),
        NOW,
        build_cache=cache(),
    )
    assert not [d for d in off.containers.removals if d.reason is Reason.DISK_PRESSURE]


# -- the cycle over the fake ----------------------------------------------------------------------


class Rig:
    def __init__(self, tmp_path, capacity=1000):
        self.fake = FakeRuntime(capacity_bytes=capacity)
        self.state = StateDir(tmp_path / "state")

    def collector(self, **kw) -> Collector:
        kw.setdefault("build_cache", {"minimum_age": "10m"})
        settings = make_settings(self.state.path, FS_PATH, **kw)
        return Collector(
            settings, self.fake, self.state, clock=lambda: NOW, measure=self.fake.measure
        )

    def removals(self) -> list[str]:
        return [c for c in self.fake.calls if c.startswith("remove_")]


def test_cycle_prunes_cache_before_images_and_stops_at_low(tmp_path):
    rig = Rig(tmp_path)
    rig.fake.add_image(image("img", 100), tagged_at=ago(days=3))
    for n, used in enumerate((300, 200, 100)):
        rig.fake.add_record(rec(f"r{n}", 100, used=used))
    rig.fake.other_used_bytes = 500  # used 900: 90%, 100 bytes to 80%
    report = rig.collector().cycle()
    assert rig.removals() == ["remove_build_cache r0"]
    assert rig.fake.measure(FS_PATH).usage_percent <= 80
    assert report.target_reached and "img" in rig.fake.images
    assert [r.kind for r in report.results] == ["build-cache"]


def test_cycle_removes_the_image_then_the_record_it_unshared(tmp_path):
    """The image's layer is a shared record: removing the image frees nothing by itself; the
    record, unshared now, goes in the same cycle and the disk gets its bytes."""
    rig = Rig(tmp_path)
    layer = Layer("l1", 200, 0)
    rig.fake.add_image(image("img"), tagged_at=ago(days=3), layers=[layer])
    rig.fake.add_record(rec("r", 200), holds=[layer])
    rig.fake.other_used_bytes = 700  # 90%
    plan = rig.collector().report()
    assert [d.record.id for d in plan.build_cache.removals] == ["r"]  # after its image
    assert [d.frees_bytes for d in plan.images.removals] == [0]
    report = rig.collector().cycle()
    assert rig.removals() == ["remove_image img", "remove_build_cache r"]
    assert report.target_reached


def test_dead_containers_go_after_cache_and_images_then_their_image(tmp_path):
    rig = Rig(tmp_path)
    rig.fake.add_image(image("app", 50), tagged_at=ago(days=3))
    rig.fake.add_container(container("c1", "app", finished_at=ago(hours=2), name="c1"))
    rig.fake.container_sizes = {"c1": 100}
    rig.fake.add_record(rec("r", 20, used=300))
    rig.fake.other_used_bytes = 780  # used 950: 150 to free; cache 20 + writable 100 + image 50
    report = rig.collector().cycle()
    assert rig.removals() == ["remove_build_cache r", "remove_container c1", "remove_image app"]
    assert report.target_reached
    reasons = {r.id: r.reason for r in report.results}
    assert reasons["c1"] is Reason.DISK_PRESSURE


def test_below_the_thresholds_no_build_cache_or_size_question(tmp_path):
    rig = Rig(tmp_path)
    rig.fake.add_record(rec("r", 100, used=300))
    rig.fake.add_container(container("c", "x", finished_at=ago(hours=2)))
    gc = rig.collector()
    gc.cycle()
    gc.cycle()
    assert rig.fake.disk_usage_asked == []
    gc.report()
    # report asks what a cycle would ask: below the thresholds, not the costly /system/df
    assert rig.fake.disk_usage_asked == []


def test_an_engine_without_build_cache_is_silent(tmp_path):
    rig = Rig(tmp_path)
    rig.fake.build_cache = None
    rig.fake.add_image(image("img", 100), tagged_at=ago(days=3))
    rig.fake.other_used_bytes = 800
    report = rig.collector().cycle()
    assert not report.build_cache_plan.observed and report.build_cache_results == []
    assert rig.removals() == ["remove_image img"]


def test_a_record_in_use_by_the_time_of_removal_is_skipped(tmp_path):
    rig = Rig(tmp_path)
    rig.fake.add_record(rec("r", 200, used=300))
    rig.fake.other_used_bytes = 700

    def build_starts(record_id: str) -> None:
        from dataclasses import replace

        rig.fake.build_cache[record_id] = replace(rig.fake.build_cache[record_id], in_use=True)

    rig.fake.before_remove = build_starts
    report = rig.collector().cycle()
    assert [str(r.outcome) for r in report.build_cache_results] == ["skipped"]
    assert "r" in rig.fake.build_cache


def test_under_inode_pressure_every_dead_container_the_caps_keep_is_a_candidate():
    """No per-container inode counts: under inode pressure all of them are planned (the closed
    loop stops at the inode target), longest stopped first."""
    containers = [
        container("a", "i1", finished_at=ago(hours=5), name="a"),
        container("b", "i2", finished_at=ago(hours=3), name="b"),
    ]
    disk = fs(1000, 900)
    from dataclasses import replace as _replace

    disk = _replace(disk, inodes_total=1000, inodes_free=10)  # 99% of inodes used
    snap = _snapshot_with([], {}, disk, containers=containers)
    p = policy.plan(snap, history(), image_settings(), container_settings(), NOW)
    assert {d.container.id for d in p.containers.removals} == {"a", "b"}
    assert {d.reason for d in p.containers.removals} == {Reason.DISK_PRESSURE}
