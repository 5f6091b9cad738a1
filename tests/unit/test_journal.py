"""The intent journal and its replay, over the FakeRuntime (whose image removal walks tags one at
a time, as Docker's): a kill part-way through a walk loses no tag; the engine lost mid-cycle
stops new removals; `report` only says what is pending."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest

from nodegc.collect import intents
from nodegc.collect.cycle import FINISHED_BEFORE_A_KILL, GONE_BY_SOMEONE_ELSE, Collector
from nodegc.model import ContainerState, History, Outcome
from nodegc.runtime import RuntimeUnavailable
from nodegc.state.audit import AUDIT_FILE, TARGET_MISSED, AuditLog
from nodegc.state.journal import JOURNAL_FILE, Intent, Journal
from nodegc.state.store import StateDir, StateError
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import NOW, ago, container, fs, image, make_settings

TAGS = tuple(f"app:{n}" for n in range(10))


class Killed(BaseException):
    """The process dies here: nothing after it runs (no except clause catches it)."""


def collector(tmp_path, fake: FakeRuntime, **settings) -> Collector:
    """A collector (a process) on `tmp_path/state`, whose history began ten days ago."""
    state = StateDir(tmp_path / "state")
    if not state.history_path.exists():
        state.save_history(History(since=ago(days=10), images={}))
    return Collector(
        make_settings(state.path, "/fake", images={"maximum_age": "1h"}, **settings),
        fake,
        state,
        clock=lambda: NOW,
        measure=lambda path: fs(1000, 900, path),
    )


def old_image(fake: FakeRuntime, image_id: str = "sha256:" + "a" * 64, tags=TAGS):
    """An unused image first seen days ago: `maximum_age = 1h` removes it."""
    return fake.add_image(image(image_id, 100, tags=list(tags)), tagged_at=ago(days=3))


def die_after(n: int, error: BaseException):
    """A before_untag hook: the (n+1)th untag raises `error` (n tags are gone by then)."""
    seen: list[str] = []

    def hook(image_id: str, tag: str) -> None:
        if len(seen) == n:
            raise error
        seen.append(tag)

    return hook


def on_disk(tmp_path) -> list[dict]:
    path = tmp_path / "state" / JOURNAL_FILE
    return json.loads(path.read_text())["intents"] if path.exists() else []


# -- the journal file -----------------------------------------------------------------------------


def test_record_is_on_disk_before_acting_and_clear_removes_it(tmp_path):
    """record() writes the entry (a new Journal reads it back); clear() drops it."""
    journal = Journal(tmp_path)
    intent = Intent("sha256:x", ("a:1", "b:2"), ("a@sha256:d",), "remove", "age", NOW, 7)
    journal.record(intent)
    assert Journal(tmp_path).pending() == [intent]
    journal.clear("sha256:x")
    assert Journal(tmp_path).pending() == []


def test_a_second_intent_for_an_image_keeps_the_tags_the_first_recorded(tmp_path):
    """A retry of an interrupted removal sees fewer tags; the entry keeps every tag owed."""
    journal = Journal(tmp_path)
    journal.record(Intent("sha256:x", ("a:1", "b:2", "c:3"), (), "remove", "age", NOW, 1))
    later = NOW + timedelta(minutes=5)
    merged = journal.record(Intent("sha256:x", ("c:3",), (), "remove", "space", later, 2))
    assert merged.tags == ("a:1", "b:2", "c:3")
    assert merged.started_at == NOW
    assert Journal(tmp_path).pending() == [merged]


def test_a_corrupt_journal_is_set_aside_and_said(tmp_path, caplog):
    """Damage from outside (the file is written atomically): kept aside, an error logged."""
    (tmp_path / JOURNAL_FILE).write_text("{not json")
    assert Journal(tmp_path).pending() == []
    assert (tmp_path / f"{JOURNAL_FILE}.corrupt").exists()
    assert any("intent journal corrupt" in r.getMessage() for r in caplog.records)


# -- a kill part-way through a tag walk ---------------------------------------------------------


def test_a_kill_mid_walk_leaves_every_tag_in_the_journal(tmp_path):
    """Killed after 4 of 10 untags: the entry on disk names all 10 tags and the action."""
    fake = FakeRuntime()
    old_image(fake)
    fake.before_untag = die_after(4, Killed())
    with pytest.raises(Killed):
        collector(tmp_path, fake).cycle()
    assert len(fake.images["sha256:" + "a" * 64].tags) == 6
    (entry,) = on_disk(tmp_path)
    assert entry["tags"] == list(TAGS) and entry["action"] == "remove"
    assert entry["pid"] == os.getpid()


def test_after_a_kill_an_image_now_in_use_gets_every_tag_back(tmp_path):
    """The next cycle (a new process) finds the image used by a new container: not planned, so
    its 4 lost tags are put back and the entry cleared."""
    fake = FakeRuntime()
    img = old_image(fake)
    fake.before_untag = die_after(4, Killed())
    with pytest.raises(Killed):
        collector(tmp_path, fake).cycle()
    fake.before_untag = None
    fake.add_container(container("web", img.id, ContainerState.RUNNING))
    report = collector(tmp_path, fake).cycle()
    assert sorted(fake.images[img.id].tags) == sorted(TAGS)
    assert report.image_results == []
    assert on_disk(tmp_path) == []


def test_after_a_kill_an_image_still_planned_is_finished(tmp_path):
    """Still planned: the next cycle removes it, and the entry is cleared."""
    fake = FakeRuntime()
    img = old_image(fake)
    fake.before_untag = die_after(4, Killed())
    with pytest.raises(Killed):
        collector(tmp_path, fake).cycle()
    fake.before_untag = None
    report = collector(tmp_path, fake).cycle()
    assert img.id not in fake.images
    assert [(r.id, r.outcome) for r in report.image_results] == [(img.id, Outcome.REMOVED)]
    assert on_disk(tmp_path) == []


def test_a_tag_that_names_another_image_now_is_not_taken_back(tmp_path):
    """app:0 was re-pulled onto a new image meanwhile: it stays there; the others come back."""
    fake = FakeRuntime()
    img = old_image(fake)
    fake.before_untag = die_after(2, Killed())
    with pytest.raises(Killed):
        collector(tmp_path, fake).cycle()
    fake.before_untag = None
    newer = fake.add_image(image("sha256:" + "b" * 64, 100, tags=["app:0"]), tagged_at=NOW)
    fake.add_container(container("web", img.id, ContainerState.RUNNING))
    collector(tmp_path, fake).cycle()
    assert fake.images[newer.id].tags == ("app:0",)
    assert sorted(fake.images[img.id].tags) == sorted(TAGS[1:])
    assert on_disk(tmp_path) == []


def test_report_says_a_removal_is_pending_and_changes_nothing(tmp_path):
    """report() after a kill: no tag call, the entry stays, `pending` counts the missing tags."""
    fake = FakeRuntime()
    old_image(fake)
    fake.before_untag = die_after(3, Killed())
    with pytest.raises(Killed):
        collector(tmp_path, fake).cycle()
    fake.before_untag = None
    fake.calls.clear()
    gc = collector(tmp_path, fake)
    gc.report()
    (found,) = intents.pending(gc.journal, gc.last_snapshot)
    assert found.present is True and found.missing_tags == TAGS[:3]
    assert not [c for c in fake.calls if c.startswith(("tag_image", "remove_"))]
    assert len(on_disk(tmp_path)) == 1
    gc.cycle(dry_run=True)  # a dry run does not replay either
    assert not [c for c in fake.calls if c.startswith(("tag_image", "remove_"))]


def test_candidates_the_loop_did_not_need_leave_no_pending_entry(tmp_path):
    """A closed loop that stops at its target: the candidates it never started are not pending."""
    fake = FakeRuntime()
    for n, letter in enumerate("abc"):
        fake.add_image(image(letter * 64, 100, tags=[f"{letter}:1"]), tagged_at=ago(days=5 - n))
    state = StateDir(tmp_path / "state")
    available = {"bytes": 50}

    def disk(path):
        return fs(1000, available["bytes"] + 100 * (3 - len(fake.images)), path)

    gc = Collector(make_settings(state.path, "/fake"), fake, state, clock=lambda: NOW, measure=disk)
    report = gc.cycle()  # 95% used, wants 150 bytes: two of the three images go
    assert len([r for r in report.image_results if r.outcome is Outcome.REMOVED]) == 2
    assert len(fake.images) == 1
    assert on_disk(tmp_path) == []
    assert intents.pending(gc.journal, gc.observe()) == []


# -- refusals and failures part-way ---------------------------------------------------------------


def test_a_failure_mid_walk_with_the_engine_up_puts_the_tags_back_at_once(tmp_path):
    """An engine error after 5 untags (the engine still answers): failed, every tag back in
    the same cycle, nothing left in the journal."""
    from nodegc.runtime import RuntimeError_

    fake = FakeRuntime()
    img = old_image(fake)
    fake.before_untag = die_after(5, RuntimeError_("engine answered 500: driver failed"))
    report = collector(tmp_path, fake).cycle()
    assert [r.outcome for r in report.image_results] == [Outcome.FAILED]
    assert sorted(fake.images[img.id].tags) == sorted(TAGS)
    assert on_disk(tmp_path) == []


def test_the_engine_lost_mid_walk_keeps_the_entry_for_the_next_cycle(tmp_path):
    """The engine dies after 5 untags: the cycle stops (RuntimeUnavailable), the entry stays;
    when the engine is back and the image is in use, the next cycle puts all 10 tags back."""
    fake = FakeRuntime()
    img = old_image(fake)

    def engine_dies(image_id: str, tag: str) -> None:
        if len(fake.images[image_id].tags) == 5:
            fake.unavailable = True
            raise RuntimeUnavailable("engine gone")

    fake.before_untag = engine_dies
    gc = collector(tmp_path, fake)
    with pytest.raises(RuntimeUnavailable):
        gc.cycle()
    assert gc.last_report is not None and gc.last_report.error == "engine gone"
    assert len(on_disk(tmp_path)) == 1
    fake.unavailable, fake.before_untag = False, None
    fake.add_container(container("web", img.id, ContainerState.RUNNING))
    collector(tmp_path, fake).cycle()
    assert sorted(fake.images[img.id].tags) == sorted(TAGS)
    assert on_disk(tmp_path) == []


def test_an_unwritable_journal_means_no_tag_is_touched(tmp_path):
    """The journal cannot be written: the removal fails before any untag."""
    fake = FakeRuntime()
    img = old_image(fake)
    gc = collector(tmp_path, fake)
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / JOURNAL_FILE).mkdir()  # a directory in its place
    gc.journal = Journal(tmp_path / "state")
    gc.journal._entries = {}  # as if read before the directory appeared
    report = gc.cycle()
    assert [r.outcome for r in report.image_results] == [Outcome.FAILED]
    assert "nothing was touched" in report.image_results[0].detail
    assert fake.images[img.id].tags == TAGS


# -- the engine lost while removing ---------------------------------------------------------------


def dead_containers(fake: FakeRuntime, n: int) -> list[str]:
    ids = [f"{k:064x}" for k in range(n)]
    for k, cid in enumerate(ids):
        at = ago(hours=2) + timedelta(seconds=k)
        fake.add_container(container(cid, "img", created=at, finished_at=at, name=f"c{k}"))
    return ids


def test_no_removal_starts_once_the_engine_is_found_lost(tmp_path):
    """The engine dies at the 30th of 100 removals: 29 removed, 1 failed, 70 never attempted
    (no call), the report says so and the cycle raises."""
    fake = FakeRuntime()
    dead_containers(fake, 100)
    done: list[str] = []

    def before(object_id: str) -> None:
        if len(done) == 29:
            fake.unavailable = True
            raise RuntimeUnavailable("engine gone")
        done.append(object_id)

    fake.before_remove = before
    gc = collector(tmp_path, fake, containers={"max_per_pod_container": 0})
    with pytest.raises(RuntimeUnavailable):
        gc.cycle()
    report = gc.last_report
    assert report is not None
    outcomes = [r.outcome for r in report.container_results]
    assert outcomes.count(Outcome.REMOVED) == 29 and outcomes.count(Outcome.FAILED) == 1
    assert report.not_attempted == 70
    removal_calls = [c for c in fake.calls if c.startswith("remove_container")]
    assert len(removal_calls) == 30


def test_one_request_cut_short_with_the_engine_up_does_not_stop_the_rest(tmp_path):
    """One removal unreachable-or-too-slow while the engine answers a ping: that one fails,
    the other 9 go."""
    fake = FakeRuntime()
    ids = dead_containers(fake, 10)
    fake.fail_removal[ids[3]] = RuntimeUnavailable("answer cut short")
    report = collector(tmp_path, fake, containers={"max_per_pod_container": 0}).cycle()
    outcomes = [r.outcome for r in report.container_results]
    assert outcomes.count(Outcome.REMOVED) == 9 and outcomes.count(Outcome.FAILED) == 1
    assert report.not_attempted == 0


# -- who removed it: nodegc's own record of what it asked ----------------------------------------


class Recorded:
    """A listener keeping the results told (the audit's view)."""

    def __init__(self) -> None:
        self.results: list = []

    def __call__(self, result) -> None:
        self.results.append(result)


def killed_after_removal(result) -> None:
    """The process dies right after the engine answered, before the audit line is written."""
    raise Killed()


def test_a_removal_nodegc_asked_for_before_a_kill_is_recorded_as_its_own(tmp_path, monkeypatch):
    fake = FakeRuntime()
    img = old_image(fake, tags=("app:1",))
    gc = collector(tmp_path, fake)
    gc.listeners = [killed_after_removal]
    with monkeypatch.context() as dying:  # a SIGKILL runs no `finally`: the batch is not closed
        dying.setattr(intents.Walks, "close", lambda self: None)
        with pytest.raises(Killed):
            gc.cycle()
    assert img.id not in fake.images
    assert (tmp_path / "state" / "intents-sent.jsonl").exists()
    # A target-missed record in the audit since (its own kind, no `kind`/`id` of a removal):
    # the replay still records the removal.
    AuditLog(tmp_path / "state" / AUDIT_FILE).record_event(
        TARGET_MISSED, {"filesystem": "/", "needed_bytes": 1, "freed_bytes": 0, "holders": []}
    )
    seen = Recorded()
    again = collector(tmp_path, fake)
    again.listeners = [seen]
    again.cycle()
    ((result),) = seen.results
    assert (result.id, result.outcome) == (img.id, Outcome.REMOVED)
    assert result.detail == FINISHED_BEFORE_A_KILL and result.size_bytes == 100
    assert on_disk(tmp_path) == []
    assert not (tmp_path / "state" / "intents-sent.jsonl").exists()


def test_an_image_someone_else_removed_after_a_kill_is_recorded_as_gone(tmp_path):
    """Killed before the request that deletes it: a third party removes it meanwhile."""
    fake = FakeRuntime()
    img = old_image(fake, tags=("app:1", "app:2"))
    fake.before_untag = die_after(0, Killed())
    with pytest.raises(Killed):
        collector(tmp_path, fake).cycle()
    fake.before_untag = None
    del fake.images[img.id]  # docker rmi, by someone else
    seen = Recorded()
    again = collector(tmp_path, fake)
    again.listeners = [seen]
    again.cycle()
    ((result),) = seen.results
    assert (result.id, result.outcome) == (img.id, Outcome.GONE)
    assert result.detail == GONE_BY_SOMEONE_ELSE and result.size_bytes == 0


def test_a_mark_of_an_earlier_intent_does_not_count(tmp_path):
    """The record ties a request to the intent it served: one asked under an earlier intent
    (refused then, the entry cleared) says nothing about the pending one."""
    journal = Journal(tmp_path)
    earlier = Intent("sha256:x", ("a:1",), (), "remove", "age", NOW, 1)
    journal.record(earlier)
    journal.mark_sent(earlier)
    assert journal.sent() == {("sha256:x", NOW)}
    later = Intent("sha256:x", ("a:1",), (), "remove", "age", NOW + timedelta(hours=1), 1)
    journal.clear("sha256:x")
    assert journal.sent() == set(), "the record goes when nothing is owed"
    journal.record(Intent("sha256:y", (), (), "remove", "age", NOW, 1))
    journal.mark_sent(earlier)
    journal.record(later)
    pending = {i.object_id: i for i in Journal(tmp_path).pending()}
    assert (pending["sha256:x"].object_id, pending["sha256:x"].started_at) not in journal.sent()


def test_the_record_of_removals_asked_is_never_written_through_a_symlink_or_fifo(tmp_path):
    """Not written, not followed: the removal is then not sent (StateError)."""
    journal = Journal(tmp_path)
    intent = Intent("sha256:x", (), (), "remove", "age", NOW, 1)
    target = tmp_path / "elsewhere"
    target.write_text("")
    journal.sent_path.symlink_to(target)
    with pytest.raises(StateError):
        journal.mark_sent(intent)
    assert target.read_text() == ""
    journal.sent_path.unlink()
    os.mkfifo(journal.sent_path)
    with pytest.raises(StateError):
        journal.mark_sent(intent)
