"""Every boundary of the policy pinned: a test at exactly each threshold, age limit and cap, and
one just past it, so that a flipped comparison (`<` for `<=`, `>` for `>=`) or an off-by-one in
the policy fails a test. One behaviour per test; each names the mutation it catches.

Thresholds follow the kubelet: pressure at usage >= high, the target is usage <= low. Ages: an
object is too young while younger than `minimum_age` (exactly that old is no longer too young),
and old only when unused for longer than `maximum_age` (exactly that long is not yet old).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from nodegc import policy
from nodegc.config import BuildCacheSettings, ContainerSettings
from nodegc.model import (
    Action,
    BuildCacheRecord,
    Container,
    ContainerState,
    DiskUsage,
    FilesystemStats,
    Image,
    Layer,
    Reason,
    Sandbox,
)
from nodegc.policy.build_cache import plan_build_cache, unshared_by
from nodegc.policy.containers import plan_containers
from nodegc.policy.images import (
    Counted,
    bytes_to_free,
    plan_images,
    pressure_kinds,
    target_met,
    under_disk_pressure,
    under_inode_pressure,
)
from nodegc.policy.sandboxes import LABEL_SANDBOX_ID, plan_sandboxes
from nodegc.policy.targets import inodes_amount
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
    pod_labels,
    record,
    snapshot,
)

HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


def inode_fs(used_percent: int, total: int = 1000) -> FilesystemStats:
    """A filesystem with plenty of bytes free and exactly `used_percent` of its inodes used."""
    return FilesystemStats("/d", 1000, 900, total, total * (100 - used_percent) // 100)


def image_reasons(p) -> dict[str, tuple[Action, Reason]]:
    return {d.image.id: (d.action, d.reason) for d in p.decisions}


def plan_one(images, *, disk, hist=None, containers=(), **settings):
    return plan_images(
        disk,
        list(images),
        list(containers),
        hist if hist is not None else history(),
        image_settings(**settings),
        NOW,
    )


# -- images: the byte thresholds ------------------------------------------------------------------


def test_bytes_at_exactly_the_high_threshold_is_pressure():
    """85% used, high 85: pressure (catches `>=` turned into `>`)."""
    assert under_disk_pressure(fs(1000, 150), 85)


def test_bytes_one_point_below_the_high_threshold_is_no_pressure():
    """84% used, high 85: no pressure, nothing wanted (catches `>=` turned into `<=`/dropped)."""
    assert not under_disk_pressure(fs(1000, 160), 85)
    assert bytes_to_free(fs(1000, 160), 85, 80) == 0


def test_bytes_high_threshold_100_is_off_even_on_a_full_disk():
    """high 100 switches the byte rule off (catches `high < 100` turned into `<=`)."""
    assert not under_disk_pressure(fs(1000, 0), 100)


def test_bytes_to_free_brings_usage_to_exactly_the_low_threshold():
    """At 90% with low 80, what is wanted lands the disk on exactly 80%, and 80% meets the
    target while 81% does not (catches an off-by-one in the arithmetic or `>` for `>=`)."""
    disk = fs(1000, 100)
    wanted = bytes_to_free(disk, 85, 80)
    assert wanted == 100
    assert disk.usage_percent_after(wanted) == 80
    assert disk.usage_percent_after(wanted - 10) == 81


def test_a_measurement_at_exactly_the_byte_low_threshold_meets_the_target():
    """target_met: usage == low is met (catches `>` turned into `>=`)."""
    p = plan_one([], disk=fs(1000, 100))
    assert target_met(fs(1000, 200), p)


def test_a_measurement_one_point_above_the_byte_low_threshold_misses_the_target():
    p = plan_one([], disk=fs(1000, 100))
    assert not target_met(fs(1000, 190), p)


# -- images: the inode thresholds -----------------------------------------------------------------


def test_inodes_at_exactly_the_inode_high_threshold_is_pressure():
    """95% of the inodes used, inode high 95: pressure (catches `>=` turned into `>`)."""
    assert under_inode_pressure(inode_fs(95), 95)
    assert inodes_amount(inode_fs(95), 95, 90) == 50


def test_inodes_one_point_below_the_inode_high_threshold_is_no_pressure():
    assert not under_inode_pressure(inode_fs(94), 95)
    assert inodes_amount(inode_fs(94), 95, 90) == 0


def test_inode_high_threshold_100_is_off_even_with_no_inode_free():
    """inode high 100 switches the inode rule off (catches `high < 100` turned into `<=`)."""
    assert not under_inode_pressure(inode_fs(100), 100)


def test_a_filesystem_without_inode_counts_is_never_under_inode_pressure():
    """inodes_total 0 (a filesystem that does not count them): no inode rule at all."""
    disk = FilesystemStats("/d", 1000, 900, 0, 0)
    assert not under_inode_pressure(disk, 1)


def test_inodes_to_free_brings_inode_usage_to_exactly_the_inode_low_threshold():
    """At 95% with inode low 90, what is wanted lands inode usage on exactly 90%."""
    disk = inode_fs(95)
    wanted = inodes_amount(disk, 95, 90)
    after = replace(disk, inodes_free=disk.inodes_free + wanted)
    assert after.inode_usage_percent == 90
    before_last = replace(disk, inodes_free=disk.inodes_free + wanted - 1)
    assert before_last.inode_usage_percent == 91


def test_a_measurement_at_exactly_the_inode_low_threshold_meets_the_target():
    """target_met: inode usage == inode low is met (catches `>` turned into `>=`)."""
    p = plan_one([], disk=inode_fs(95))
    assert p.inodes_to_free and not p.bytes_to_free
    assert target_met(inode_fs(90), p)


def test_a_measurement_one_point_above_the_inode_low_threshold_misses_the_target():
    p = plan_one([], disk=inode_fs(95))
    assert not target_met(inode_fs(91), p)


def test_pressure_kinds_name_inodes_at_exactly_the_inode_high_threshold():
    settings = image_settings(inode_high_threshold_percent=95, inode_low_threshold_percent=90)
    assert pressure_kinds(inode_fs(95), settings) == ("inodes",)
    assert pressure_kinds(inode_fs(94), settings) == ()


def test_inode_pressure_alone_makes_the_whole_plan_a_pressure_plan():
    """policy.plan: inode pressure alone counts as pressure (the build cache's target-reached
    versus below-threshold); catches `or bool(inodes)` dropped."""
    rec = _record("r", used=timedelta(minutes=30))
    snap = replace(snapshot(inode_fs(95)), disk_usage=DiskUsage(build_cache=(rec,)))
    p = policy.plan(
        snap,
        history(),
        image_settings(),
        container_settings(),
        NOW,
        build_cache=BuildCacheSettings(minimum_age=timedelta(0)),
    )
    assert [(d.action, d.reason) for d in p.build_cache.decisions] == [
        (Action.REMOVE, Reason.INODES)
    ]


# -- images: ages ---------------------------------------------------------------------------------


def test_an_image_first_seen_exactly_minimum_age_ago_is_a_candidate():
    p = plan_one(
        [image("a")],
        disk=fs(1000, 100),
        hist=history(a=record(ago(hours=2))),
        minimum_age=2 * HOUR,
    )
    assert image_reasons(p)["a"] == (Action.REMOVE, Reason.SPACE)


def test_an_image_first_seen_a_second_short_of_minimum_age_is_too_young():
    p = plan_one(
        [image("a")],
        disk=fs(1000, 100),
        hist=history(a=record(ago(hours=2) + SECOND)),
        minimum_age=2 * HOUR,
    )
    assert image_reasons(p)["a"] == (Action.KEEP, Reason.TOO_YOUNG)


def test_an_image_unused_exactly_maximum_age_is_not_old():
    p = plan_one(
        [image("a")],
        disk=fs(1000, 900),
        hist=history(a=record(ago(days=30), ago(days=7))),
        maximum_age=timedelta(days=7),
    )
    assert image_reasons(p)["a"] == (Action.KEEP, Reason.BELOW_THRESHOLD)


def test_an_image_unused_a_second_past_maximum_age_goes_for_age():
    p = plan_one(
        [image("a")],
        disk=fs(1000, 900),
        hist=history(a=record(ago(days=30), ago(days=7) - SECOND)),
        maximum_age=timedelta(days=7),
    )
    assert image_reasons(p)["a"] == (Action.REMOVE, Reason.AGE)


def test_maximum_age_acts_when_history_is_exactly_that_old():
    """History that began exactly maximum_age ago covers it (catches `>=` turned into `>`)."""
    p = plan_one(
        [image("a")],
        disk=fs(1000, 900),
        hist=history(since=ago(days=7), a=record(ago(days=7))),
        maximum_age=timedelta(days=7) - SECOND,
    )
    assert image_reasons(p)["a"] == (Action.REMOVE, Reason.AGE)


def test_maximum_age_waits_while_history_is_a_second_short_of_it():
    p = plan_one(
        [image("a")],
        disk=fs(1000, 900),
        hist=history(since=ago(days=7) + SECOND, a=record(ago(days=8))),
        maximum_age=timedelta(days=7),
    )
    assert image_reasons(p)["a"] == (Action.KEEP, Reason.BELOW_THRESHOLD)


# -- images: a parent and its children -----------------------------------------------------------


def _family(child_first_seen):
    """`base` and `child` built on it (classic builder), both unused, on a disk wanting both."""
    images = [image("base", 100), replace(image("child", 100), parent_id="base")]
    hist = history(base=record(ago(days=9)), child=record(child_first_seen))
    return plan_one(images, disk=fs(1000, 0), hist=hist, minimum_age=2 * HOUR)


def test_a_too_young_child_keeps_its_parent():
    """catches TOO_YOUNG dropped from the keeps that hold a parent."""
    p = _family(ago(minutes=5))
    assert image_reasons(p) == {
        "child": (Action.KEEP, Reason.TOO_YOUNG),
        "base": (Action.KEEP, Reason.PARENT_OF_IN_USE),
    }


def test_a_child_old_enough_goes_just_before_its_parent():
    p = _family(ago(hours=3))
    assert [d.image.id for d in p.removals] == ["child", "base"]


def test_a_kept_grandchild_keeps_every_ancestor():
    images = [
        image("root"),
        replace(image("mid"), parent_id="root"),
        replace(image("leaf"), parent_id="mid"),
    ]
    p = plan_one(
        images,
        disk=fs(1000, 0),
        containers=[container("c", "leaf", ContainerState.RUNNING)],
    )
    assert image_reasons(p)["mid"] == (Action.KEEP, Reason.PARENT_OF_IN_USE)
    assert image_reasons(p)["root"] == (Action.KEEP, Reason.PARENT_OF_IN_USE)


def test_an_old_parent_with_a_child_not_old_does_not_go_for_age():
    """For age, a parent goes only when everything built on it is old too."""
    images = [image("base"), replace(image("child"), parent_id="base")]
    hist = history(base=record(ago(days=30)), child=record(ago(days=30), ago(days=1)))
    p = plan_one(images, disk=fs(1000, 900), hist=hist, maximum_age=timedelta(days=7))
    assert image_reasons(p)["base"] == (Action.KEEP, Reason.BELOW_THRESHOLD)


# -- images: "exactly enough freed" stops --------------------------------------------------------


def test_the_image_walk_stops_when_freed_equals_needed():
    """100 wanted; the first image frees exactly 100: the second stays (catches `<` turned into
    `<=` in the stop rule)."""
    p = plan_one(
        [image("a", 100), image("b", 100)],
        disk=fs(1000, 100),
        hist=history(a=record(ago(days=2)), b=record(ago(days=1))),
    )
    assert [d.image.id for d in p.removals] == ["a"]
    assert image_reasons(p)["b"] == (Action.KEEP, Reason.TARGET_REACHED)


def test_the_image_walk_goes_on_while_one_byte_is_missing():
    p = plan_one(
        [image("a", 99), image("b", 100)],
        disk=fs(1000, 100),
        hist=history(a=record(ago(days=2)), b=record(ago(days=1))),
    )
    assert [d.image.id for d in p.removals] == ["a", "b"]


def test_what_was_freed_before_images_counts_exactly():
    """freed_before 100 of 100 wanted: no image goes."""
    p = plan_images(
        fs(1000, 100),
        [image("a")],
        [],
        history(),
        image_settings(),
        NOW,
        counted=Counted(freed_before=100),
    )
    assert not p.removals and p.target_reachable


def test_the_inode_walk_stops_when_freed_inodes_equal_needed():
    """50 inodes wanted; the first image frees exactly 50: the second stays."""
    images = [image("a", 1), image("b", 1)]
    layers = {"a": (Layer("la", 1, 50),), "b": (Layer("lb", 1, 50),)}
    p = plan_images(
        inode_fs(95),
        images,
        [],
        history(a=record(ago(days=2)), b=record(ago(days=1))),
        image_settings(),
        NOW,
        counted=Counted(layers=layers),
    )
    assert p.inodes_to_free == 50
    assert [(d.image.id, d.reason) for d in p.removals] == [("a", Reason.INODES)]


def test_bytes_are_named_before_inodes_while_both_are_short():
    """Both short: the reason is `space`; bytes covered, inodes still short: `inodes`."""
    disk = FilesystemStats("/d", 1000, 100, 1000, 50)
    images = [image("a", 100), image("b", 1)]
    layers = {"a": (Layer("la", 100, 10),), "b": (Layer("lb", 1, 40),)}
    p = plan_images(
        disk,
        images,
        [],
        history(a=record(ago(days=2)), b=record(ago(days=1))),
        image_settings(),
        NOW,
        counted=Counted(layers=layers),
    )
    assert [(d.image.id, d.reason) for d in p.removals] == [
        ("a", Reason.SPACE),
        ("b", Reason.INODES),
    ]


# -- containers -----------------------------------------------------------------------------------


def _one_dead(finished_ago: timedelta, **settings) -> tuple[Action, Reason]:
    c = container("c", created=ago(days=3), finished_at=NOW - finished_ago)
    p = plan_containers([c], container_settings(**settings), NOW)
    return p.decisions[0].action, p.decisions[0].reason


def test_a_container_finished_exactly_minimum_age_ago_is_a_candidate():
    """Counted from the finish time, not the creation (catches `<` turned into `<=`)."""
    assert _one_dead(HOUR, minimum_age=HOUR, max_per_pod_container=0) == (
        Action.REMOVE,
        Reason.PER_UNIT_CAP,
    )


def test_a_container_finished_a_second_short_of_minimum_age_is_too_young():
    assert _one_dead(HOUR - SECOND, minimum_age=HOUR, max_per_pod_container=0) == (
        Action.KEEP,
        Reason.TOO_YOUNG,
    )


def test_a_container_stopped_exactly_maximum_age_ago_is_not_removed_for_age():
    assert _one_dead(timedelta(days=2), maximum_age=timedelta(days=2)) == (
        Action.KEEP,
        Reason.WITHIN_CAP,
    )


def test_a_container_stopped_a_second_past_maximum_age_goes_for_age():
    assert _one_dead(timedelta(days=2) + SECOND, maximum_age=timedelta(days=2)) == (
        Action.REMOVE,
        Reason.AGE,
    )


def _unit(n: int) -> list[Container]:
    """n dead containers of one pod container, the newest last."""
    return [
        container(
            f"c{k}",
            created=ago(hours=10 - k),
            finished_at=ago(hours=9 - k),
            labels=pod_labels("uid", "app"),
        )
        for k in range(n)
    ]


def test_a_unit_at_exactly_its_cap_loses_nothing():
    p = plan_containers(_unit(2), container_settings(max_per_pod_container=2), NOW)
    assert not p.removals


def test_a_unit_one_past_its_cap_loses_its_oldest():
    p = plan_containers(_unit(3), container_settings(max_per_pod_container=2), NOW)
    assert [(d.container.id, d.reason) for d in p.removals] == [("c0", Reason.PER_UNIT_CAP)]


def test_a_negative_per_unit_cap_is_no_cap():
    p = plan_containers(_unit(3), container_settings(max_per_pod_container=-1), NOW)
    assert not p.removals


def _spread(n: int) -> list[Container]:
    """n dead containers, each its own unit, the newest last."""
    return [
        container(f"c{k}", created=ago(hours=10 - k), finished_at=ago(hours=9 - k), name=f"n{k}")
        for k in range(n)
    ]


def test_exactly_max_dead_containers_loses_nothing():
    """The global cap at exactly the cap (catches `>` turned into `>=`)."""
    p = plan_containers(_spread(3), container_settings(max_dead_containers=3), NOW)
    assert not p.removals


def test_one_past_max_dead_containers_loses_the_oldest():
    p = plan_containers(_spread(4), container_settings(max_dead_containers=3), NOW)
    assert [(d.container.id, d.reason) for d in p.removals] == [("c0", Reason.GLOBAL_CAP)]


def test_max_dead_containers_zero_removes_every_dead_container():
    """A cap of 0 is a cap (catches `cap >= 0` turned into `cap > 0`)."""
    p = plan_containers(_spread(2), container_settings(max_dead_containers=0), NOW)
    assert len(p.removals) == 2


def test_the_global_cap_trims_each_unit_to_its_share_first():
    """Two units of three, cap 4: each unit keeps cap // units = 2, the oldest of each go."""
    a = [
        container(
            f"a{k}",
            created=ago(hours=10 - k),
            finished_at=ago(hours=9 - k),
            labels=pod_labels("a", "x"),
        )
        for k in range(3)
    ]
    b = [
        container(
            f"b{k}",
            created=ago(hours=20 - k),
            finished_at=ago(hours=19 - k),
            labels=pod_labels("b", "x"),
        )
        for k in range(3)
    ]
    p = plan_containers(
        a + b, container_settings(max_dead_containers=4, max_per_pod_container=-1), NOW
    )
    assert sorted(d.container.id for d in p.removals) == ["a0", "b0"]


