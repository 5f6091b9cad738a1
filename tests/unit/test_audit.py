"""nodegc.audit: one JSON line per removal attempt, rotation, forgiving reads, `history`."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nodegc.cli.history import history_command, render_table
from nodegc.config import Settings
from nodegc.model import Outcome, Reason, RemovalResult
from nodegc.state import audit
from nodegc.state.audit import AUDIT_FILE, AuditLog, read_audit

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
IMAGE_ID = "sha256:" + "ab" * 32


class StepClock:
    """A fake clock: each call returns the next second after T0."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        now = self.now
        self.now += timedelta(seconds=1)
        return now


def result(
    n: int = 0,
    outcome: Outcome = Outcome.REMOVED,
    kind: str = "image",
    size: int = 2048,
    detail: str = "",
) -> RemovalResult:
    return RemovalResult(
        kind=kind,
        id=f"{IMAGE_ID[:-4]}{n:04d}",
        name=f"example.com/app:v{n}",
        reason=Reason.SPACE,
        outcome=outcome,
        detail=detail,
        size_bytes=size,
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / AUDIT_FILE


@pytest.fixture
def log(path: Path) -> AuditLog:
    with AuditLog(path, clock=StepClock(), node="node-a") as audit_log:
        yield audit_log


def settings_for(directory: Path) -> Settings:
    return Settings.model_validate({"state": {"directory": str(directory)}})


def test_record_appends_one_json_line_with_every_key(log: AuditLog, path: Path) -> None:
    """One attempt is one line holding time (UTC, Z), kind, id, name, size, reason, outcome..."""
    log.record(result(1, detail="ok"))
    assert lines(path) == [
        {
            "time": "2025-06-01T12:00:00Z",
            "kind": "image",
            "id": result(1).id,
            "name": "example.com/app:v1",
            "tags": [],
            "pod": None,
            "size_bytes": 2048,
            "reason": "space",
            "outcome": "removed",
            "detail": "ok",
            "node": "node-a",
        }
    ]


def test_node_defaults_to_the_hostname(tmp_path: Path) -> None:
    """Without `node`, entries name this host."""
    assert AuditLog(tmp_path / AUDIT_FILE).node == os.uname().nodename


def test_audit_log_is_a_listener(log: AuditLog, path: Path) -> None:
    """Calling the log records, so it can sit in a Collector's listeners."""
    log(result(1, Outcome.FAILED, detail="engine said no"))
    assert lines(path)[0]["outcome"] == "failed"


def test_file_is_created_0600(log: AuditLog, path: Path) -> None:
    """The audit file is readable by its owner only, and its directory is created 0700."""
    log.record(result())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_threads_never_interleave_lines(log: AuditLog, path: Path) -> None:
    """Records from many threads at once each land as one whole line."""
    threads = [
        threading.Thread(target=lambda k=k: [log.record(result(k * 100 + i)) for i in range(50)])
        for k in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({e["id"] for e in lines(path)}) == 400


def test_two_writers_on_one_file_keep_whole_lines(path: Path) -> None:
    """Two logs (as two processes would) appending to one file keep every line whole."""
    a = AuditLog(path, clock=StepClock(), node="a")
    b = AuditLog(path, clock=StepClock(), node="b")
    for i in range(20):
        a.record(result(i))
        b.record(result(i))
    assert [e["node"] for e in lines(path)] == ["a", "b"] * 20


def test_rotates_by_size_into_numbered_backups(path: Path) -> None:
    """A file that would grow past max_bytes moves to .1 and a new file starts."""
    size = len(audit.encode(result(0), T0, "n"))
    log = AuditLog(path, max_bytes=size * 2, backups=3, clock=StepClock(), node="n")
    for i in range(3):
        log.record(result(i))
    assert [e["name"] for e in lines(path.with_name(AUDIT_FILE + ".1"))] == [
        "example.com/app:v0",
        "example.com/app:v1",
    ]
    assert [e["name"] for e in lines(path)] == ["example.com/app:v2"]


def test_rotation_keeps_at_most_backups_files(path: Path) -> None:
    """Beyond `backups` rotated files the oldest is dropped."""
    log = AuditLog(path, max_bytes=1, backups=2, clock=StepClock(), node="n")
    for i in range(5):
        log.record(result(i))
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == [AUDIT_FILE, AUDIT_FILE + ".1", AUDIT_FILE + ".2"]
    assert [e["name"] for e in log.read()] == [f"example.com/app:v{i}" for i in (2, 3, 4)]


def test_zero_backups_starts_over(path: Path) -> None:
    """With backups=0 a full file is replaced by a new one."""
    log = AuditLog(path, max_bytes=1, backups=0, clock=StepClock(), node="n")
    log.record(result(0))
    log.record(result(1))
    assert [p.name for p in path.parent.iterdir()] == [AUDIT_FILE]
    assert [e["name"] for e in lines(path)] == ["example.com/app:v1"]


def test_writer_follows_a_rotation_done_by_another(path: Path) -> None:
    """A writer whose file was rotated by another writer appends to the new file, not to .1."""
    size = len(audit.encode(result(0), T0, "n"))
    a = AuditLog(path, max_bytes=size * 2, clock=StepClock(), node="a")
    b = AuditLog(path, max_bytes=size * 2, clock=StepClock(), node="b")
    a.record(result(0))
    b.record(result(1))
    a.record(result(2))  # rotates
    b.record(result(3))
    assert [e["node"] for e in lines(path.with_name(AUDIT_FILE + ".1"))] == ["a", "b"]
    assert [e["node"] for e in lines(path)] == ["a", "b"]


def test_read_returns_oldest_first_across_files(path: Path) -> None:
    """read() walks .N ... .1 then the live file, so entries come back in time order."""
    log = AuditLog(path, max_bytes=1, backups=5, clock=StepClock(), node="n")
    for i in range(4):
        log.record(result(i))
    assert [e["time"] for e in log.read()] == [
        "2025-06-01T12:00:00Z",
        "2025-06-01T12:00:01Z",
        "2025-06-01T12:00:02Z",
        "2025-06-01T12:00:03Z",
    ]


def test_read_filters_by_since(log: AuditLog) -> None:
    """Entries before `since` are left out."""
    for i in range(3):
        log.record(result(i))
    assert [e["name"] for e in log.read(since=T0 + timedelta(seconds=1))] == [
        "example.com/app:v1",
        "example.com/app:v2",
    ]


def test_read_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    """No audit file yet means no entries, not an error."""
    assert AuditLog(tmp_path / "none" / AUDIT_FILE).read() == []


def test_read_skips_and_counts_a_torn_last_line(log: AuditLog, path: Path) -> None:
    """A line cut short by a crash is skipped and counted; the whole lines remain."""
    log.record(result(1))
    with path.open("ab") as fh:
        fh.write(b'{"time":"2025-06-01T12:00:09Z","kind":"ima')
    assert [e["name"] for e in log.read()] == ["example.com/app:v1"]
    assert log.skipped_lines == 1


def test_read_skips_and_counts_garbage_lines(path: Path) -> None:
    """Lines that are not timed JSON objects are skipped and counted, later lines still read."""
    good = audit.encode(result(1), T0, "n")
    path.parent.mkdir()
    path.write_bytes(b"\xff\xfe\n[1,2]\n{}\n" + good + b'{"time": "yesterday"}\n\n')
    entries, skipped = read_audit(path)
    assert [e["name"] for e in entries] == ["example.com/app:v1"]
    assert skipped == 4


def test_writer_after_a_torn_line_starts_on_a_new_line(path: Path) -> None:
    """A new writer does not glue its first line onto a previous writer's torn line."""
    path.parent.mkdir()
    path.write_bytes(b'{"time":"2025-06-01T11:00:00Z","ki')
    AuditLog(path, clock=StepClock(), node="n").record(result(7))
    entries, skipped = read_audit(path)
    assert [e["name"] for e in entries] == ["example.com/app:v7"]
    assert skipped == 1


def test_short_write_loses_only_its_own_line(
    log: AuditLog, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short write (disk full) is terminated so the next record is still a whole line."""
    real_write = os.write
    calls = []

    def short_once(fd: int, data: bytes) -> int:
        calls.append(data)
        if len(calls) == 1:
            return real_write(fd, data[:10])
        return real_write(fd, data)

    monkeypatch.setattr(audit.os, "write", short_once)
    log.record(result(1))
    log.record(result(2))
    monkeypatch.undo()
    entries, skipped = read_audit(path)
    assert ([e["name"] for e in entries], skipped, log.write_errors) == (
        ["example.com/app:v2"],
        1,
        1,
    )


def test_write_failure_is_counted_not_raised(tmp_path: Path) -> None:
    """An unwritable audit path never breaks the caller: the error is counted and kept."""
    (tmp_path / "file").write_text("not a directory")
    log = AuditLog(tmp_path / "file" / AUDIT_FILE, clock=StepClock(), node="n")
    log.record(result())
    assert log.write_errors == 1
    assert log.last_error


def two_entries() -> list[dict]:
    return [
        json.loads(audit.encode(result(1), T0, "n")),
        json.loads(audit.encode(result(2, Outcome.FAILED, size=0, detail="boom"), T0, "n")),
    ]


def test_render_table_lists_each_attempt() -> None:
    """Columns: time, age, kind, outcome, reason, short id, name, size and detail."""
    header, first, second, _summary = render_table(
        two_entries(), T0 + timedelta(minutes=5)
    ).splitlines()
    assert header.split() == [
        "TIME", "AGO", "KIND", "OUTCOME", "REASON", "ID", "NAME", "SIZE", "DETAIL"
    ]  # fmt: skip
    assert first.split() == [
        "2025-06-01T12:00:00Z", "5m", "ago", "image", "removed", "space",
        result(1).id[7:19], "example.com/app:v1", "2.0", "KiB", "-",
    ]  # fmt: skip
    assert second.split()[4] == "failed" and second.endswith("boom")


def test_render_table_ends_with_totals() -> None:
    """The last line counts outcomes and the image bytes freed."""
    summary = render_table(two_entries(), T0).splitlines()[-1]
    assert summary == (
        "2 attempts: 1 removed (2.0 KiB of images and build cache), 0 skipped, 1 failed"
    )


def test_render_table_counts_what_someone_else_removed_apart() -> None:
    """`gone` (found gone after a kill, not nodegc's work): counted apart, no bytes freed."""
    entries = [
        *two_entries(),
        json.loads(audit.encode(result(3, Outcome.GONE, size=0, detail="someone"), T0, "n")),
    ]
    summary = render_table(entries, T0).splitlines()[-1]
    assert summary == (
        "3 attempts: 1 removed (2.0 KiB of images and build cache), 0 skipped, 1 failed, "
        "1 gone (removed by someone else)"
    )


def test_render_table_of_nothing_says_so() -> None:
    """An empty history renders as a sentence, not a bare header."""
    assert render_table([], T0) == "No removals recorded."


def test_history_prints_a_json_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-o json` prints the entries as one JSON array and returns 0."""
    AuditLog(tmp_path / AUDIT_FILE, clock=StepClock(), node="n").record(result(1))
    code = history_command(settings_for(tmp_path), None, "json", clock=lambda: T0)
    out = capsys.readouterr().out
    assert code == 0
    assert [e["name"] for e in json.loads(out)] == ["example.com/app:v1"]


def test_history_prints_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default output is the table for people."""
    AuditLog(tmp_path / AUDIT_FILE, clock=StepClock(), node="n").record(result(1))
    assert history_command(settings_for(tmp_path), None, "table", clock=lambda: T0) == 0
    assert "example.com/app:v1" in capsys.readouterr().out


def test_history_since_leaves_out_older_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`since` counts back from the clock's now."""
    log = AuditLog(tmp_path / AUDIT_FILE, clock=StepClock(), node="n")
    for i in range(3):
        log.record(result(i))
    now = T0 + timedelta(seconds=10)
    history_command(settings_for(tmp_path), timedelta(seconds=9), "json", clock=lambda: now)
    assert [e["name"] for e in json.loads(capsys.readouterr().out)] == [
        "example.com/app:v1",
        "example.com/app:v2",
    ]


def test_history_of_a_missing_file_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No audit file: exit 0 and a sentence saying nothing was recorded."""
    assert history_command(settings_for(tmp_path), None, "table", clock=lambda: T0) == 0
    assert capsys.readouterr().out.startswith("No removals recorded")


def test_history_of_a_missing_file_as_json_is_an_empty_array(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No audit file with `-o json`: an empty JSON array."""
    assert history_command(settings_for(tmp_path), None, "json", clock=lambda: T0) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_history_of_an_unreadable_file_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An audit path that cannot be read is one stderr line and exit 2."""
    (tmp_path / AUDIT_FILE).mkdir()
    assert history_command(settings_for(tmp_path), None, "table", clock=lambda: T0) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert str(tmp_path / AUDIT_FILE) in captured.err


def test_history_warns_about_skipped_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Garbage lines are reported on stderr while the good entries still print."""
    (tmp_path / AUDIT_FILE).write_bytes(b"garbage\n" + audit.encode(result(1), T0, "n"))
    assert history_command(settings_for(tmp_path), None, "json", clock=lambda: T0) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 1
    assert "skipped 1 torn or unreadable line" in captured.err
