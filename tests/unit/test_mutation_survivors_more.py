"""More tests for mutants of nodegc/policy that survived the unit suite (bench/mutate.py;
bench/results/mutation-2026-12-07.md): history's id prefixes, the ledger's restore, superseded
releases of a malformed parent, the build cache retry, the fill rate at its level, finish times
at the global cap, filesystems without images below their thresholds. Each docstring names the
mutant it kills (module:line as of main 2e6de7a, the kind and the change). Calls go through
tests/unit/_policy_calls.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from nodegc.holders import HolderKind
from nodegc.model import (
    Action,
    BuildCacheRecord,
    Container,
    FilesystemPlan,
    FilesystemRole,
    FilesystemStats,
    Layer,
    Reason,
    RuntimeEvent,
    Snapshot,
)
from nodegc.policy.fillrate import FillRate
from tests.unit._policy_calls import (
    breakdown_of,
    finish_times_needed_with,
    ledger_of,
    plan_images_with,
    plan_with,
    retry_refused_for,
    seconds_until_level,
    short_text_of,
    uses_from_events_with,
)
from tests.unit.builders import NOW, ago, container, fs, history, image, record, snapshot

HOUR = timedelta(hours=1)


def test_a_short_all_hex_reference_is_a_name_not_an_id_prefix():
    """An event's image reference of fewer than 12 hex digits (`cafe`, a valid repository name)
    is read as a name (`cafe:latest`), never as the prefix of an image id.
    Kills history.py:123 drop-term `len(hex_part) >= 12 and` (short names taken for ids)."""
    by_id = image("sha256:cafe" + "0" * 60)
    by_name = image("sha256:" + "b" * 64, tags=["cafe:latest"])
    event = RuntimeEvent("container", "start", "c1", None, NOW - HOUR, image_ref="cafe")
    assert uses_from_events_with([event], [by_id, by_name]) == {by_name.id: NOW - HOUR}


def test_restoring_a_holder_that_was_not_removed_changes_nothing():
    """Ledger.restore undoes a removal; a holder that was not removed is left as it is (its
    layers are not counted twice).
    Kills space.py:122 drop-if `if holder in self._gone` in restore (and its negation)."""
    ledger = ledger_of({"a": [Layer("L", 100)], "b": [Layer("L", 100)]})
    ledger.remove("a")
    assert ledger.frees("b").bytes == 100
    ledger.restore("b")
    assert ledger.frees("b").bytes == 100
    ledger.restore("a")
    assert ledger.frees("b").bytes == 0


def test_an_image_naming_itself_its_parent_can_still_be_superseded():
    """An image whose parent id is its own id (a malformed listing) is nobody's parent: with
    one release kept per repository it is superseded like any other older release.
    Kills superseded.py:80 drop-term `i.parent_id != i.id` (it counted as its own parent)."""
    old = replace(image("old", tags=["app:1"]), parent_id="old")
    new = image("new", tags=["app:2"])
    hist = history(old=record(ago(days=3)), new=record(ago(days=1)))
    plan = plan_images_with(fs(1000, 900), [old, new], hist=hist, keep_per_repository=1)
    assert [(d.image.id, d.reason) for d in plan.removals] == [("old", Reason.SUPERSEDED)]


def _record(record_id: str) -> BuildCacheRecord:
    return BuildCacheRecord(record_id, None, "regular", record_id, False, False, 10, NOW, NOW, 1)


def test_a_lone_refused_record_is_not_tried_again():
    """A refused build cache record is tried again after the others only where the engine
    names no parent and there are others to go first: a lone record is not.
    Kills build_cache.py:177 boundary `len(records) > 1` -> `>= 1`."""
    assert retry_refused_for([_record("a")]) is False
    assert retry_refused_for([_record("a"), _record("b")]) is True


def test_free_space_already_at_the_trigger_level_is_there_now_without_an_estimate():
    """seconds_until: free space at exactly the level is there already (0 s), even before the
    rate estimate is ready; one byte above it, with no estimate, is never.
    Kills fillrate.py:66 boundary `available <= level` -> `<`."""
    no_estimate = FillRate(0.0, 500, 0.0, 1)
    assert seconds_until_level(500, 500, no_estimate) == 0.0
    assert seconds_until_level(501, 500, no_estimate) is None


def _window(name: str, created: datetime) -> Container:
    c = container(name, "img", created=created, name=name)
    return replace(c, finished_at=None, finished_after=created, finished_before=ago(hours=2))


def test_candidates_exactly_at_the_global_cap_need_no_finish_time_for_order():
    """With exactly `max_dead_containers` candidates the global cap removes none: two of them
    created in the same second (different units) need no finish time to be ordered; one over
    the cap they do.
    Kills finish_times.py:121 boundary `len(candidates) > max_dead_containers` -> `>=`."""
    same = ago(hours=5)
    pair = [_window("a", same), _window("b", same)]
    used = history(img=record(ago(days=9), last_used=NOW))
    snap = snapshot(containers=pair)
    assert finish_times_needed_with(snap, hist=used, max_dead_containers=2) == []
    assert finish_times_needed_with(snap, hist=used, max_dead_containers=1) == ["a", "b"]


def test_a_filesystem_without_images_below_its_thresholds_plans_no_container():
    """A filesystem holding only containers' logs below the high threshold asks for nothing and
    gets no dead container planned (dead containers go for disk pressure only under pressure).
    Kills filesystems.py:79 drop-term `plan.under_pressure and` (every non-image filesystem
    got the dead containers)."""
    logs = FilesystemStats("/var/log", 1000, 900, 1000, 900, roles=(FilesystemRole.LOGS,))
    images = FilesystemStats("/var/lib/docker", 1000, 900, 1000, 900,
                             roles=(FilesystemRole.IMAGES,))  # fmt: skip
    dead = container("c", "img", created=ago(days=2), finished_at=ago(days=1))
    snap = Snapshot(
        taken_at=NOW,
        filesystem=images,
        images=(image("img"),),
        containers=(dead,),
        filesystems=(images, logs),
    )
    plan = plan_with(snap)
    by_path = {p.filesystem.path: p for p in plan.filesystems}
    assert not by_path["/var/log"].under_pressure
    assert by_path["/var/log"].containers == ()
    assert [d.action for d in plan.containers.decisions] == [Action.KEEP]


def test_what_the_ledger_holds_leaves_out_removed_holders():
    """Ledger.held, the model of the disk: the layers of removed holders are no longer held
    (a layer another holder keeps still is).
    Kills space.py:137 drop-if `if holder in self._gone: continue` in held."""
    ledger = ledger_of({"a": [Layer("L", 100), Layer("A", 30)], "b": [Layer("L", 100)]})
    assert ledger.held().bytes == 130
    ledger.remove("a")
    assert ledger.held().bytes == 100


def test_an_event_naming_an_image_by_a_digest_reference_as_listed_resolves_to_it():
    """An event's image reference with a digest (`name@digest`) is looked up as it is, never
    with `:latest` appended, even when the digest part has no `:` (as an untrusted engine may
    list it).
    Kills history.py:123 drop-term `"@" not in reference and` (`app@abc` read as
    `app@abc:latest`)."""
    listed = image("sha256:" + "c" * 64, digests=["app@abc"])
    event = RuntimeEvent("container", "die", "c1", None, NOW - HOUR, image_ref="app@abc")
    assert uses_from_events_with([event], [listed]) == {listed.id: NOW - HOUR}


def test_every_kind_of_a_filesystems_roles_is_listed_with_zero_bytes_when_nothing_holds_it():
    """The breakdown of a filesystem lists every kind its roles hold, 0 bytes where no holder
    is (the report's rows), and no kind of a role it does not hold.
    Kills breakdown.py:32 drop-term `not fs.roles or ROLE_OF[kind] in fs.roles` -> `not
    fs.roles` (a filesystem with roles listed no empty kind)."""
    images = FilesystemStats("/ctd", 1000, 900, 1000, 900, roles=(FilesystemRole.IMAGES,))
    (b,) = breakdown_of([images], [])
    kinds = dict(b.by_kind)
    assert kinds[HolderKind.IMAGES_UNUSED] == 0 and kinds[HolderKind.BUILD_CACHE_IN_USE] == 0
    assert HolderKind.LOGS not in kinds


def test_a_window_without_a_start_begins_at_the_creation():
    """A dead container whose finish time is known only as "before t" (no `finished_after`)
    stopped somewhere between its creation and t: created 3 h ago, stopped before 30 min ago,
    minimum age 1 h: the window straddles the limit, so its finish time is asked.
    Kills finish_times.py:112 drop-term `c.finished_after or c.created` (no start: None)."""
    c = container("c", "img", created=ago(hours=3), name="c")
    c = replace(c, finished_at=None, finished_after=None, finished_before=ago(minutes=30))
    used = history(img=record(ago(days=9), last_used=NOW))
    snap = snapshot(containers=[c])
    assert finish_times_needed_with(snap, hist=used, minimum_age=HOUR) == ["c"]


def test_an_inode_only_filesystem_is_said_short_of_inodes_only():
    """FreeDiskSpaceFailed for a filesystem without images that asked only for inodes names its
    inode usage and says nothing of bytes it never asked for.
    Kills filesystems.py:151 drop-not `not plan.inodes_to_free` -> `plan.inodes_to_free` (the
    byte sentence added, "... of the 0 B needed")."""
    disk = FilesystemStats("/var/log", 1000, 500, 1000, 50)
    plan = FilesystemPlan(disk, 85, 80, 85, 80, 0, 150, ("container",))
    text = short_text_of(plan, disk)
    assert text.startswith("inodes of /var/log (measured) are 95% used")
    assert "filesystem /var/log" not in text