# -- dead containers under disk pressure: "exactly enough" -----------------------------------------


def _pressure_snapshot(sizes: dict[str, int]):
    containers = [
        container("old", "i1", finished_at=ago(hours=5), name="old"),
        container("new", "i2", finished_at=ago(hours=1), name="new"),
    ]
    disk = fs(1000, 100)  # 90%: 100 bytes wanted
    snap = snapshot(disk, [], containers)
    return replace(snap, disk_usage=DiskUsage(build_cache=(), container_sizes=sizes))


def test_dead_containers_under_pressure_stop_when_freed_equals_needed():
    """The oldest frees exactly the 100 bytes wanted: the newer one stays (catches `>=` turned
    into `>` in the stop rule)."""
    p = policy.plan(
        _pressure_snapshot({"old": 100, "new": 100}),
        history(),
        image_settings(),
        container_settings(),
        NOW,
    )
    by = {d.container.id: (d.action, d.reason) for d in p.containers.decisions}
    assert by == {
        "old": (Action.REMOVE, Reason.DISK_PRESSURE),
        "new": (Action.KEEP, Reason.WITHIN_CAP),
    }


def test_dead_containers_under_pressure_go_on_while_a_byte_is_missing():
    p = policy.plan(
        _pressure_snapshot({"old": 99, "new": 100}),
        history(),
        image_settings(),
        container_settings(),
        NOW,
    )
    assert {d.container.id for d in p.containers.removals} == {"old", "new"}


