"""The pressure ladder (`policy/ladder.py`): its order, each step's start and stop condition, the
hysteresis at exactly the thresholds, the reason past the plan; and the collector carrying out
the policy's ladder (over the fake runtime, whose disk follows its images, records and writable
layers)."""

from __future__ import annotations

import pytest

from nodegc.collect import walks
from nodegc.collect.cycle import Collector
from nodegc.model import FilesystemStats, Layer, Reason
from nodegc.policy import targets
from nodegc.policy.ladder import Goal, Ladder, Rung, Step, plan_settings, pressure_ladder
from nodegc.state.store import StateDir
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import NOW, ago, container, image, image_settings, make_settings
from tests.unit.test_build_cache import rec

FS_PATH = "/fake/var/lib/docker"
ALL = (
    Step.BUILD_CACHE,
    Step.IMAGES,
    Step.UNSHARED_BUILD_CACHE,
    Step.DEAD_CONTAINERS,
    Step.IMAGES_LEFT,
    Step.BUILD_CACHE_LEFT,
)


def disk(usage: int = 0, *, inode_usage: int = 0, free: int | None = None) -> FilesystemStats:
    """A 1000-byte, 1000-inode filesystem at `usage` % (or with `free` bytes available)."""
    available = free if free is not None else 1000 - usage * 10
    return FilesystemStats("/d", 1000, available, 1000, 1000 - inode_usage * 10)


# -- the order and the start conditions ---------------------------------------------------------


def test_the_ladder_is_cache_images_unshared_containers_their_images_their_records():
    """Mutation: two steps swapped, or a step dropped, in the policy's ladder."""
    assert pressure_ladder(disk(90), image_settings()).steps == ALL


def test_without_dead_containers_under_pressure_the_ladder_ends_at_the_unshared_records():
    """Mutation: `containers.remove_under_disk_pressure` not turning the container steps off."""
    ladder = pressure_ladder(disk(90), image_settings(), dead_containers=False)
    assert ladder.steps == ALL[:3]


def test_only_the_first_two_steps_run_whatever_the_disk():
    """Mutation: `while_short` flipped on a step (age removals skipped, or a later step run on a
    disk already at its goal)."""
    ladder = pressure_ladder(disk(90), image_settings())
    assert [r.while_short for r in ladder.rungs] == [False, False, True, True, True, True]


def test_a_later_step_starts_only_after_the_step_it_follows_removed_something():
    """Mutation: the `after` test dropped (images-left planned when no container went) or the
    shared test dropped (a listing of the build cache for nothing)."""
    ladder = pressure_ladder(disk(90), image_settings())
    rungs = {r.step: r for r in ladder.rungs}
    unshared, left, cache_left = (
        rungs[Step.UNSHARED_BUILD_CACHE],
        rungs[Step.IMAGES_LEFT],
        rungs[Step.BUILD_CACHE_LEFT],
    )
    assert not ladder.starts(unshared, removed=set(), shared=True)
    assert not ladder.starts(unshared, removed={Step.IMAGES}, shared=False)
    assert ladder.starts(unshared, removed={Step.IMAGES}, shared=True)
    assert not ladder.starts(left, removed={Step.IMAGES}, shared=True)
    assert ladder.starts(left, removed={Step.DEAD_CONTAINERS}, shared=False)
    assert not ladder.starts(cache_left, removed={Step.DEAD_CONTAINERS}, shared=True)
    assert ladder.starts(cache_left, removed={Step.IMAGES_LEFT}, shared=False)
    assert ladder.starts(rungs[Step.DEAD_CONTAINERS], removed=set(), shared=False)


# -- the goal: every step's stop condition, at exactly the thresholds ----------------------------


def test_at_exactly_the_high_threshold_the_goal_asks_for_bytes_down_to_low():
    """Mutation: `>=` to `>` in the trigger the ladder's goal comes from."""
    goal = pressure_ladder(disk(85), image_settings()).goal
    assert (goal.bytes, goal.inodes, goal.trigger) == (50, 0, targets.HIGH_THRESHOLD)
    assert not pressure_ladder(disk(84), image_settings()).goal.under_pressure


def test_the_goal_is_met_at_exactly_the_low_threshold_and_not_a_byte_short():
    """Mutation: `>` to `>=` in the byte stop (a step going on past low), or the stop dropped."""
    goal = pressure_ladder(disk(90), image_settings()).goal
    assert goal.met(disk(80))
    assert not goal.met(disk(free=199))  # 81 %


def test_the_inode_goal_is_met_at_exactly_the_inode_low_threshold():
    """Mutation: the inode stop's comparison flipped, or inodes not asked at exactly high."""
    settings = image_settings(inode_high_threshold_percent=85, inode_low_threshold_percent=80)
    goal = pressure_ladder(disk(0, inode_usage=85), settings).goal
    assert goal.inodes == 50 and not goal.bytes
    assert goal.met(disk(0, inode_usage=80))
    assert not goal.met(disk(0, inode_usage=81))
    assert not pressure_ladder(disk(0, inode_usage=84), settings).goal.under_pressure


