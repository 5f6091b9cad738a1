"""Container GC policy: which dead containers go, the kubelet's way (plus a maximum age).

Pure: a snapshot and the time in, decisions out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from nodegc.config import ContainerSettings
from nodegc.model import (
    LABEL_COMPOSE_NUMBER,
    LABEL_COMPOSE_ONEOFF,
    LABEL_COMPOSE_PROJECT,
    LABEL_COMPOSE_SERVICE,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    Action,
    Container,
    ContainerDecision,
    ContainerPlan,
    Reason,
    keep_labelled,
)


def evict_unit(container: Container) -> str:
    """The group whose dead containers are capped together.

    (pod UID, container name) from the kubelet's labels; else, for compose, (project, service,
    container number) for a service's replicas (replica 2 of a service scaled to 3 is not a
    restart of replica 1: `compose start` brings each back) and (project, service, one-off) for
    the containers `compose run` makes; else the container's own name.
    """
    labels = container.labels
    uid, name = labels.get(LABEL_POD_UID), labels.get(LABEL_CONTAINER_NAME)
    if uid and name:
        return f"pod:{uid}/{name}"
    project, service = labels.get(LABEL_COMPOSE_PROJECT), labels.get(LABEL_COMPOSE_SERVICE)
    if project and service:
        if labels.get(LABEL_COMPOSE_ONEOFF, "").lower() == "true":
            return f"compose:{project}/{service}/run"
        number = labels.get(LABEL_COMPOSE_NUMBER)
        return f"compose:{project}/{service}/{number}" if number else f"compose:{project}/{service}"
    return f"name:{container.name}"


def _newest_first(containers: Iterable[Container]) -> list[Container]:
    # The kubelet orders by creation time. Docker lists it to the second, so the time it stopped
    # breaks ties (a pod's restarts follow one another), then the id, so the order is total.
    return sorted(containers, key=lambda c: (c.created, c.stopped_at, c.id), reverse=True)


def plan_containers(
    containers: Iterable[Container], settings: ContainerSettings, now: datetime
) -> ContainerPlan:
    """Decide every container's fate.

    1. kept: labelled nodegc.io/keep=true; not dead (running, paused, restarting, removing);
       stopped less than `minimum_age` ago (these do not count against the caps, as in the kubelet).
    2. removed for `age`: stopped longer ago than `maximum_age` (when set).
    3. removed for `per-unit-cap`: beyond the newest `max_per_pod_container` of each evict unit.
    4. removed for `global-cap`: when more than `max_dead_containers` remain, every unit is trimmed
       to max(1, max_dead_containers // units), then the globally oldest go until the total fits.
    """
    decisions: dict[str, ContainerDecision] = {}
    units: dict[str, list[Container]] = defaultdict(list)

    def decide(c: Container, unit: str, action: Action, reason: Reason) -> None:
        decisions[c.id] = ContainerDecision(c, unit, action, reason)

    ordered = _newest_first(containers)
    for c in ordered:
        unit = evict_unit(c)
        if keep_labelled(c.labels):
            decide(c, unit, Action.KEEP, Reason.KEEP_LABEL)
        elif not c.state.is_dead:
            decide(c, unit, Action.KEEP, Reason.RUNNING)
        elif now - c.stopped_at < settings.minimum_age:
            decide(c, unit, Action.KEEP, Reason.TOO_YOUNG)
        elif settings.maximum_age and now - c.stopped_at > settings.maximum_age:
            decide(c, unit, Action.REMOVE, Reason.AGE)
        else:
            units[unit].append(c)  # newest first, as `ordered` is

    if settings.max_per_pod_container >= 0:
        _trim_units(units, settings.max_per_pod_container, Reason.PER_UNIT_CAP, decide)

    cap = settings.max_dead_containers
    if cap >= 0 and sum(map(len, units.values())) > cap:
        live_units = sum(1 for members in units.values() if members)
        _trim_units(units, max(1, cap // max(1, live_units)), Reason.GLOBAL_CAP, decide)
        remaining = _newest_first(c for members in units.values() for c in members)
        doomed = {c.id for c in remaining[cap:]}
        for unit, members in units.items():
            for c in members:
                if c.id in doomed:
                    decide(c, unit, Action.REMOVE, Reason.GLOBAL_CAP)
            members[:] = [c for c in members if c.id not in doomed]

    for unit, members in units.items():
        for c in members:
            decide(c, unit, Action.KEEP, Reason.WITHIN_CAP)

    return ContainerPlan(tuple(decisions[c.id] for c in ordered))


Decide = Callable[[Container, str, Action, Reason], None]


def _trim_units(
    units: dict[str, list[Container]], keep: int, reason: Reason, decide: Decide
) -> None:
    for unit, members in units.items():
        for c in members[keep:]:
            decide(c, unit, Action.REMOVE, reason)
        del members[keep:]


def under_pressure_order(plan: ContainerPlan) -> list[ContainerDecision]:
    """The dead containers the caps keep (`within-cap`), longest stopped first (ties by id): those
    that may go under disk pressure. Never one labelled nodegc.io/keep=true, one stopped less
    than `minimum_age` ago, or one not dead: those have other reasons."""
    kept = [d for d in plan.decisions if d.reason is Reason.WITHIN_CAP]
    return sorted(kept, key=lambda d: (d.container.stopped_at, d.container.id))


def pressure_removals(plan: ContainerPlan) -> list[ContainerDecision]:
    """The plan's removals for disk pressure in the order they go: longest stopped first (ties
    by id), whatever the order of the listing the plan keeps (runtimes list newest first)."""
    chosen = [d for d in plan.removals if d.reason is Reason.DISK_PRESSURE]
    return sorted(chosen, key=lambda d: (d.container.stopped_at, d.container.id))