def test_an_image_a_pressured_container_leaves_counts_towards_the_need():
    """The oldest container's image (100, kept in use) is left unused: with it, exactly the need
    is covered, so the newer container stays."""
    containers = [
        container("old", "i1", finished_at=ago(hours=5), name="old"),
        container("new", "i2", finished_at=ago(hours=1), name="new"),
    ]
    snap = snapshot(fs(1000, 100), [image("i1", 100), image("i2", 100)], containers)
    snap = replace(snap, disk_usage=DiskUsage(build_cache=(), container_sizes={}))
    p = policy.plan(snap, history(), image_settings(), container_settings(), NOW)
    assert [d.container.id for d in p.containers.removals] == ["old"]
    assert [d.image.id for d in p.images.removals] == ["i1"]


# -- build cache ----------------------------------------------------------------------------------


def _record(record_id: str, *, used: timedelta | None, size: int = 100, **kw) -> BuildCacheRecord:
    last = None if used is None else NOW - used
    return BuildCacheRecord(
        id=record_id,
        parent=kw.pop("parent", None),
        type="regular",
        description=record_id,
        in_use=False,
        shared=kw.pop("shared", False),
        size_bytes=size,
        created_at=last,
        last_used=last,
        usage_count=1,
    )


def _cache_verdict(used: timedelta | None, **settings) -> tuple[Action, Reason]:
    p = plan_build_cache(
        [_record("r", used=used)], BuildCacheSettings(**settings), NOW, bytes_wanted=0
    )
    return p.decisions[0].action, p.decisions[0].reason


