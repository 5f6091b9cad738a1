"""state/files.py without an engine: what may be opened in the state directory (the real-engine
version, as root with real commands: tests/reliability/test_hostile_state.py)."""

from __future__ import annotations

import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nodegc.state.audit import AuditLog, read_audit
from nodegc.state.files import MAX_STATE_BYTES, StateError, UnsafeState, read_file
from nodegc.state.journal import Journal
from nodegc.state.lock import StateLock
from nodegc.state.store import StateDir


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


def test_created_0700_with_parents_0755_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        StateDir(tmp_path / "a" / "b" / "state").ensure()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a" / "b" / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755


def test_an_empty_path_is_refused_not_the_current_directory() -> None:
    with pytest.raises(UnsafeState, match="empty"):
        StateDir("")


@pytest.mark.parametrize("name", ["layers.json", "history.json", "finish-times.json", "walk.json"])
def test_a_fifo_is_refused_at_once_not_read(state: Path, name: str) -> None:
    """Read in a thread with a deadline: a hang fails the test instead of blocking it."""
    os.mkfifo(state / name, 0o600)
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            s = StateDir(state)
            (
                s.load_layers(),
                s.load_finish_times(),
                s.load_history(__import__("datetime").datetime.now()),
                s.load_walk(),
            )
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(20)
    assert outcome, "a read of the FIFO blocked"
    assert isinstance(outcome[0], UnsafeState) and "FIFO" in str(outcome[0])


def test_links_are_refused_and_their_targets_untouched(state: Path, tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"keep me\n")
    (state / "audit.jsonl").symlink_to(target)
    (state / "nodegc.state.lock").symlink_to(target)
    (state / "intents.json").symlink_to("/dev/zero")
    audit = AuditLog(state / "audit.jsonl")
    with pytest.raises(UnsafeState, match="symbolic link"):
        audit._current()
    with pytest.raises(UnsafeState, match="symbolic link"):
        StateLock(state).acquire()
    with pytest.raises(UnsafeState, match="/dev/zero"):
        Journal(state).pending()
    with pytest.raises(UnsafeState):
        read_audit(state / "audit.jsonl")
    with pytest.raises(UnsafeState):
        StateDir(state).check_writable()
    assert target.read_bytes() == b"keep me\n"


def test_a_huge_file_is_refused_without_reading_it(state: Path) -> None:
    with (state / "layers.json").open("wb") as fh:
        fh.truncate(MAX_STATE_BYTES + 1)
    os.chmod(state / "layers.json", 0o600)
    with pytest.raises(UnsafeState, match="bytes"):
        StateDir(state).load_layers()


@pytest.mark.parametrize("mode", [0o777, 0o720, 0o702])
def test_a_directory_writable_by_others_is_refused(state: Path, mode: int) -> None:
    os.chmod(state, mode)
    with pytest.raises(UnsafeState, match="chmod 700"):
        StateDir(state).ensure()


def test_a_file_writable_by_others_is_refused(state: Path) -> None:
    (state / "history.json").write_text("{}")
    os.chmod(state / "history.json", 0o666)
    with pytest.raises(UnsafeState, match="chmod 600"):
        read_file(state / "history.json")


def test_a_directory_in_place_of_a_file_keeps_its_old_meaning(state: Path) -> None:
    """Not a danger: history starts fresh for a dry run, and `once` refuses (StateError)."""
    (state / "history.json").mkdir()
    with pytest.raises(StateError) as raised:
        StateDir(state).check_writable()
    assert not isinstance(raised.value, UnsafeState)
    assert StateDir(state).load_history(datetime.now(UTC)).images == {}
