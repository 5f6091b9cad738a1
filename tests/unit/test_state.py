"""The state directory: history saved atomically, loaded forgivingly."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodegc.state.store import StateDir, StateError, encode
from tests.unit.builders import NOW, ago, history, record


@pytest.fixture
def state(tmp_path) -> StateDir:
    return StateDir(tmp_path / "state")


def _corrupt_files(state: StateDir) -> list[str]:
    return sorted(p.name for p in state.path.glob("history.json.corrupt-*"))


def test_history_round_trips_through_save_and_load(state):
    """What is saved is what loads back: since, first_seen, last_used (and None)."""
    h = history(ago(days=30), a=record(ago(days=9), ago(hours=2)), b=record(ago(minutes=5)))
    state.save_history(h)
    assert state.load_history(NOW) == h


def test_history_file_has_a_line_per_image_and_is_plain_json(state):
    """Catches: the records run together on one line (unreadable by an operator), or a text
    that `json` does not read back as what `encode` gave."""
    h = history(ago(days=30), a=record(ago(days=9), ago(hours=2)), b=record(ago(minutes=5)))
    state.save_history(h)
    text = state.history_path.read_text()
    assert json.loads(text) == json.loads(json.dumps(encode(h)))
    lines = text.splitlines()
    assert [line.split(":")[0].strip() for line in lines if "first_seen" in line] == ['"a"', '"b"']
    assert len(lines) == 2 + 3 + 1 + 2  # braces, version/since/images, its brace, a record a line


def test_empty_history_round_trips(state):
    """A history without records round-trips too."""
    h = history(ago(days=1))
    state.save_history(h)
    assert state.load_history(NOW) == h


def test_timestamps_in_other_zones_load_as_the_same_instants(state):
    """Timestamps are stored in UTC; a +02:00 time loads back as the same instant."""
    plus2 = timezone(timedelta(hours=2))
    h = history(ago(days=3).astimezone(plus2), a=record(ago(days=2).astimezone(plus2)))
    state.save_history(h)
    loaded = state.load_history(NOW)
    assert loaded.since == ago(days=3)
    assert loaded.images["a"].first_seen == ago(days=2)
    assert loaded.since.utcoffset() == timedelta(0)


def test_save_replaces_the_previous_history(state):
    """A second save overwrites the first."""
    state.save_history(history(ago(days=3), a=record(ago(days=2))))
    state.save_history(history(ago(days=3), b=record(ago(days=1))))
    assert set(state.load_history(NOW).images) == {"b"}


def test_history_file_is_0600(state):
    """The history file is readable and writable by its owner only."""
    state.save_history(history(ago(days=1)))
    assert stat.S_IMODE(state.history_path.stat().st_mode) == 0o600


def test_state_directory_is_created_0700(state):
    """The state directory is created accessible to its owner only."""
    state.save_history(history(ago(days=1)))
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o700


def test_state_directory_is_created_with_its_missing_parents(tmp_path):
    """A state directory several levels down is created, itself 0700."""
    nested = StateDir(tmp_path / "a" / "b" / "state")
    nested.save_history(history(ago(days=1)))
    assert nested.history_path.is_file()
    assert stat.S_IMODE(nested.path.stat().st_mode) == 0o700


def test_save_leaves_no_temporary_files(state):
    """The atomic write renames its temporary file away: only history.json remains."""
    state.save_history(history(ago(days=1), a=record(ago(days=1))))
    assert sorted(p.name for p in state.path.iterdir()) == ["history.json"]


def test_missing_history_loads_fresh(state):
    """No file yet: fresh history that begins now."""
    h = state.load_history(NOW)
    assert (h.since, dict(h.images)) == (NOW, {})


CORRUPT = {
    "garbage": b"\x00\xffnot json at all",
    "truncated": b'{"version": 1, "since": "2025-05-01T00:00:00+00:00", "images": {"a": {"fir',
    "wrong-version": json.dumps(
        {"version": 99, "since": "2025-05-01T00:00:00+00:00", "images": {}}
    ).encode(),
    "no-version": json.dumps({"since": "2025-05-01T00:00:00+00:00", "images": {}}).encode(),
    "naive-since": json.dumps(
        {"version": 1, "since": "2025-05-01T00:00:00", "images": {}}
    ).encode(),
    "naive-first-seen": json.dumps(
        {
            "version": 1,
            "since": "2025-05-01T00:00:00+00:00",
            "images": {"a": {"first_seen": "2025-05-02T00:00:00", "last_used": None}},
        }
    ).encode(),
    "naive-last-used": json.dumps(
        {
            "version": 1,
            "since": "2025-05-01T00:00:00+00:00",
            "images": {
                "a": {"first_seen": "2025-05-02T00:00:00+00:00", "last_used": "2025-05-03T00:00"}
            },
        }
    ).encode(),
    "bad-timestamp": json.dumps({"version": 1, "since": "yesterday", "images": {}}).encode(),
    "number-timestamp": json.dumps({"version": 1, "since": 1714521600, "images": {}}).encode(),
    "images-a-list": json.dumps(
        {"version": 1, "since": "2025-05-01T00:00:00+00:00", "images": ["a"]}
    ).encode(),
    "record-missing-field": json.dumps(
        {"version": 1, "since": "2025-05-01T00:00:00+00:00", "images": {"a": {}}}
    ).encode(),
    "null-first-seen": json.dumps(
        {
            "version": 1,
            "since": "2025-05-01T00:00:00+00:00",
            "images": {"a": {"first_seen": None, "last_used": None}},
        }
    ).encode(),
    "top-level-list": b"[1, 2, 3]",
    "empty": b"",
}


@pytest.mark.parametrize("content", list(CORRUPT.values()), ids=list(CORRUPT))
def test_corrupt_history_loads_fresh(state, content):
    """A corrupt file gives fresh history with since == now (every image counts as just seen)."""
    state.path.mkdir(mode=0o700)
    state.history_path.write_bytes(content)
    h = state.load_history(NOW)
    assert (h.since, dict(h.images)) == (NOW, {})


@pytest.mark.parametrize("content", list(CORRUPT.values()), ids=list(CORRUPT))
def test_corrupt_history_is_renamed_aside(state, content):
    """The corrupt file is kept as history.json.corrupt-<time>, its content untouched."""
    state.path.mkdir(mode=0o700)
    state.history_path.write_bytes(content)
    state.load_history(NOW)
    assert not state.history_path.exists()
    aside = _corrupt_files(state)
    assert aside == ["history.json.corrupt-20250601T120000Z"]
    assert (state.path / aside[0]).read_bytes() == content


def test_corrupt_history_logs_a_warning(state, caplog):
    """Loading a corrupt file logs one warning that says history starts fresh."""
    state.path.mkdir(mode=0o700)
    state.history_path.write_bytes(b"{nope")
    with caplog.at_level(logging.DEBUG, logger="nodegc.state.store"):
        state.load_history(NOW)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "history corrupt" in warnings[0].getMessage()
    assert warnings[0].kept_as.endswith("history.json.corrupt-20250601T120000Z")


def test_missing_history_does_not_warn(state, caplog):
    """A first start (no file) is normal: no warning."""
    with caplog.at_level(logging.DEBUG, logger="nodegc.state.store"):
        state.load_history(NOW)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_after_a_corrupt_load_a_save_writes_a_good_file(state):
    """Saving after the corrupt file was set aside writes a loadable history."""
    state.path.mkdir(mode=0o700)
    state.history_path.write_bytes(b"garbage")
    fresh = state.load_history(NOW)
    state.save_history(fresh)
    assert state.load_history(NOW + timedelta(hours=1)) == fresh


def test_save_where_the_parent_is_a_file_raises_state_error(tmp_path):
    """A state directory that cannot be created raises StateError naming the path."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    state = StateDir(blocker / "state")
    with pytest.raises(StateError, match=r"state directory .*a-file/state"):
        state.save_history(history(ago(days=1)))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_save_into_a_read_only_directory_raises_state_error(tmp_path):
    """A state directory without write permission raises StateError, not OSError."""
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    try:
        with pytest.raises(StateError, match="not writable"):
            StateDir(ro).save_history(history(ago(days=1)))
    finally:
        ro.chmod(0o700)