def test_a_record_used_exactly_minimum_age_ago_is_a_candidate():
    assert _cache_verdict(HOUR, minimum_age=HOUR) == (Action.KEEP, Reason.BELOW_THRESHOLD)


def test_a_record_used_a_second_short_of_minimum_age_is_too_young():
    assert _cache_verdict(HOUR - SECOND, minimum_age=HOUR) == (Action.KEEP, Reason.TOO_YOUNG)


def test_a_record_used_exactly_maximum_age_ago_is_not_old():
    verdict = _cache_verdict(timedelta(days=2), minimum_age=HOUR, maximum_age=timedelta(days=2))
    assert verdict == (Action.KEEP, Reason.BELOW_THRESHOLD)


def test_a_record_used_a_second_past_maximum_age_goes_for_age():
    verdict = _cache_verdict(
        timedelta(days=2) + SECOND, minimum_age=HOUR, maximum_age=timedelta(days=2)
    )
    assert verdict == (Action.REMOVE, Reason.AGE)


def test_a_record_that_never_says_when_it_was_used_goes_for_age_when_maximum_age_is_set():
    verdict = _cache_verdict(None, minimum_age=HOUR, maximum_age=timedelta(days=2))
    assert verdict == (Action.REMOVE, Reason.AGE)


def test_a_too_young_child_record_keeps_its_parent_record():
    records = [
        _record("parent", used=timedelta(days=1)),
        _record("child", used=timedelta(minutes=1), parent="parent"),
    ]
    p = plan_build_cache(records, BuildCacheSettings(minimum_age=HOUR), NOW, bytes_wanted=1000)
    assert {d.record.id: d.reason for d in p.decisions} == {
        "parent": Reason.TOO_YOUNG,
        "child": Reason.TOO_YOUNG,
    }


