"""Sandbox GC (collect_sandboxes) against a real containerd, and on runtimes without sandboxes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nodegc.collect.cycle import Collector
from nodegc.collect.sandboxes import collect_sandboxes, plan_sandbox_gc
from nodegc.config import load_settings
from nodegc.model import Outcome, Reason, RemovalResult
from nodegc.runtime import Conflict
from nodegc.runtime.cri import CriRuntime
from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.state.store import StateDir
from nodegc.testing.containerd import IsolatedContainerd
from nodegc.testing.fake import FakeRuntime
from tests.cri.helpers import cri_settings

LATER = timedelta(hours=1)  # past the containers' minimum age, whatever it is set to


@pytest.fixture
def cri(ctrd: IsolatedContainerd) -> Iterator[CriRuntime]:
    """The adapter at `ctrd`."""
    runtime = CriRuntime(ctrd.endpoint, timedelta(seconds=10))
    yield runtime
    runtime.close()


def restarted_pod(ctrd: IsolatedContainerd) -> tuple[str, str]:
    """A pod whose first sandbox stopped and was replaced: (old, new) sandbox ids."""
    old = ctrd.run_pod("web", uid="u1", attempt=0)
    ctrd.stop_pod(old)
    new = ctrd.run_pod("web", uid="u1", attempt=1)
    return old, new


def test_a_superseded_empty_sandbox_is_stopped_and_removed(
    ctrd: IsolatedContainerd, cri: CriRuntime, tmp_path: Path
) -> None:
    """The old sandbox of a restarted pod goes; the newest (ready) one stays."""
    old, new = restarted_pod(ctrd)
    settings = cri_settings(ctrd, tmp_path)
    seen: list[RemovalResult] = []

    results = collect_sandboxes(cri, settings, datetime.now(UTC) + LATER, [seen.append])

    assert [(r.kind, r.id, r.outcome, r.reason) for r in results] == [
        ("sandbox", old, Outcome.REMOVED, Reason.SUPERSEDED)
    ]
    assert seen == results
    assert ctrd.sandboxes() == {new: pb.SANDBOX_READY}


def test_the_newest_sandbox_stays_even_when_stopped(
    ctrd: IsolatedContainerd, cri: CriRuntime, tmp_path: Path
) -> None:
    """A pod's only sandbox, not ready, is not removed (its pod may restart)."""
    only = ctrd.run_pod("solo")
    ctrd.stop_pod(only)
    settings = cri_settings(ctrd, tmp_path)

    plan = plan_sandbox_gc(cri, settings, datetime.now(UTC) + LATER)
    results = collect_sandboxes(cri, settings, datetime.now(UTC) + LATER)

    assert plan is not None and [d.reason for d in plan.decisions] == [Reason.NEWEST_OF_POD]
    assert results == []
    assert ctrd.sandboxes() == {only: pb.SANDBOX_NOTREADY}


def test_a_stopped_sandbox_holding_a_dead_container_is_kept(
    ctrd: IsolatedContainerd, cri: CriRuntime, busybox: str, tmp_path: Path
) -> None:
    """Container GC first: while a dead container remains, its sandbox stays `in-use`."""
    old = ctrd.run_pod("web", uid="u1", attempt=0)
    container = ctrd.run_container(old, busybox, ["true"])
    ctrd.stop_pod(old)
    ctrd.run_pod("web", uid="u1", attempt=1)
    settings = cri_settings(ctrd, tmp_path)

    plan = plan_sandbox_gc(cri, settings, datetime.now(UTC) + LATER)
    results = collect_sandboxes(cri, settings, datetime.now(UTC) + LATER)

    assert plan is not None
    (decision,) = [d for d in plan.decisions if d.sandbox.id == old]
    assert (decision.reason, decision.used_by) == (Reason.IN_USE, (container,))
    assert results == []
    assert old in ctrd.sandboxes()


def test_after_container_gc_the_emptied_sandbox_goes_in_the_same_cycle(
    ctrd: IsolatedContainerd, cri: CriRuntime, busybox: str, tmp_path: Path
) -> None:
    """Dependents first: the cycle removes the dead container, then its old sandbox can go."""
    old = ctrd.run_pod("web", uid="u1", attempt=0)
    ctrd.run_container(old, busybox, ["true"])
    ctrd.stop_pod(old)
    new = ctrd.run_pod("web", uid="u1", attempt=1)
    settings = cri_settings(ctrd, tmp_path / "s", containers={"max_per_pod_container": 0})
    collector = Collector(settings, cri, StateDir(tmp_path / "s"))

    report = collector.cycle(images=False)
    # The one line nodegc/cycle.py adds after container GC:
    report.container_results += collect_sandboxes(
        collector.runtime, collector.settings, collector.clock() + LATER, collector.listeners
    )

    outcomes = [(r.kind, r.outcome) for r in report.container_results]
    assert outcomes == [("container", Outcome.REMOVED), ("sandbox", Outcome.REMOVED)]
    assert ctrd.containers() == {}
    assert ctrd.sandboxes() == {new: pb.SANDBOX_READY}


def test_remove_sandbox_refuses_a_ready_sandbox(ctrd: IsolatedContainerd, cri: CriRuntime) -> None:
    """CRI's RemovePodSandbox would kill a running pod: the adapter re-checks and refuses."""
    running = ctrd.run_pod("live")
    (listed,) = cri.list_sandboxes()
    with pytest.raises(Conflict, match="ready"):
        cri.remove_sandbox(listed)
    assert ctrd.sandboxes() == {running: pb.SANDBOX_READY}


def test_remove_sandbox_refuses_a_sandbox_that_has_containers(
    ctrd: IsolatedContainerd, cri: CriRuntime, busybox: str
) -> None:
    """CRI's RemovePodSandbox would remove its containers: the adapter re-checks and refuses."""
    pod = ctrd.run_pod("holder")
    container = ctrd.run_container(pod, busybox, ["true"])
    ctrd.stop_pod(pod)
    (listed,) = cri.list_sandboxes()
    with pytest.raises(Conflict, match=container[:12]):
        cri.remove_sandbox(listed)
    assert set(ctrd.containers()) == {container}


def test_a_runtime_without_sandboxes_gets_no_sandbox_gc(tmp_path: Path) -> None:
    """Docker (here the fake) has no sandboxes: no plan, no results, no calls."""
    runtime = FakeRuntime()
    settings = load_settings(None, {"state": {"directory": str(tmp_path)}})
    assert plan_sandbox_gc(runtime, settings, datetime.now(UTC)) is None
    assert collect_sandboxes(runtime, settings, datetime.now(UTC)) == []
    assert runtime.calls == []