def test_writable_is_false_when_the_directory_cannot_be_made(tmp_path):
    """writable() answers False instead of raising."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert StateDir(blocker / "state").writable() is False
    assert StateDir(tmp_path / "ok").writable() is True


def test_finish_times_round_trip(state):
    """The finish-time cache saves and loads back the same instants."""
    times = {"c1": ago(hours=1), "c2": ago(days=2)}
    state.save_finish_times(times)
    assert state.load_finish_times() == times


def test_corrupt_finish_times_load_empty(state):
    """The finish-time cache is only a cache: unreadable means empty."""
    state.path.mkdir(mode=0o700)
    (state.path / "finish-times.json").write_text("{broken")
    assert state.load_finish_times() == {}


INSTANTS = st.integers(0, 10**8).map(lambda s: NOW - timedelta(seconds=s, microseconds=s % 997))


@given(
    since=INSTANTS,
    records=st.dictionaries(
        st.one_of(st.text("abcdef0123456789:", min_size=1, max_size=20), st.text(min_size=1)),
        st.tuples(INSTANTS, st.one_of(st.none(), INSTANTS)),
        max_size=8,
    ),
)
def test_property_any_history_round_trips(tmp_path_factory, since, records):
    """Any history (aware timestamps, any ids: quotes, newlines, controls) loads back equal to
    what was saved."""
    state = StateDir(tmp_path_factory.mktemp("state"))
    h = history(since, **{k: record(f, last) for k, (f, last) in records.items()})
    state.save_history(h)
    assert state.load_history(NOW) == h
