"""Pod sandbox GC: after container GC, on runtimes that have sandboxes (CRI).

The rule is `nodegc.policy.sandboxes.plan_sandboxes`; this module only observes (a fresh listing
of sandboxes and containers, since container GC has just removed some), carries out the removals
through the runtime, and reports them as `RemovalResult`s of kind "sandbox". A runtime without
sandboxes (Docker) gets no plan and no results.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from nodegc.collect.removal import ResultListener, carry_out, log_result, tell
from nodegc.config import Settings
from nodegc.model import RemovalResult, Sandbox
from nodegc.policy.sandboxes import SandboxDecision, SandboxPlan, plan_sandboxes
from nodegc.runtime import Runtime, RuntimeError_

log = logging.getLogger(__name__)


@runtime_checkable
class SandboxRuntime(Protocol):
    """What sandbox GC needs beyond the Runtime interface."""

    def list_sandboxes(self) -> Sequence[Sandbox]:
        """Every pod sandbox, ready or not, in one listing."""
        ...

    def remove_sandbox(self, sandbox: Sandbox) -> None:
        """Stop and remove a sandbox; Conflict when it is ready or has containers, NotFound when
        it is gone."""
        ...


def plan_sandbox_gc(runtime: Runtime, settings: Settings, now: datetime) -> SandboxPlan | None:
    """The sandbox plan over a fresh listing; None when the runtime has no sandboxes.

    Raises RuntimeUnavailable (or another RuntimeError_) when a listing fails.
    """
    if not isinstance(runtime, SandboxRuntime):
        return None
    sandboxes = runtime.list_sandboxes()
    containers = runtime.list_containers()
    return plan_sandboxes(sandboxes, containers, settings.containers, now)


def collect_sandboxes(
    runtime: Runtime,
    settings: Settings,
    now: datetime,
    listeners: Sequence[ResultListener] = (),
) -> list[RemovalResult]:
    """Remove the sandboxes the policy lets go; one result per removal tried.

    [] for a runtime without sandboxes. A listing that fails is logged and yields [] (sandbox GC
    waits for the next cycle; container and image GC are not held up by it).
    """
    try:
        plan = plan_sandbox_gc(runtime, settings, now)
    except RuntimeError_ as exc:
        log.warning("sandbox GC skipped: listing failed", extra={"error": str(exc)})
        return []
    if plan is None:
        return []
    assert isinstance(runtime, SandboxRuntime)
    results = [_remove_one(runtime, d) for d in plan.removals]
    tell(listeners, results)
    return results


def _remove_one(runtime: SandboxRuntime, decision: SandboxDecision) -> RemovalResult:
    s = decision.sandbox
    outcome, detail = carry_out(lambda: runtime.remove_sandbox(s))
    result = RemovalResult(
        kind="sandbox",
        id=s.id,
        name=s.pod,
        reason=decision.reason,
        outcome=outcome,
        detail=detail,
    )
    log_result(
        result, {"sandbox": s.id, "pod": s.pod, "pod_uid": s.uid, "reason": str(decision.reason)}
    )
    return result