def test_the_byte_goal_is_met_at_exactly_target_free():
    """Mutation: `<` to `<=` in the free-space stop."""
    settings = image_settings(minimum_free=300, target_free=400, high_threshold_percent=100)
    goal = pressure_ladder(disk(free=299), settings).goal
    assert (goal.bytes, goal.trigger) == (101, targets.MINIMUM_FREE)
    assert goal.met(disk(free=400)) and not goal.met(disk(free=399))
    assert not pressure_ladder(disk(free=300), settings).goal.under_pressure


def test_without_pressure_the_goal_is_always_met():
    goal = pressure_ladder(disk(50), image_settings()).goal
    assert goal.met(disk(99))


def test_the_goal_is_what_the_first_plan_asks():
    """The ladder's goal and the plan's (`Goal.of`) agree: one rule, not two."""
    from tests.unit.test_boundaries import plan_one

    for usage in (84, 85, 90, 99):
        plan = plan_one([], disk=disk(usage))
        assert Goal.of(plan) == pressure_ladder(disk(usage), image_settings()).goal


# -- the hysteresis ------------------------------------------------------------------------------


def test_after_crossing_high_later_plans_aim_at_low_from_one_past_it():
    """Mutation: the ladder's later settings keep the configured high (a later step's plan
    would free nothing between low and high)."""
    ladder = pressure_ladder(disk(85), image_settings())
    assert ladder.settings.high_threshold_percent == 81
    assert targets.wanted(disk(81), ladder.settings).bytes == 10
    assert not targets.wanted(disk(80), ladder.settings).bytes


def test_after_crossing_the_inode_high_later_plans_aim_at_the_inode_low():
    settings = image_settings(inode_high_threshold_percent=85, inode_low_threshold_percent=80)
    ladder = pressure_ladder(disk(0, inode_usage=85), settings)
    assert ladder.settings.inode_high_threshold_percent == 81
    assert ladder.settings.high_threshold_percent == 85  # bytes were not asked for
    assert targets.wanted(disk(0, inode_usage=81), ladder.settings).inodes == 10


def test_below_the_thresholds_later_plans_keep_the_configured_settings():
    settings = image_settings()
    assert pressure_ladder(disk(84), settings).settings == settings


def test_projected_plans_as_if_high_were_crossed_and_says_so():
    """Mutation: the lookahead's first plan made with the configured high (nothing freed below
    it), or its trigger not `projected`."""
    ladder = pressure_ladder(disk(82), image_settings(), projected=True)
    assert (ladder.goal.bytes, ladder.goal.trigger) == (20, targets.PROJECTED)
    assert plan_settings(image_settings(), projected=True).high_threshold_percent == 81
    assert not pressure_ladder(disk(80), image_settings(), projected=True).goal.trigger


# -- the reason past the plan --------------------------------------------------------------------


def test_past_the_plan_space_while_bytes_are_short_then_inodes():
    """Mutation: the reason of a removal past the plan decided the other way round."""
    settings = image_settings(inode_high_threshold_percent=85, inode_low_threshold_percent=80)
    goal = pressure_ladder(disk(90, inode_usage=90), settings).goal
    assert goal.past_plan_reason(disk(81, inode_usage=90)) is Reason.SPACE
    assert goal.past_plan_reason(disk(80, inode_usage=90)) is Reason.INODES


# -- the collector carries out the policy's ladder -----------------------------------------------


class Rig:
    def __init__(self, tmp_path) -> None:
        self.fake = FakeRuntime(capacity_bytes=1000)
        self.state = StateDir(tmp_path / "state")

    def collector(self) -> Collector:
        settings = make_settings(self.state.path, FS_PATH, build_cache={"minimum_age": "10m"})
        return Collector(
            settings, self.fake, self.state, clock=lambda: NOW, measure=self.fake.measure
        )

    def removals(self) -> list[str]:
        return [c for c in self.fake.calls if c.startswith("remove_")]


def every_step(rig: Rig) -> None:
    """A disk where each step of the ladder frees too little alone: 150 bytes wanted; a record
    (10), an image whose layer a record holds (30, freed with the record), a dead container
    (40) whose image's layer a record holds (100)."""
    fake = rig.fake
    fake.add_record(rec("r0", 10, used=300))
    shared, app = Layer("l1", 30, 0), Layer("la", 100, 0)
    fake.add_image(image("img1"), tagged_at=ago(days=3), layers=[shared])
    fake.add_record(rec("rs", 30), holds=[shared])
    fake.add_image(image("app"), tagged_at=ago(days=3), layers=[app])
    fake.add_record(rec("ra", 100), holds=[app])
    fake.add_container(container("c1", "app", finished_at=ago(hours=2), name="c1"))
    fake.container_sizes = {"c1": 40}
    fake.other_used_bytes = 770  # used 950: 95 %, 150 bytes to 80 %


