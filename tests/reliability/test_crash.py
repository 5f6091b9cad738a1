"""Crash consistency: kill -9 at random points of cycles, then restart on the same state.

A forked child runs cycles in a loop over a FakeRuntime (a big history, removals audited), and
is SIGKILLed at a random point of its work: in history load or save, in a removal, in an audit
append. The kills are synchronised on what the child has done, never on a delay: it reports each
step on a pipe (started, a removal recorded in the audit, a cycle saved), and the test kills it
just after the step it chose (plus a random jitter of a few milliseconds, which only moves the
kill within the next step), so a slow machine gets the same kills as a fast one.
After each kill: history.json is whole (never set aside as corrupt), the first sightings it
had survive, and every audit line parses except at most a torn last one, which `read` skips.
A history that *is* damaged starts fresh with a warning and removes nothing: every image counts
as just seen.
"""

from __future__ import annotations

import json
import logging
import os
import random
import select
import signal
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nodegc.collect.cycle import Collector
from nodegc.config import Settings, load_settings
from nodegc.model import Container, ContainerState, History, Image, ImageRecord, Outcome
from nodegc.state.audit import AuditLog, parse_entry, read_audit
from nodegc.state.store import HISTORY_FILE, StateDir, decode, encode
from nodegc.testing.fake import FakeRuntime
from tests.reliability.scene import record_stats

KILLS = 40
STABLE_IMAGES = 2000  # pinned: never removed, so their first sightings must survive every kill
SEED = 20261126


def crash_settings(state: Path, **images: object) -> Settings:
    """Every unpinned, unused image and every dead container is a candidate."""
    return load_settings(
        None,
        {
            "state": {"directory": str(state)},
            "images": {
                "minimum_age": "0s",
                "high_threshold_percent": 1,
                "low_threshold_percent": 0,
                **images,
            },
            "containers": {"max_per_pod_container": 0},
        },
        environ={},
    )


def stable_runtime(state: Path) -> FakeRuntime:
    runtime = FakeRuntime(data_root=str(state.parent))
    for n in range(STABLE_IMAGES):
        runtime.add_image(
            Image(f"sha256:{n:064x}", (f"stable/{n}:1",), labels={"nodegc.io/pinned": "true"})
        )
    return runtime


def churn(runtime: FakeRuntime, round_: int, now: datetime) -> None:
    """New unpinned images and dead containers of them: the next cycle removes them all."""
    for n in range(20):
        image_id = f"sha256:{round_:032x}{n:032x}"
        runtime.add_image(Image(image_id, (f"churn/{round_}-{n}:1",), size_bytes=1000))
        runtime.add_container(
            Container(
                id=f"{round_:032x}{n:032x}",
                name=f"c-{round_}-{n}",
                image_id=image_id,
                state=ContainerState.EXITED,
                created=now - timedelta(hours=1),
                finished_at=now - timedelta(minutes=30),
            )
        )


# What the child reports on its pipe, one byte each: it is about to load the state (history,
# finish times, layers); a removal was recorded (the audit line is written before this is told);
# a cycle finished (history saved).
STARTED, REMOVED, CYCLED = b"s", b"r", b"c"
DEADLINE = 600.0  # seconds for the child to get as far as asked: generous, a busy machine too


def worker(state: Path, progress: int) -> None:
    """The child: cycles forever (until SIGKILL), saving history and appending audit lines,
    telling each step on the `progress` pipe."""
    logging.disable(logging.CRITICAL)
    runtime = stable_runtime(state)
    audit = AuditLog(StateDir(state).path / "audit.jsonl", node="crash")
    os.write(progress, STARTED)
    collector = Collector(
        crash_settings(state),
        runtime,
        StateDir(state),
        listeners=[audit, lambda _result: os.write(progress, REMOVED)],
    )
    round_ = 0
    while True:
        round_ += 1
        churn(runtime, round_ + os.getpid() * 1000, datetime.now(UTC))
        collector.cycle()
        os.write(progress, CYCLED)


