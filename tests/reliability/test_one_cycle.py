"""One cycle at a time per state directory, on a real engine: a second `nodegc once` beside a
running one, or beside the daemon, exits 2 naming the holder's pid before it touches anything;
the audit never records one removal twice."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nodegc.state.lock import LOCK_FILE
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.faultproxy import Fault, FaultProxy
from tests.engine.helpers import Daemon, create_container, nodegc
from tests.reliability.scene import POD
from tests.reliability.test_accounting import CONFIG
from tests.reliability.test_journal import start_once


def test_a_second_once_beside_a_running_one_exits_2_naming_it(
    engine: IsolatedEngine, busybox: str, tmp_path: Path, proxy: FaultProxy
) -> None:
    """While one `once` removes 200 dead containers, another on the same state directory exits
    2 naming the first's pid, with no engine request; the audit has each container once. The
    first reaches its engine through the fault proxy, whose first container DELETE waits until
    the second has exited: the first holds the lock for as long as the second needs, however
    slowly a busy machine starts the second (it once finished its 200 removals first)."""
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    # The held DELETE lasts as long as the second takes to start and exit: within the request
    # timeout however slowly a loaded machine starts Python (2 s, CONFIG's, failed it once).
    config.write_text(CONFIG.replace('timeout = "2s"', 'timeout = "300s"'))

    def make(n: int) -> list[str]:
        with engine.api() as api:
            return [create_container(api, busybox, labels=POD) for _ in range(n)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        dead = [c for batch in pool.map(make, [50] * 4) for c in batch]
    second_done = threading.Event()
    held = proxy.add(
        Fault.hook(lambda: second_done.wait(300)), method="DELETE", path=r"/containers/", times=1
    )
    first = start_once(engine, state, config, endpoint=proxy.endpoint)
    lock = state / LOCK_FILE
    deadline = time.monotonic() + 300  # generous: a busy machine starts Python slowly
    while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.01)
    # The second goes to a socket nobody serves: it must not get as far as asking an engine.
    try:
        second = nodegc(None, state, "once", "--config", str(config), "--runtime-endpoint",
                        f"unix://{tmp_path}/nobody.sock")  # fmt: skip
    finally:
        second_done.set()
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, (err, out[-3000:])
    assert held.hits == 1, "the first never reached its removals"
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid}" in second.stderr and "state directory" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    audit = [json.loads(x) for x in (state / "audit.jsonl").read_text().splitlines()]
    assert Counter(e["id"] for e in audit) == Counter(dead), "a removal recorded twice"
    assert {d["outcome"] for d in json.loads(out)["containers"]["decisions"]} == {"removed"}


def test_once_beside_the_daemon_is_refused_clearly(
    engine: IsolatedEngine, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """A timer's `nodegc once` on the daemon's state directory: exit 2 naming the daemon's pid;
    `report` (which changes nothing) still works beside it."""
    state = tmp_path / "state"
    daemon = Daemon(engine, state, CONFIG)
    daemons.append(daemon.start())
    daemon.wait_ready()
    proc = nodegc(engine, state, "once")
    assert proc.returncode == 2, proc.stderr
    assert daemon.proc is not None and f"pid {daemon.proc.pid}" in proc.stderr
    assert nodegc(engine, state, "report").returncode == 0
