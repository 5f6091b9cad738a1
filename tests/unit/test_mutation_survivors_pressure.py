"""Tests for mutants of nodegc/policy (dead containers under pressure, the breakdown's
untouchable holders, targets of filesystems without images, the fill rate's trigger level)
that survived the unit suite (bench/mutate.py; bench/results/mutation-2026-12-07.md). Each
docstring names the mutant it kills (module:line as of main 2e6de7a, the kind and the change).
Calls go through tests/unit/_policy_calls.py.
"""

from __future__ import annotations

from nodegc.holders import Holder, HolderKind
from nodegc.model import FilesystemPlan, FilesystemStats, Reason
from nodegc.policy.fillrate import FillRate
from tests.unit._policy_calls import (
    breakdown_of,
    filesystem_target_met_with,
    plan_with,
    pressured_elsewhere_of,
    seconds_until_high_with,
    untouchable_of,
)
from tests.unit.builders import ago, container, fs, image, snapshot


def test_a_pinned_image_frees_nothing_when_its_dead_container_goes_under_pressure():
    """Under disk pressure, dead containers go until the target is covered, each counting the
    images it leaves unused: a pinned image stays whatever its containers do, so removing its
    last dead container frees nothing of it and the next dead container goes too.
    Kills __init__.py:163 and-or `d.action is KEEP and d.reason is IN_USE` -> `or` (a pinned
    image counted as freed, the walk stopped too early)."""
    pinned = image("pinned", 400, runtime_pinned=True)
    other = image("other", 50)
    first = container("c1", "pinned", created=ago(days=3), finished_at=ago(days=2))
    second = container("c2", "other", created=ago(days=2), finished_at=ago(days=1))
    snap = snapshot(fs(1000, 100), [pinned, other], [first, second])  # 90% used: 100 wanted
    plan = plan_with(snap)
    reasons = {d.container.id: d.reason for d in plan.containers.decisions}
    assert reasons == {"c1": Reason.DISK_PRESSURE, "c2": Reason.DISK_PRESSURE}


def test_untouchable_holders_are_those_of_some_bytes_one_byte_included():
    """The untouchable holders named in the breakdown are those holding bytes: one of a single
    byte is named, one of 0 bytes never.
    Kills breakdown.py:63 boundary `h.size_bytes > 0` -> `>= 0` and off-by-one `> 0` -> `> 1`."""
    disk = FilesystemStats("/d", 1000, 1000, 1000, 1000)  # nothing used: no rest
    holders = [
        Holder(HolderKind.VOLUMES_NAMED, "one", 1, False),
        Holder(HolderKind.VOLUMES_NAMED, "empty", 0, False),
    ]
    (b,) = breakdown_of([disk], holders)
    assert [h.name for h in untouchable_of(b, holders)] == ["one"]


def test_an_inode_only_filesystem_plan_is_met_at_the_inode_low_threshold():
    """A filesystem without images that asked only for inodes meets its target once inode
    usage is at the inode low threshold, whatever its bytes (between low and high).
    Kills filesystems.py:103 drop-term `plan.bytes_to_free and` (the bytes held against it) and
    filesystems.py:105 boundary `inode usage > low` -> `>=` (exactly at the low threshold)."""
    before = FilesystemStats("/var/log", 1000, 180, 1000, 40)
    plan = FilesystemPlan(before, 85, 80, 85, 80, 0, 160, ("container",))
    after = FilesystemStats("/var/log", 1000, 180, 1000, 200)  # 82% bytes, 80% inodes
    assert filesystem_target_met_with(after, plan)


def test_a_bytes_only_filesystem_plan_is_met_at_the_low_threshold_whatever_the_inodes():
    """A filesystem without images that asked only for bytes meets its target at the byte low
    threshold, whatever its inode usage (above the inode low threshold, below its high).
    Kills filesystems.py:105 drop-term `plan.inodes_to_free and` (the inodes held against it)."""
    before = FilesystemStats("/var/log", 1000, 100, 1000, 180)
    plan = FilesystemPlan(before, 85, 80, 85, 80, 100, 0, ("container",))
    after = FilesystemStats("/var/log", 1000, 200, 1000, 180)  # 80% bytes, 82% inodes
    assert filesystem_target_met_with(after, plan)


def test_with_the_percent_rule_off_nothing_projects_a_trigger():
    """images.high_threshold_percent = 100 (and no minimum_free) turns the byte rules off: the
    lookahead projects no trigger at any rate, even on an almost full disk.
    Kills fillrate.py:56 boundary `high < 100` -> `<=` and off-by-one `100` -> `101`."""
    filling = FillRate(1000.0, 5, 0.0, 10)
    assert seconds_until_high_with(fs(1000, 5), filling, high_threshold_percent=100) is None


def test_the_biggest_holders_named_are_those_of_some_bytes():
    """The breakdown's biggest holders, named one by one, leave out holders of 0 bytes (an
    empty volume, a log never written); one of a single byte is named.
    Kills breakdown.py:40 drop-term `h.size_bytes > 0` (a 0-byte holder named), its boundary
    `> 0` -> `>= 0` and off-by-one `> 0` -> `> 1`."""
    disk = FilesystemStats("/d", 1000, 900, 1000, 1000)
    holders = [
        Holder(HolderKind.VOLUMES_NAMED, "data", 60, False),
        Holder(HolderKind.LOGS, "quiet", 0, True),
        Holder(HolderKind.LOGS, "tiny", 1, True),
    ]
    (b,) = breakdown_of([disk], holders)
    assert [h.name for h in b.biggest] == ["data", "tiny"]


def test_a_filesystem_below_its_thresholds_is_not_pressured_whatever_it_holds():
    """pressured_elsewhere: only filesystems without images under pressure, with dead
    containers to remove, are walked; one that asks for nothing is not, even with containers
    in its plan.
    Kills filesystems.py:110 drop-term `p.under_pressure and`."""
    logs = FilesystemStats("/var/log", 1000, 900, 1000, 900)
    dead = container("c", "img", created=ago(days=2), finished_at=ago(days=1))
    walked = plan_with(snapshot(fs(1000, 900), [image("img")], [dead])).containers.decisions
    calm = FilesystemPlan(logs, 85, 80, 85, 80, 0, 0, ("container",), walked)
    hot = FilesystemPlan(logs, 85, 80, 85, 80, 100, 0, ("container",), walked)
    assert pressured_elsewhere_of([calm, hot]) == [hot]
