"""Tests for mutants of nodegc/policy that survived in the second part of the sample
(bench/results/mutation-2026-12-07-rest.log; bench/results/mutation-2026-12-07.md). Each
docstring names the mutant it kills (module:line as of main 2e6de7a, the kind and the change).
Calls go through tests/unit/_policy_calls.py.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

from nodegc.model import BuildCacheRecord, FilesystemStats, Layer, LayerStore
from nodegc.policy.fillrate import FillRate
from tests.unit._policy_calls import (
    bytes_met_with,
    plan_build_cache_with,
    plan_images_with,
    projected_with,
    seconds_until_high_with,
    seconds_until_level,
    store_costs_with,
    wanted_under,
    wanted_with,
    while_freeing_with,
)
from tests.unit.builders import ago, container, fs, history, image, record

READY = 10  # samples: the estimate is ready


def test_a_disk_not_filling_projects_nothing_and_one_byte_a_second_does():
    """seconds_until: a rate of exactly 0 is not filling (never, no division by zero); one byte
    a second is filling; and the time until the disk is full (level 0) is a time too.
    Kills fillrate.py:68 boundary `bytes_per_second <= 0` -> `< 0` and both off-by-ones
    (`bytes_per_second <= 1`, `level < 1`)."""
    assert seconds_until_level(600, 500, FillRate(0.0, 600, 0.0, READY)) is None
    assert seconds_until_level(600, 500, FillRate(1.0, 600, 0.0, READY)) == 100.0
    assert seconds_until_level(600, 0, FillRate(2.0, 600, 0.0, READY)) == 300.0


def test_the_trigger_names_the_byte_rule_when_bytes_and_inodes_are_both_asked():
    """With both the percent rule and the inode rule triggered, the trigger named is the byte
    rule's (`high_threshold`); `inode_high_threshold` only when no byte rule triggered.
    Kills targets.py:113 drop-term `not trigger and` (inodes always named)."""
    both = FilesystemStats("/d", 1000, 100, 1000, 20)
    assert wanted_with(both).trigger == "high_threshold"


def test_with_the_percent_rule_off_usage_above_low_meets_the_free_space_target():
    """bytes_met with high = 100 (percent rule off): only the free-space target counts, usage
    above the low threshold does not hold it back.
    Kills targets.py:135 drop-term `high < 100 and`."""
    after = FilesystemStats("/d", 1000, 300, 1000, 1000)  # 70% used, 300 free
    assert bytes_met_with(after, 100, 50, 300)
    assert not bytes_met_with(after, 85, 50, 300)


def test_an_inode_only_gc_does_not_turn_on_the_free_space_hysteresis():
    """while_freeing after a plan that found only inodes leaves the free-space rule as it was:
    free space above minimum_free (below target_free) asks for no bytes.
    Kills targets.py:149 drop-term `found_bytes and`."""
    later = while_freeing_with(
        found_bytes=False, found_inodes=True, minimum_free=100, target_free=300
    )
    assert wanted_under(FilesystemStats("/d", 1000, 200, 1000, 1000), later).bytes == 0


def _rec(rid: str, *, parent: str | None, used) -> BuildCacheRecord:
    return BuildCacheRecord(rid, parent, "regular", rid, False, False, 10, None, used, 0)


def test_a_child_record_never_used_nor_dated_leaves_its_parents_last_use():
    """A record's last use counts its descendants' where they have one: a child with no date
    at all (never used, no creation time) leaves the parent's last use as it is.
    Kills build_cache.py:83 drop-term `sub.last_used is not None and` (None compared)."""
    parent = _rec("p", parent=None, used=ago(days=3))
    child = _rec("c", parent="p", used=None)
    plan = plan_build_cache_with([parent, child], maximum_age=timedelta(days=1))
    assert {d.record.id: d.reason.value for d in plan.decisions} == {"c": "age", "p": "age"}


def test_a_lookahead_of_one_second_projects_a_trigger_one_second_away():
    """images.lookahead = 1s: a trigger projected 0.5 s away starts image GC now; exactly at
    the lookahead too.
    Kills fillrate.py:87 off-by-one `lookahead <= 0` -> `<= 1` and fillrate.py:90 boundary
    `eta <= lookahead` -> `<`."""
    disk = fs(1000, 160)  # 84% used: the trigger (85%) is at 159 bytes free and below
    half = FillRate(2.0, 160, 0.0, READY)  # 1 byte to go at 2 B/s: 0.5 s
    assert projected_with(disk, half, lookahead=timedelta(seconds=1))
    exact = FillRate(1.0, 160, 0.0, READY)  # 1 byte at 1 B/s: exactly 1 s
    assert projected_with(disk, exact, lookahead=timedelta(seconds=1))


def _one_decision_each(plan) -> bool:
    return all(n == 1 for n in Counter(d.image.id for d in plan.decisions).values())


def test_an_old_child_taken_with_its_old_parent_gets_one_decision():
    """Old images go for age children first; a child already taken with its parent is not
    taken again: every image has exactly one decision.
    Kills images.py:258 drop-term `image.id not in taken` (a duplicate age decision)."""
    parent = image("p", 100)
    child = replace(image("c", 50), parent_id="p")
    hist = history(since=ago(days=400), p=record(ago(days=300)), c=record(ago(days=200)))
    plan = plan_images_with(fs(1000, 900), [parent, child], hist=hist,
                            maximum_age=timedelta(days=30))  # fmt: skip
    assert _one_decision_each(plan)
    assert [d.image.id for d in plan.removals] == ["c", "p"]


def test_an_old_superseded_release_goes_once_for_age():
    """An old release that is also superseded goes once, for age (age removals come first).
    Kills images.py:261 drop-term `image.id not in taken` (a second, superseded decision)."""
    old, new = image("old", tags=["app:1"]), image("new", tags=["app:2"])
    hist = history(since=ago(days=400), old=record(ago(days=300)), new=record(ago(days=1)))
    plan = plan_images_with(fs(1000, 900), [old, new], hist=hist,
                            maximum_age=timedelta(days=30), keep_per_repository=1)  # fmt: skip
    assert _one_decision_each(plan)
    assert [(d.image.id, d.reason.value) for d in plan.removals] == [("old", "age")]


def test_a_minimum_free_of_one_byte_triggers_on_a_full_disk():
    """images.minimum_free is on from 1 byte: a disk with 0 bytes free is below it.
    Kills targets.py:63 off-by-one `minimum_free > 0` -> `> 1` and targets.py:80 off-by-one
    `target > 0` -> `> 1` (the byte asked for)."""
    full = FilesystemStats("/d", 1000, 0, 1000, 1000)
    asked = wanted_with(full, high_threshold_percent=100, minimum_free=1)
    assert (asked.trigger, asked.bytes) == ("minimum_free", 1)


def test_the_percent_rule_alone_triggered_is_the_trigger_named():
    """Only the percent rule triggered (free space above minimum_free): the trigger named is
    `high_threshold`, though the free-space target asks for more once started.
    Kills targets.py:91 drop-term `not by_bytes or` (the larger amount named the trigger)."""
    disk = FilesystemStats("/d", 1000, 150, 1000, 1000)  # 85% used, 150 free
    asked = wanted_with(disk, minimum_free=100, target_free=500)
    assert asked.trigger == "high_threshold"
    assert asked.bytes == 350


def test_content_bytes_follow_the_snapshot_sizes_even_of_a_single_byte():
    """Docker's containerd store: an image's content bytes are spread over its layers in
    proportion to their snapshot sizes, also when they add up to 1 byte (the 0-byte layer gets
    none).
    Kills space.py:218 off-by-one `unpacked > 0` -> `> 1` (spread evenly instead)."""
    layers = {"img": (Layer("a", 1), Layer("b", 0))}
    costed = store_costs_with(LayerStore.CONTENT_AND_SNAPSHOT, [image("img", 101)], layers)
    assert [layer.size_bytes for layer in costed["img"]] == [101, 0]


def test_the_trigger_level_is_the_most_free_space_at_which_the_percent_rule_triggers():
    """available_at_trigger for the lookahead is exact: 91 bytes at a high threshold of 90%
    trigger with 10 bytes free (100 - floor(10 * 100 / 91) = 90), so a disk there is at the
    trigger now (0 s), with or without a rate estimate.
    Kills fillrate.py:57 off-by-one `capacity * (101 - high) - 1` -> `- 2` (level 9)."""
    disk = FilesystemStats("/d", 91, 10, 1000, 1000)
    assert disk.usage_percent == 90
    no_estimate = FillRate(0.0, 10, 0.0, 1)
    assert seconds_until_high_with(disk, no_estimate, high_threshold_percent=90) == 0.0


def test_an_undated_parent_record_takes_its_childs_last_use():
    """A parent record with no date at all (never used, no creation time) counts as used when
    its child was: used 2 hours ago, within a maximum age of a day, both stay.
    Kills build_cache.py:83 drop-term `used is None or` (a None compared)."""
    parent = _rec("p", parent=None, used=None)
    child = _rec("c", parent="p", used=ago(hours=2))
    plan = plan_build_cache_with([parent, child], maximum_age=timedelta(days=1))
    assert {d.record.id: d.reason.value for d in plan.decisions} == {
        "c": "below-threshold",
        "p": "below-threshold",
    }


def test_an_image_mounted_as_a_volume_is_in_use():
    """An image a container mounts as a volume (`--mount type=image`) is in use like the
    container's own image, and kept under pressure.
    Kills images.py:103 negate `mounted != c.image_id` -> `==` (no test ran this line)."""
    own, mounted = image("own", 100), image("data", 300)
    user = replace(container("c", "own"), mounted_images=("data",))
    plan = plan_images_with(fs(1000, 50), [own, mounted], containers=[user])
    reasons = {d.image.id: d.reason.value for d in plan.decisions}
    assert reasons == {"own": "in-use", "data": "in-use"}


def test_once_bytes_were_wanted_later_plans_ask_down_to_the_low_threshold():
    """The kubelet's hysteresis for bytes: once an image GC found bytes wanted, its later plans
    ask for bytes at low + 1 (below the high threshold) and nothing at low.
    Kills targets.py:148 off-by-one `low_threshold_percent + 1` -> `+ 2`."""
    later = while_freeing_with(found_bytes=True, found_inodes=False)  # 85 / 80
    assert wanted_under(FilesystemStats("/d", 1000, 190, 1000, 1000), later).bytes == 10
    assert wanted_under(FilesystemStats("/d", 1000, 200, 1000, 1000), later).bytes == 0


def test_bytes_alone_are_pressure_and_a_tie_names_the_percent_rule():
    """What the disk asks: bytes alone make pressure (`Wanted.under_pressure`); when both byte
    rules trigger and ask for the same amount, the trigger named is the percent rule's.
    Kills targets.py:48 drop-term `self.bytes or` and targets.py:91 boundary `pct >= size` ->
    `>`."""
    disk = FilesystemStats("/d", 1000, 100, 1000, 1000)  # 90%: 100 bytes to 80%
    asked = wanted_with(disk, minimum_free=150, target_free=200)  # 100 bytes to 200 free
    assert asked.under_pressure and asked.inodes == 0
    assert (asked.trigger, asked.bytes) == ("high_threshold", 100)


def test_a_free_space_target_of_one_byte_is_missed_on_a_full_disk():
    """bytes_met: a free-space target of 1 byte is on, and a disk with 0 bytes free misses it.
    Kills targets.py:137 off-by-one `target > 0` -> `> 1`."""
    assert not bytes_met_with(FilesystemStats("/d", 1000, 0, 1000, 1000), 100, 50, 1)