def test_the_cycle_climbs_every_step_of_the_policys_ladder_in_its_order(tmp_path):
    """Mutation: the collector running a step out of the policy's order, or skipping one."""
    rig = Rig(tmp_path)
    every_step(rig)
    report = rig.collector().cycle()
    assert report.steps == list(ALL)
    assert rig.removals() == [
        "remove_build_cache r0",
        "remove_image img1",
        "remove_build_cache rs",
        "remove_container c1",
        "remove_image app",
        "remove_build_cache ra",
    ]
    assert report.target_reached


def test_the_climb_ends_at_the_first_step_that_finds_the_goal_met(tmp_path):
    """A record alone covers what is wanted: no later step starts (no listing, no removal)."""
    rig = Rig(tmp_path)
    every_step(rig)
    rig.fake.other_used_bytes = 610  # used 880: 80 bytes to 80 %; the record r0 alone is 100
    rig.fake.build_cache["r0"] = rec("r0", 100, used=300)  # type: ignore[index]
    rig.fake.record_layers["r0"] = (Layer("cache:r0", 100, 0),)
    report = rig.collector().cycle()
    assert report.steps == [Step.BUILD_CACHE, Step.IMAGES]
    assert rig.removals() == ["remove_build_cache r0"]


def test_the_collector_carries_out_whatever_ladder_the_policy_gives(tmp_path, monkeypatch):
    """The order is the policy's, not the collector's: a ladder with the dead containers first
    is carried out in that order. Mutation: the collector hard-coding its own ladder."""
    rig = Rig(tmp_path)
    every_step(rig)
    real = walks.pressure_ladder

    def containers_first(*args, **kwargs) -> Ladder:
        ladder = real(*args, **kwargs)
        order = (Rung(Step.DEAD_CONTAINERS, while_short=False), Rung(Step.BUILD_CACHE))
        return Ladder(ladder.goal, ladder.settings, order)

    monkeypatch.setattr(walks, "pressure_ladder", containers_first)
    report = rig.collector().cycle()
    assert report.steps == [Step.DEAD_CONTAINERS, Step.BUILD_CACHE]
    assert rig.removals()[:2] == ["remove_container c1", "remove_build_cache r0"]


@pytest.mark.parametrize("inode_usage", [85, 90])
def test_a_record_taken_past_the_plan_under_inode_pressure_goes_for_inodes(tmp_path, inode_usage):
    """The reason of a build cache record removed past the plan is the policy's, as for an
    image (it was always `space`). Mutation: `past_plan_reason` not used for build cache."""
    from nodegc.collect.build_cache import past_plan
    from nodegc.model import Action, BuildCacheDecision

    settings = image_settings(inode_high_threshold_percent=85, inode_low_threshold_percent=80)
    goal = pressure_ladder(disk(90, inode_usage=inode_usage), settings).goal
    kept = BuildCacheDecision(rec("r", 10), Action.KEEP, Reason.TARGET_REACHED, 0)
    assert past_plan(kept, goal, disk(81, inode_usage=inode_usage)).reason is Reason.SPACE
    taken = past_plan(kept, goal, disk(80, inode_usage=inode_usage))
    assert (taken.action, taken.reason) == (Action.REMOVE, Reason.INODES)


# -- what a step's loop may take, and when sizes are asked -----------------------------------------


def test_a_loop_takes_planned_removals_and_target_reached_candidates_only():
    """Mutation: a kept image of another reason (in use, pinned, too young) handed to the loop,
    or `age`/`superseded` removals stopped at the goal."""
    from nodegc.model import Action
    from nodegc.policy.ladder import loop_may_take, whatever_the_disk

    assert loop_may_take(Action.REMOVE, Reason.SPACE)
    assert loop_may_take(Action.KEEP, Reason.TARGET_REACHED)
    for reason in (Reason.IN_USE, Reason.PINNED, Reason.TOO_YOUNG, Reason.BELOW_THRESHOLD):
        assert not loop_may_take(Action.KEEP, reason)
    assert {r for r in Reason if whatever_the_disk(r)} == {Reason.AGE, Reason.SUPERSEDED}


def test_writable_layer_sizes_are_asked_only_under_pressure_with_a_dead_container():
    """Mutation: a dropped condition (sizes asked below the thresholds, with the setting off,
    or with no dead container: a costly question for nothing)."""
    from nodegc.model import ContainerState
    from nodegc.policy.containers import sizes_needed
    from tests.unit.builders import container_settings

    dead = container("d", "img", finished_at=ago(hours=1))
    running = container("r", "img", state=ContainerState.RUNNING)
    on, off = container_settings(), container_settings(remove_under_disk_pressure=False)
    assert sizes_needed([running, dead], on, under_pressure=True)
    assert not sizes_needed([running, dead], on, under_pressure=False)
    assert not sizes_needed([running, dead], off, under_pressure=True)
    assert not sizes_needed([running], on, under_pressure=True)