def test_the_build_cache_walk_stops_when_freed_equals_needed():
    records = [_record("a", used=timedelta(days=2)), _record("b", used=timedelta(days=1))]
    p = plan_build_cache(records, BuildCacheSettings(minimum_age=HOUR), NOW, bytes_wanted=100)
    assert [d.record.id for d in p.removals] == ["a"]
    assert {d.record.id: d.reason for d in p.decisions}["b"] is Reason.TARGET_REACHED


def test_the_build_cache_walk_goes_on_while_a_byte_is_missing():
    records = [_record("a", used=timedelta(days=2)), _record("b", used=timedelta(days=1))]
    p = plan_build_cache(records, BuildCacheSettings(minimum_age=HOUR), NOW, bytes_wanted=101)
    assert [d.record.id for d in p.removals] == ["a", "b"]


def test_age_removals_count_towards_the_build_cache_need():
    """An old record (removed for age) frees 100 of 100 wanted: nothing goes for space."""
    records = [_record("old", used=timedelta(days=9)), _record("b", used=timedelta(days=1))]
    settings = BuildCacheSettings(minimum_age=HOUR, maximum_age=timedelta(days=7))
    p = plan_build_cache(records, settings, NOW, bytes_wanted=100)
    assert [(d.record.id, d.reason) for d in p.removals] == [("old", Reason.AGE)]


