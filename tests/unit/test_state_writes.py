"""State writes on a big node (issue 20): a file whose bytes are unchanged is not written again."""

from __future__ import annotations

from nodegc.state.store import FINISH_TIMES_FILE, StateDir
from tests.unit.builders import NOW, ago, history, record


def test_the_same_history_is_not_written_again(tmp_path):
    """A second save of unchanged history leaves the file (same inode: no temp file renamed
    over it); a change is written; a file removed meanwhile is written again."""
    state = StateDir(tmp_path / "state")
    h = history(ago(days=3), a=record(ago(days=2)))
    state.save_history(h)
    inode = state.history_path.stat().st_ino
    state.save_history(h)
    assert state.history_path.stat().st_ino == inode
    changed = history(ago(days=3), a=record(ago(days=2), ago(hours=1)))
    state.save_history(changed)
    assert state.history_path.stat().st_ino != inode
    state.history_path.unlink()
    state.save_history(changed)
    assert StateDir(tmp_path / "state").load_history(NOW) == changed


def test_loaded_state_saved_unchanged_is_not_written(tmp_path):
    """What a new process loads and saves back as it was (a warm `report`) is not rewritten;
    what it changes is."""
    first = StateDir(tmp_path / "state")
    first.save_history(history(ago(days=3), a=record(ago(days=2))))
    first.save_finish_times({"c1": ago(hours=1)})
    second = StateDir(tmp_path / "state")
    h = second.load_history(NOW)
    times = second.load_finish_times()
    inodes = {p.name: p.stat().st_ino for p in second.path.iterdir()}
    second.save_history(h)
    second.save_finish_times(times)
    assert {p.name: p.stat().st_ino for p in second.path.iterdir()} == inodes
    second.save_finish_times({**times, "c2": ago(hours=2)})
    assert (second.path / FINISH_TIMES_FILE).stat().st_ino != inodes[FINISH_TIMES_FILE]