def run_and_kill(state: Path, step: bytes, count: int = 1, jitter: float = 0.0) -> None:
    """Fork a worker on `state` and SIGKILL it once it has told `step` `count` times, `jitter`
    seconds later (0: at once)."""
    crash_log = state.parent / "worker-error.txt"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            os.close(read_end)
            worker(state, write_end)
        except BaseException:
            crash_log.write_text(traceback.format_exc())
        finally:
            os._exit(1)
    os.close(write_end)
    try:
        seen = wait_for_step(read_end, step, count)
        if seen and jitter:
            time.sleep(jitter)  # where in the next step the kill lands; nothing is asserted on it
        os.kill(pid, signal.SIGKILL)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    error = crash_log.read_text() if crash_log.exists() else "(no traceback)"
    assert seen, f"the worker never told {step!r} x{count} (within {DEADLINE:.0f} s): {error}"
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, error


def wait_for_step(fd: int, step: bytes, count: int) -> bool:
    """Read the child's steps until `step` came `count` times; False if it ended first or the
    deadline passed."""
    deadline = time.monotonic() + DEADLINE
    while count > 0:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False
        data = os.read(fd, 1)  # one step at a time: never past the one asked for
        if not data:
            return False  # the child ended
        count -= data.count(step)
    return True


def audit_lines(path: Path) -> tuple[list[bytes], bytes]:
    """(complete lines, the torn tail after the last newline)."""
    data = path.read_bytes() if path.exists() else b""
    *lines, tail = data.split(b"\n")
    return lines, tail


def first_sightings(state: Path) -> dict[str, str]:
    images = json.loads((state / HISTORY_FILE).read_text())["images"]
    return {k: v["first_seen"] for k, v in images.items() if k.startswith("sha256:" + "0" * 32)}


def kill_point(rng: random.Random) -> tuple[bytes, int, float]:
    """A random point of a worker's life: in its load of the state, after the k-th removal of
    its first two cycles (in the next removal, its audit append, or the history save after the
    last), or after a cycle (the next one's listing, planning); with a jitter of 0-20 ms."""
    step = rng.choice([STARTED, REMOVED, REMOVED, REMOVED, CYCLED])
    count = rng.randint(1, 80) if step == REMOVED else 1  # 40 removals a cycle
    return step, count, rng.uniform(0.0, 0.02)


def test_kill_9_at_random_points_never_corrupts_history_or_audit(tmp_path: Path) -> None:
    """40 kills at random points: history whole and unchanged in what it knew, audit whole."""
    state = tmp_path / "state"
    rng = random.Random(SEED)
    run_and_kill(state, CYCLED)  # a first full save
    known = first_sightings(state)
    assert len(known) == STABLE_IMAGES
    earlier_torn = 0
    removed = 0
    for _ in range(KILLS):
        run_and_kill(state, *kill_point(rng))
        assert not list(state.glob(f"{HISTORY_FILE}.corrupt-*")), "history was set aside"
        decode(json.loads((state / HISTORY_FILE).read_bytes()))  # whole and valid
        assert first_sightings(state) == known, "first sightings were lost"
        lines, tail = audit_lines(state / "audit.jsonl")
        bad = [line for line in lines if line and parse_entry(line) is None]
        assert len(bad) == earlier_torn, bad  # only earlier torn tails, now terminated
        entries, skipped = read_audit(state / "audit.jsonl")
        assert skipped == earlier_torn + (1 if tail else 0)
        earlier_torn += 1 if tail else 0
        removed = sum(1 for e in entries if e["outcome"] == str(Outcome.REMOVED))
    assert removed > 0, "the workers never got as far as removing anything"
    assert earlier_torn <= 1, f"{earlier_torn} torn audit lines in {KILLS} kills"
    mid_write = [p.name for p in state.iterdir() if p.name.startswith(".")]
    record_stats("crash", kills=KILLS + 1, killed_mid_write=len(mid_write), removed=removed,
                 torn_audit_lines=earlier_torn)  # fmt: skip