def test_a_shared_record_unshared_by_the_plan_stops_when_freed_equals_needed():
    """unshared_by: with freed == wanted, a shared record stays shared."""
    layer = Layer("l1", 100, 0)
    rec = _record("r", used=timedelta(days=1), shared=True)
    cache_plan = plan_build_cache([rec], BuildCacheSettings(minimum_age=HOUR), NOW, bytes_wanted=0)
    held = {"build-cache:r": (layer,)}
    layers = {"img": (layer,)}
    kept = unshared_by(cache_plan, held, layers, ["img"], bytes_wanted=100, freed_before=100)
    assert [d.reason for d in kept.decisions] == [Reason.SHARED]
    taken = unshared_by(cache_plan, held, layers, ["img"], bytes_wanted=100, freed_before=99)
    assert [(d.action, d.reason) for d in taken.decisions] == [(Action.REMOVE, Reason.SPACE)]


# -- pod sandboxes ---------------------------------------------------------------------------------


def _sandbox(sandbox_id: str, created_ago: timedelta, **kw) -> Sandbox:
    return Sandbox(
        sandbox_id,
        kw.get("name", "web"),
        "default",
        kw.get("uid", "u1"),
        kw.get("attempt", 0),
        kw.get("ready", False),
        NOW - created_ago,
        {},
    )


SANDBOX_SETTINGS = ContainerSettings(minimum_age=HOUR)


def _sandbox_reasons(*sandboxes: Sandbox, containers=()) -> dict[str, Reason]:
    p = plan_sandboxes(sandboxes, containers, SANDBOX_SETTINGS, NOW)
    return {d.sandbox.id: d.reason for d in p.decisions}


def test_the_newest_sandbox_of_a_pod_is_kept_even_when_old_and_empty():
    assert _sandbox_reasons(
        _sandbox("old", timedelta(days=2)), _sandbox("new", timedelta(days=1))
    ) == {"new": Reason.NEWEST_OF_POD, "old": Reason.SUPERSEDED}


