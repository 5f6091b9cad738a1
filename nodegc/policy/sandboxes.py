"""Pod sandbox GC policy (CRI): which sandboxes go, the kubelet's way, after their containers.

Pure: sandboxes, containers, settings and the time in; a decision for every sandbox out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from nodegc.config import ContainerSettings
from nodegc.model import LABEL_SANDBOX_ID, Action, Container, Reason, Sandbox
from nodegc.policy.labels import keep_labelled

# The label that names a container's sandbox (dockershim's and cri-dockerd's; the CRI adapter
# fills it in from the container's pod_sandbox_id).


@dataclass(frozen=True, slots=True)
class SandboxDecision:
    sandbox: Sandbox
    action: Action
    reason: Reason
    # Container ids (any state) that still reference the sandbox (for `in-use`).
    used_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SandboxPlan:
    decisions: tuple[SandboxDecision, ...]

    @property
    def removals(self) -> tuple[SandboxDecision, ...]:
        return tuple(d for d in self.decisions if d.action is Action.REMOVE)


def pod_key(sandbox: Sandbox) -> tuple[str, str, str]:
    """The pod a sandbox belongs to: (namespace, name, uid)."""
    return (sandbox.namespace, sandbox.name, sandbox.uid)


def _newest_first(sandboxes: Iterable[Sandbox]) -> list[Sandbox]:
    return sorted(sandboxes, key=lambda s: (s.created, s.attempt, s.id), reverse=True)


def plan_sandboxes(
    sandboxes: Iterable[Sandbox],
    containers: Iterable[Container],
    settings: ContainerSettings,
    now: datetime,
) -> SandboxPlan:
    """Decide every sandbox's fate.

    Kept, in this order: `keep-label` (nodegc.io/keep=true); `ready` (its pause process runs);
    `in-use` while any container (any state) references it, since removing a sandbox removes its
    containers; `newest-of-pod` for the newest sandbox of each pod (namespace/name/uid), which a
    restarting pod still needs; `too-young` when created less than the containers' `minimum_age`
    ago. Every other sandbox is removed as `superseded`: not ready, empty, and replaced by a newer
    sandbox of the same pod.
    """
    members: dict[str, list[str]] = defaultdict(list)
    for c in containers:
        sandbox_id = c.labels.get(LABEL_SANDBOX_ID)
        if sandbox_id:
            members[sandbox_id].append(c.id)

    ordered = _newest_first(sandboxes)
    newest: dict[tuple[str, str, str], str] = {}
    for s in ordered:
        newest.setdefault(pod_key(s), s.id)

    decisions: list[SandboxDecision] = []
    for s in ordered:
        used_by: tuple[str, ...] = ()
        if keep_labelled(s.labels):
            action, reason = Action.KEEP, Reason.KEEP_LABEL
        elif s.ready:
            action, reason = Action.KEEP, Reason.READY
        elif members.get(s.id):
            action, reason, used_by = Action.KEEP, Reason.IN_USE, tuple(members[s.id])
        elif newest[pod_key(s)] == s.id:
            action, reason = Action.KEEP, Reason.NEWEST_OF_POD
        elif now - s.created < settings.minimum_age:
            action, reason = Action.KEEP, Reason.TOO_YOUNG
        else:
            action, reason = Action.REMOVE, Reason.SUPERSEDED
        decisions.append(SandboxDecision(s, action, reason, used_by))
    return SandboxPlan(tuple(decisions))
