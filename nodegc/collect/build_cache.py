"""Build cache GC: carry out a build cache plan, one record at a time, re-measuring the disk.

The rule is `nodegc.policy.build_cache.plan_build_cache`; this module removes the records it lets
go through the runtime (`POST /build/prune` by exact id), in the plan's order (least recently used
first, children before their parents), one at a time: BuildKit prunes under one lock anyway, and
between two removals `statvfs` says whether the disk is back at its target, so the walk stops
there (`age` removals go whatever the disk). When the plan's records were not enough (the disk
came back less than their listed sizes), the walk goes on with the records it kept as
`target-reached`, in the same order, before any image is touched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from nodegc.collect.removal import ResultListener, carry_out, log_result, tell
from nodegc.model import Action, BuildCacheDecision, BuildCachePlan, Outcome, Reason, RemovalResult
from nodegc.runtime import Runtime

KIND = "build-cache"


def walk(plan: BuildCachePlan) -> list[BuildCacheDecision]:
    """The records to try, in order: the plan's removals, then those kept `target-reached`
    (tried for `space` only while the disk is still above its target)."""
    reserve = [
        BuildCacheDecision(d.record, Action.REMOVE, Reason.SPACE, d.record.size_bytes)
        for d in plan.decisions
        if d.action is Action.KEEP and d.reason is Reason.TARGET_REACHED
    ]
    return [*plan.removals, *reserve]


def collect_build_cache(
    runtime: Runtime,
    plan: BuildCachePlan,
    target_reached: Callable[[], bool],
    *,
    stopping: threading.Event | None = None,
    listeners: Sequence[ResultListener] = (),
    already: Sequence[str] = (),
) -> list[RemovalResult]:
    """Remove what `plan` lets go, stopping a `space`/`inodes` walk as soon as
    `target_reached()` (a fresh measurement) says so. `already`: record ids tried earlier in
    the cycle (not tried again). A record the listing calls shared is left for a walk after its
    image is gone (the plan may count on it then; the engine would keep it now). One result per
    removal tried, with the bytes the engine says it reclaimed."""
    results: list[RemovalResult] = []
    tried = set(already)
    reached = False
    for d in walk(plan):
        if d.record.id in tried or d.record.shared:
            continue  # tried already; or planned for after its image (the engine keeps it now)
        if d.reason is not Reason.AGE:
            reached = reached or target_reached()
            if reached:
                continue  # the disk is back: only `age` removals are still due
        tried.add(d.record.id)
        results.append(_remove(runtime, d, stopping))
        tell(listeners, results[-1:])
    return results


def _remove(
    runtime: Runtime, d: BuildCacheDecision, stopping: threading.Event | None
) -> RemovalResult:
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