def test_sandboxes_of_different_pods_are_each_the_newest_of_their_own():
    assert _sandbox_reasons(
        _sandbox("a", timedelta(days=2), uid="u1"), _sandbox("b", timedelta(days=1), uid="u2")
    ) == {"a": Reason.NEWEST_OF_POD, "b": Reason.NEWEST_OF_POD}


def test_a_superseded_sandbox_created_exactly_minimum_age_ago_goes():
    assert _sandbox_reasons(_sandbox("old", HOUR), _sandbox("new", timedelta(0)))["old"] is (
        Reason.SUPERSEDED
    )


def test_a_superseded_sandbox_a_second_short_of_minimum_age_is_too_young():
    reasons = _sandbox_reasons(_sandbox("old", HOUR - SECOND), _sandbox("new", timedelta(0)))
    assert reasons["old"] is Reason.TOO_YOUNG


def test_a_superseded_sandbox_with_a_container_left_is_in_use():
    member = Container(
        "c", "app", "img", ContainerState.EXITED, NOW, labels={LABEL_SANDBOX_ID: "old"}
    )
    reasons = _sandbox_reasons(
        _sandbox("old", timedelta(days=2)), _sandbox("new", timedelta(days=1)), containers=[member]
    )
    assert reasons["old"] is Reason.IN_USE


def test_a_ready_superseded_sandbox_is_kept_ready():
    reasons = _sandbox_reasons(
        _sandbox("old", timedelta(days=2), ready=True), _sandbox("new", timedelta(days=1))
    )
    assert reasons["old"] is Reason.READY


# -- the fake agrees: what the boundary plans is what the disk shows ---------------------------


def test_the_plan_that_stops_at_exactly_enough_lands_the_fake_on_exactly_low():
    """Over the fake: 90% used, low 80; the plan's removals bring the disk to exactly 80%."""
    fake = FakeRuntime(capacity_bytes=1000)
    fake.add_image(Image("a", size_bytes=100))
    fake.add_image(Image("b", size_bytes=100))
    fake.other_used_bytes = 700
    disk = fake.measure("/d")
    assert disk.usage_percent == 90
    p = plan_images(
        disk,
        list(fake.images.values()),
        [],
        history(a=record(ago(days=2)), b=record(ago(days=1))),
        image_settings(),
        NOW,
        counted=Counted(layers=fake.image_layers(list(fake.images))),
    )
    for d in p.removals:
        fake.remove_image(d.image)
    after = fake.measure("/d")
    assert after.usage_percent == 80 and target_met(after, p)
    assert [d.image.id for d in p.removals] == ["a"]


def test_a_shared_record_whose_layer_is_not_known_stays_shared():
    """unshared_by: a shared record matched to no layer (held has none for it) is never turned
    into a removal, however short the plan falls (catches the `stack` term dropped)."""
    rec = _record("r", used=timedelta(days=1), shared=True)
    cache_plan = plan_build_cache([rec], BuildCacheSettings(minimum_age=HOUR), NOW, bytes_wanted=0)
    layers = {"img": (Layer("l1", 100, 0),)}
    out = unshared_by(cache_plan, {}, layers, ["img"], bytes_wanted=1000, freed_before=0)
    assert [(d.action, d.reason) for d in out.decisions] == [(Action.KEEP, Reason.SHARED)]


def test_a_shared_record_in_use_is_never_unshared_into_a_removal():
    """unshared_by: a shared record a build holds stays, even when its image goes."""
    layer = Layer("l1", 100, 0)
    rec = replace(_record("r", used=timedelta(days=1), shared=True), in_use=True)
    cache_plan = plan_build_cache([rec], BuildCacheSettings(minimum_age=HOUR), NOW, bytes_wanted=0)
    held = {"build-cache:r": (layer,)}
    out = unshared_by(cache_plan, held, {"img": (layer,)}, ["img"], 1000, 0)
    assert [d.action for d in out.decisions] == [Action.KEEP]


def test_a_shared_record_whose_image_stays_is_not_unshared():
    """unshared_by: only when every image holding its layer goes."""
    layer = Layer("l1", 100, 0)
    rec = _record("r", used=timedelta(days=1), shared=True)
    cache_plan = plan_build_cache([rec], BuildCacheSettings(minimum_age=HOUR), NOW, bytes_wanted=0)
    held = {"build-cache:r": (layer,)}
    layers = {"img": (layer,), "other": (layer,)}
    out = unshared_by(cache_plan, held, layers, ["img"], 1000, 0)
    assert [d.reason for d in out.decisions] == [Reason.SHARED]


