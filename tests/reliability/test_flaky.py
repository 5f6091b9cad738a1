"""A flaky engine: a share of its connections reset (issue 20, item 8), through the fault proxy
in front of a real dockerd. Reads are retried briefly; removals never; what a cycle learnt is
kept when it stops; a flaky engine is told from a lost one.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import docker
import pytest

from nodegc.collect.learn import LAYER_BATCH
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.faultproxy import Fault, FaultProxy
from nodegc.testing.images import build_image_tar
from tests.engine.helpers import Daemon, nodegc, wait_for
from tests.reliability.scene import Scene, metric, outcomes

RUNS = 3


def seed_hitting(rate: float, within: int, start: int = 0) -> int:
    """A seed whose draws reset at least one of the first `within` requests at `rate` (so the
    test exercises the retry it is about, whatever the rate)."""
    for seed in range(start, start + 100_000):
        draw = random.Random(seed)
        if any(draw.random() < rate for _ in range(within)):
            return seed
    raise AssertionError("no seed")  # pragma: no cover


def deletes_sent_twice(proxy: FaultProxy) -> list[str]:
    """DELETE paths the proxy received more than once."""
    sent = Counter(path for method, path in proxy.requests if method == "DELETE")
    return [path for path, n in sent.items() if n > 1]


@pytest.mark.parametrize("rate", [0.01, 0.05])
def test_once_under_connection_resets_finishes_without_exit_3(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient, rate: float
) -> None:
    """`rate` of the reads reset: every `once` ends 0 or 1 (never 3), no DELETE twice, nothing
    kept lost. Without the retry, the first read reset is exit 3."""
    hits, seed = 0, -1
    for _ in range(RUNS):
        proxy.clear()
        seed = seed_hitting(rate, 3, seed + 1)  # one of the first three reads resets
        rule = proxy.add(Fault.reset(), method="GET", rate=rate, seed=seed)
        before = len(proxy.requests)
        proc = scene.once(proxy.endpoint)
        assert proc.returncode in (0, 1), proc.stderr
        assert "Traceback" not in proc.stderr
        hits += rule.hits
        sent = Counter(p for m, p in proxy.requests[before:] if m == "DELETE")
        assert all(n == 1 for n in sent.values()), sent
    assert hits >= RUNS  # every run had at least one read reset
    scene.check_nothing_kept_was_lost(api)


def test_a_removal_whose_answer_was_lost_is_never_sent_again(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient
) -> None:
    """Every DELETE is carried out by the engine, its answer lost (connection reset): each is
    sent once, never repeated; a container found gone afterwards (a look, which is a read) is
    `removed`; what stays is whole."""
    rule = proxy.add(Fault.reset(after=True), method="DELETE")
    proc = scene.once(proxy.endpoint)
    assert proc.returncode in (0, 1, 3), proc.stderr
    assert rule.hits >= 1
    assert deletes_sent_twice(proxy) == []
    left = {c["Id"] for c in api.containers(all=True)}
    assert not left & set(scene.dead)
    if proc.returncode != 3:
        containers = outcomes(json.loads(proc.stdout), "containers")
        assert all(containers[c] == "removed" for c in scene.dead), containers
    scene.check_nothing_kept_was_lost(api)


def test_layers_learnt_survive_a_failed_cycle(
    engine: IsolatedEngine, busybox: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The engine stops answering history requests part-way through a big first cycle: exit 3,
    but the layers of every batch finished are saved, and the next run asks only for the
    rest."""
    count = LAYER_BATCH + 40
    engine.load_many(build_image_tar([f"many/i{n}:1"]) for n in range(count))
    state = tmp_path / "state"
    answered = LAYER_BATCH + 10
    proxy.add(Fault.reset(), method="GET", path=r"/history$", skip=answered)
    first = nodegc(None, state, "report", "--output", "json", endpoint=proxy.endpoint)
    assert first.returncode == 3, first.stderr
    assert "Traceback" not in first.stderr
    learnt = json.loads((state / "layers.json").read_text())
    assert len(learnt.get("images", learnt)) >= LAYER_BATCH
    proxy.clear()
    before = proxy.count("GET", r"/history$")
    second = nodegc(None, state, "report", "--output", "json", endpoint=proxy.endpoint)
    assert second.returncode == 0, second.stderr
    asked = proxy.count("GET", r"/history$") - before
    assert asked <= count + 1 - LAYER_BATCH  # busybox and the unfinished batches only


def test_a_lost_engine_and_a_flaky_one_are_told_apart(scene: Scene, proxy: FaultProxy) -> None:
    """Reads that answer on a second try, then one that never does: "engine flaky" and the
    counts; an engine that answers nothing: "engine unreachable"."""
    proxy.add(Fault.reset(), method="GET", path=r"/_ping$", times=1)
    proxy.add(Fault.reset(), method="GET", path=r"/containers/json$")
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 3, proc.stderr
    assert "engine flaky" in proc.stderr and "answered when retried" in proc.stderr
    proxy.clear()
    proxy.down()
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 3, proc.stderr
    assert "engine unreachable" in proc.stderr and "flaky" not in proc.stderr


def test_daemon_makes_cycles_with_connections_resetting(
    scene: Scene, proxy: FaultProxy, daemons: list[Daemon], api: docker.APIClient
) -> None:
    """A fifth of the reads reset (the events stream's too): the daemon becomes ready and its
    cycles succeed (a cycle of a handful of reads fails without retries more often than not)."""
    proxy.add(Fault.reset(), method="GET", rate=0.2, seed=seed_hitting(0.2, 3))
    daemon = scene.daemon(proxy.endpoint).start()
    daemons.append(daemon)
    daemon.wait_ready(timeout=60)

    def cycles(result: str) -> float:
        return metric(daemon.get("/metrics")[1], "nodegc_cycles_total", result=result)

    wait_for(lambda: cycles("success") >= 8, timeout=120)
    assert cycles("failure") <= 2, daemon.log.read_text()[-3000:]
    scene.check_nothing_kept_was_lost(api)