def test_after_the_kills_a_clean_cycle_runs_on_the_same_state(tmp_path: Path) -> None:
    """A restart after kill -9 cycles normally: history loads as saved, no warning."""
    state = tmp_path / "state"
    run_and_kill(state, CYCLED)  # a first full save
    run_and_kill(state, STARTED)  # in the load
    run_and_kill(state, REMOVED, 25)  # mid-cycle
    runtime = stable_runtime(state)
    churn(runtime, 1, datetime.now(UTC))
    collector = Collector(crash_settings(state), runtime, StateDir(state))
    assert len(collector.history.images) >= STABLE_IMAGES
    report = collector.cycle()
    assert report.failures == []
    assert {r.outcome for r in report.results} == {Outcome.REMOVED}


def test_restart_removes_temp_files_that_killed_writes_left_behind(tmp_path: Path) -> None:
    """Old `.history.json.*` leftovers of kill -9 mid-write go at start; a fresh one stays."""
    state = tmp_path / "state"
    run_and_kill(state, CYCLED)
    old = [
        state / f".{name}.killed{n}"
        for n in range(3)
        for name in (HISTORY_FILE, "finish-times.json")
    ]
    for leftover in old:
        leftover.write_bytes(b'{"half": ')
        os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    in_flight = state / f".{HISTORY_FILE}.inflight"
    in_flight.write_bytes(b"{")
    Collector(crash_settings(state), stable_runtime(state), StateDir(state))
    assert not any(p.exists() for p in old)
    assert in_flight.exists()


def damaged_histories() -> list[tuple[str, bytes]]:
    """A saved history of images seen long ago, damaged in the ways a disk or a crash could."""
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    whole = json.dumps(
        encode(
            History(
                since=long_ago,
                images={f"sha256:{n:064x}": ImageRecord(first_seen=long_ago) for n in range(50)},
            )
        )
    ).encode()
    rng = random.Random(SEED)
    cuts = sorted(rng.sample(range(1, len(whole)), 8))
    cases = [(f"truncated-at-{c}", whole[:c]) for c in cuts]
    cases += [
        ("empty", b""),
        ("zeros", b"\0" * 4096),
        ("binary", bytes(rng.randrange(256) for _ in range(512))),
        ("wrong-version", whole.replace(b'"version": 1', b'"version": 99')),
        ("a-list", b"[1, 2, 3]"),
        ("naive-timestamp", whole.replace(b"+00:00", b"", 1)),
        ("no-since", whole.replace(b'"since"', b'"sense"')),
        ("image-not-an-object", b'{"version": 1, "since": "2020-01-01T00:00:00+00:00", '
                                b'"images": {"sha256:x": 5}}'),
    ]  # fmt: skip
    return cases


DAMAGED = damaged_histories()


@pytest.fixture
def nodegc_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog that also sees the "nodegc" logger when an in-process CLI run cut it off."""
    logger = logging.getLogger("nodegc")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="nodegc"):
            yield caplog
    finally:
        logger.removeHandler(caplog.handler)


@pytest.mark.parametrize(("damage", "data"), DAMAGED, ids=[name for name, _ in DAMAGED])
def test_damaged_history_starts_fresh_with_a_warning_and_removes_no_image(
    tmp_path: Path, nodegc_logs: pytest.LogCaptureFixture, damage: str, data: bytes
) -> None:
    """Fresh history after damage: every image is too young; none goes, even under pressure."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / HISTORY_FILE).write_bytes(data)
    runtime = FakeRuntime(data_root=str(tmp_path))
    for n in range(50):
        runtime.add_image(Image(f"sha256:{n:064x}", (f"old/{n}:1",), size_bytes=10**9))
    settings = crash_settings(state, minimum_age="2m", maximum_age="1h")
    collector = Collector(settings, runtime, StateDir(state))
    report = collector.cycle()
    assert any("history corrupt" in r.getMessage() for r in nodegc_logs.records), damage
    assert report.image_results == []
    assert {d.reason.value for d in report.image_plan.decisions} == {"too-young"}
    assert len(runtime.images) == 50
    assert list(state.glob(f"{HISTORY_FILE}.corrupt-*")), "the damaged file was not kept"