def test_exactly_max_dead_containers_over_uneven_units_loses_nothing():
    """Two units of 2 and 1, cap 3: the total is at the cap, so no unit is trimmed to its share
    (catches `>` turned into `>=`, which trims the unit of 2 to cap // units = 1)."""
    a = [
        container(
            f"a{k}",
            created=ago(hours=10 - k),
            finished_at=ago(hours=9 - k),
            labels=pod_labels("a", "x"),
        )
        for k in range(2)
    ]
    b = [container("b0", created=ago(hours=3), finished_at=ago(hours=2), name="b")]
    p = plan_containers(
        a + b, container_settings(max_dead_containers=3, max_per_pod_container=-1), NOW
    )
    assert not p.removals


def test_a_shared_record_of_one_byte_is_matched_to_its_one_byte_layer():
    """shared_layers: any size above 0 identifies a layer (catches `> 0` turned into `> 1`)."""
    from nodegc.policy.build_cache import shared_layers

    rec = replace(_record("r", used=timedelta(days=1), size=1), shared=True)
    layer = Layer("l1", 1, 0)
    assert shared_layers([rec], {"img": (layer,)}) == {"build-cache:r": (layer,)}


def test_a_filesystem_of_one_inode_all_used_is_under_inode_pressure():
    """Any inode count above 0 counts (catches `inodes_total > 0` turned into `> 1`)."""
    assert under_inode_pressure(FilesystemStats("/d", 1000, 900, 1, 0), 95)


def test_an_event_use_of_an_image_never_used_before_sets_its_last_use():
    """record_events: an image whose record has no last use gets the event's time (catches
    `last_used is None` negated)."""
    from nodegc.policy.history import record_events

    hist = history(a=record(ago(days=3)))
    out = record_events(hist, {"a": ago(hours=1)})
    assert out.images["a"].last_used == ago(hours=1)
    assert out.images["a"].first_seen == ago(days=3)


def test_a_layer_listed_twice_by_an_added_holder_counts_once():
    """Ledger.add: duplicate keys of one holder count once (catches the dedup branch dropped)."""
    from nodegc.policy.space import Freed, Ledger

    ledger = Ledger({"img": [Layer("l1", 10, 0)]})
    ledger.add("cache:r", [Layer("l1", 10, 0), Layer("l1", 10, 0)])
    ledger.remove("img")
    assert ledger.remove("cache:r") == Freed(10, 0)


def test_a_holder_added_again_after_its_removal_holds_its_layers_once():
    """Ledger.add of a holder already removed: nothing is released twice (catches the `not in
    gone` term dropped)."""
    from nodegc.policy.space import Freed, Ledger

    ledger = Ledger({"img": [Layer("l1", 10, 0)], "other": [Layer("l1", 10, 0)]})
    ledger.remove("img")
    ledger.add("img", [Layer("l1", 10, 0)])
    assert ledger.remove("other") == Freed(0, 0)  # img holds l1 again
    assert ledger.remove("img") == Freed(10, 0)


def test_one_inode_wanted_is_wanted():
    """inodes_to_free == 1 still walks (catches `inodes_wanted > 0` turned into `> 1`)."""
    disk = FilesystemStats("/d", 1000, 900, 1000, 99)
    p = plan_images(
        disk,
        [image("a", 1)],
        [],
        history(a=record(ago(days=2))),
        image_settings(inode_high_threshold_percent=91, inode_low_threshold_percent=90),
        NOW,
        counted=Counted(layers={"a": (Layer("la", 1, 1),)}),
    )
    assert p.inodes_to_free == 1
    assert [(d.image.id, d.reason) for d in p.removals] == [("a", Reason.INODES)]


def test_an_image_naming_itself_as_parent_still_goes_for_age():
    """A malformed self-parent is no child of itself (catches the `and`s of the children test
    turned into `or`s)."""
    p = plan_one(
        [replace(image("a"), parent_id="a")],
        disk=fs(1000, 900),
        hist=history(a=record(ago(days=30))),
        maximum_age=timedelta(days=7),
    )
    assert image_reasons(p)["a"] == (Action.REMOVE, Reason.AGE)
