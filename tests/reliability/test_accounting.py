"""Honest fault accounting, on a real engine: the engine killed while `once` removes hundreds of
dead containers. No removal is started once the engine is found gone; the stderr line, the JSON
on stdout (printed on exit 3 too), the audit record and `nodegc history` give the same counts."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nodegc.testing.engine import IsolatedEngine
from tests.engine.helpers import create_container, nodegc
from tests.reliability.scene import POD, record_stats
from tests.reliability.test_journal import start_once

DEAD = 400
CONFIG = """
[runtime]
timeout = "2s"
max_concurrent_removals = 4
[images]
high_threshold_percent = 100
low_threshold_percent = 80
[containers]
max_per_pod_container = 0
"""


def test_engine_killed_mid_container_gc_every_count_agrees(
    engine: IsolatedEngine, busybox: str, tmp_path: Path
) -> None:
    """400 dead containers, dockerd SIGKILLed after about 100 went: exit 3; stderr, JSON,
    audit and history agree on removed / failed / attempted; the rest was never attempted."""
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)

    def make(n: int) -> list[str]:
        with engine.api() as api:
            return [create_container(api, busybox, labels=POD) for _ in range(n)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        dead = [c for batch in pool.map(make, [DEAD // 4] * 4) for c in batch]
    proc = start_once(engine, state, config)
    with engine.api() as api:
        deadline = time.monotonic() + 120
        while len(api.containers(all=True)) > DEAD - 100:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "removals too slow"
            time.sleep(0.02)
    engine.kill()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err

    report = json.loads(out)
    decisions = {d["id"]: d for d in report["containers"]["decisions"]}
    assert set(decisions) == set(dead)
    json_counts = {
        o: sum(1 for d in decisions.values() if d["outcome"] == o)
        for o in ("removed", "failed", "skipped", "not-attempted")
    }
    assert report["not_attempted"] == json_counts["not-attempted"] > 0
    assert json_counts["failed"] <= 4, "more failed than were in flight"
    assert report["error"] and "unreachable" in report["error"]

    line = err.strip().splitlines()[-1]
    m = re.search(
        r"after (\d+) removal attempts this cycle: (\d+) removed, (\d+) failed, (\d+) skipped"
        r".*; (\d+) more planned, not attempted",
        line,
    )
    assert m, line
    attempts, removed, failed, skipped, not_attempted = map(int, m.groups())
    assert (removed, failed, skipped, not_attempted) == (
        json_counts["removed"], json_counts["failed"], json_counts["skipped"],
        json_counts["not-attempted"],
    )  # fmt: skip
    assert attempts == removed + failed + skipped

    audit = [json.loads(x) for x in (state / "audit.jsonl").read_text().splitlines()]
    assert len(audit) == attempts, "the audit has attempts that were never made"
    for entry in audit:
        assert decisions[entry["id"]]["outcome"] == entry["outcome"]
    history = nodegc(None, state, "history", "--output", "json")
    assert history.returncode == 0, history.stderr
    entries = json.loads(history.stdout)
    assert sorted((e["id"], e["outcome"]) for e in entries) == sorted(
        (e["id"], e["outcome"]) for e in audit
    )

    engine.start()
    with engine.api() as api:
        left = {c["Id"] for c in api.containers(all=True)}
    gone = {i for i, d in decisions.items() if d["outcome"] == "removed"}
    assert not gone & left, "a container reported removed is still there"
    record_stats("accounting-engine-kill", dead=DEAD, removed=removed, failed=failed,
                 not_attempted=not_attempted)  # fmt: skip


def test_nodegc_killed_mid_container_gc_loses_no_record(
    engine: IsolatedEngine, busybox: str, tmp_path: Path
) -> None:
    """kill -9 of `once` while it removes 400 dead containers: every container gone from the
    engine has its audit line, but for at most the removals in flight at the kill."""
    import signal

    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)

    def make(n: int) -> list[str]:
        with engine.api() as api:
            return [create_container(api, busybox, labels=POD) for _ in range(n)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        dead = [c for batch in pool.map(make, [DEAD // 4] * 4) for c in batch]
    proc = start_once(engine, state, config)
    with engine.api() as api:
        deadline = time.monotonic() + 120
        while len(api.containers(all=True)) > DEAD - 150:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "removals too slow"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        left = {c["Id"] for c in api.containers(all=True)}
    gone = set(dead) - left

    def audited() -> list[dict]:
        path = state / "audit.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines() if x]

    at_kill = {e["id"] for e in audited() if e["outcome"] == "removed"}
    assert at_kill <= gone, "the audit says removed for a container that is there"
    # The next cycle records the removals in flight at the kill (from the intent journal),
    # then removes the rest: every container gone has exactly one line that says so.
    done = nodegc(engine, state, "once", "--config", str(config))
    assert done.returncode == 0, done.stderr
    removed = [e["id"] for e in audited() if e["outcome"] == "removed"]
    assert sorted(removed) == sorted(dead), "a removal without a record, or with two"
    late = [e for e in audited() if "interrupted" in e["detail"]]
    # Those recorded late are the ones in flight at the kill (dockerd finishes a DELETE it
    # has begun even when its client is gone), never one recorded already.
    assert not {e["id"] for e in late} & at_kill
    assert len(late) <= 4, late
    record_stats("accounting-nodegc-kill", gone_at_kill=len(gone),
                 recorded_at_restart=len(late))  # fmt: skip
