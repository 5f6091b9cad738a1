"""Build cache GC: carry out a build cache plan, one record at a time, re-measuring the disk.

The rule is `nodegc.policy.build_cache.plan_build_cache`; this module removes the records it lets
go through the runtime (`POST /build/prune` by exact id), in the plan's order (least recently used
first, children before their parents), one at a time: BuildKit prunes under one lock anyway, and
between two removals `statvfs` says whether the disk is back at its target, so the walk stops
there (`age` removals go whatever the disk). When the plan's records were not enough (the disk
came back less than their listed sizes), the walk goes on with the records it kept as
`target-reached`, in the same order, before any image is touched. Where the engine names no
parents (Docker 26/28), a record it refuses is tried again after the others
(`policy.build_cache.retry_refused`): its child may have gone meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from nodegc.collect.relief import Candidate, Loop, Stopping, relieve
from nodegc.collect.removal import carry_out, log_result
from nodegc.model import (
    Action,
    BuildCacheDecision,
    BuildCachePlan,
    FilesystemStats,
    Layer,
    Outcome,
    RemovalResult,
)
from nodegc.policy.build_cache import holder, retry_refused
from nodegc.policy.ladder import Goal, loop_may_take, whatever_the_disk
from nodegc.policy.space import Ledger
from nodegc.runtime import Runtime

KIND = "build-cache"


def walk(plan: BuildCachePlan) -> list[BuildCacheDecision]:
    """The records to try, in order: the plan's removals, then those kept `target-reached`
    (tried only while the disk is still short of the goal; the reason they go for is the
    policy's, `policy.ladder.Goal.past_plan_reason`, as measured when they start)."""
    reserve = [
        d for d in plan.decisions if d.action is Action.KEEP and loop_may_take(d.action, d.reason)
    ]
    return [*plan.removals, *reserve]


def past_plan(d: BuildCacheDecision, goal: Goal, measured: FilesystemStats) -> BuildCacheDecision:
    """A record the plan kept `target-reached`, taken past the plan as a removal for the reason
    the policy gives it on the disk as `measured`; any other decision as it is."""
    if d.action is Action.REMOVE:
        return d
    reason = goal.past_plan_reason(measured)
    return BuildCacheDecision(d.record, Action.REMOVE, reason, d.record.size_bytes)


def collect_build_cache(
    runtime: Runtime,
    plan: BuildCachePlan,
    *,
    goal: Goal,
    loop: Loop,
    measured: FilesystemStats,
    already: Sequence[str] = (),
) -> tuple[list[RemovalResult], set[str]]:
    """Remove what `plan` lets go through the closed loop (`collect.relief`), one record at a
    time, stopping a `space`/`inodes` walk once the measured disk meets the ladder's `goal`; past
    the plan, the records it kept as `target-reached`. `already`: record ids tried earlier in the
    cycle (not tried again). `loop`: how the walk measures and stops (one removal at a time,
    whatever its `workers`). A record the listing calls shared is left for a walk after its
    image is gone (the plan may count on it then; the engine would keep it now). One result per
    removal tried, with the bytes the engine says it reclaimed, and the ids of planned records
    the measured disk no longer needed (`not-needed`: not started, or refused by the engine
    while they had children and not needed by the time those went)."""
    tried = set(already)
    decisions = [d for d in walk(plan) if d.record.id not in tried and not d.record.shared]
    if not decisions:
        return [], set()
    candidates = _candidates(plan, decisions)
    ledger = Ledger(
        {
            holder(d.record.id): (Layer(f"cache:{d.record.id}", d.record.size_bytes, None),)
            for d in decisions
        }
    )
    latest = [measured]  # the measurement the last removal started on

    def remove(c: Candidate, at: FilesystemStats) -> RemovalResult:
        latest[0] = at
        return _remove(runtime, past_plan(c.item, goal, at), loop.stopping)

    relief = relieve(
        candidates,
        ledger=ledger,
        measured=measured,
        target_met=goal.met,
        # BuildKit prunes under one lock: one at a time, measured between
        loop=replace(loop, under_pressure=goal.under_pressure, workers=1),
        remove=remove,
        skip=lambda c, child: _child_stays(past_plan(c.item, goal, latest[0]), child),
    )
    by_key = {holder(d.record.id): d.record.id for d in decisions}
    return relief.results, {by_key[k] for k in relief.not_needed}


def _candidates(plan: BuildCachePlan, decisions: Sequence[BuildCacheDecision]) -> list[Candidate]:
    """The walk's candidates: children before their parents, `age` removals whatever the disk,
    refused ones tried again where the engine names no parents."""
    planned = {d.record.id for d in plan.removals}
    retry = retry_refused([d.record for d in plan.decisions])
    children: dict[str, list[str]] = {}
    for d in decisions:
        if d.record.parent:
            children.setdefault(d.record.parent, []).append(holder(d.record.id))
    return [
        Candidate(
            key=holder(d.record.id),
            item=d,
            planned=d.record.id in planned,
            unconditional=whatever_the_disk(d.reason),
            after=tuple(children.get(d.record.id, ())),
            retry=retry,
        )
        for d in decisions
    ]


def _child_stays(d: BuildCacheDecision, child: str) -> RemovalResult:
    result = RemovalResult(
        kind=KIND,
        id=d.record.id,
        name=d.record.describe(),
        reason=d.reason,
        outcome=Outcome.SKIPPED,
        detail=f"a record made on it stays: {child.removeprefix('build-cache:')}",
    )
    log_result(result, {"record": d.record.id, "child": child})
    return result


def _remove(runtime: Runtime, d: BuildCacheDecision, stopping: Stopping | None) -> RemovalResult:
    record = d.record
    freed = 0

    def remove() -> None:
        nonlocal freed
        freed = runtime.remove_build_cache(record)

    outcome, detail = carry_out(remove, stopping)
    result = RemovalResult(
        kind=KIND,
        id=record.id,
        name=record.describe(),
        reason=d.reason,
        outcome=outcome,
        detail=detail,
        size_bytes=freed if outcome is Outcome.REMOVED else 0,
    )
    log_result(
        result,
        {
            "record": record.id,
            "record_type": record.type,
            "description": record.description,
            "size_bytes": record.size_bytes,
            "reason": str(d.reason),
        },
    )
    return result
