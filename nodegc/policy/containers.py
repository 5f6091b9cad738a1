"""Container GC policy: which dead containers go, the kubelet's way (plus a maximum age).

Pure: a snapshot and the time in, decisions out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from operator import attrgetter

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
    ContainerState,
    Reason,
)
from nodegc.policy.labels import keep_labelled


def evict_unit(container: Container) -> str:
    """The group whose dead containers are capped together.

    (pod UID, container name) from the kubelet's labels; else, for compose, (project, service,
    container number) for a service's replicas (replica 2 of a service scaled to 3 is not a
    restart of replica 1: `compose start` brings each back) and (project, service, one-off) for
    the containers `compose run` makes; else the container's own name.
    """
    labels = container.labels
    if not labels:  # most of a busy node's containers on a plain host: one test, no lookups
        return f"name:{container.name}"
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


# The kubelet orders by creation time. Docker lists it to the second, so the time it stopped
# breaks ties (a pod's restarts follow one another), then the id, so the order is total.
_ORDER = attrgetter("created", "stopped_at", "id")
# The states the kubelet's container GC may collect: not running and not busy (a container
# being created, restarted, paused or removed is left alone). The rule's one home.
COLLECTABLE = frozenset({ContainerState.CREATED, ContainerState.EXITED, ContainerState.DEAD})
_DEAD = COLLECTABLE


def _newest_first(containers: Iterable[Container]) -> list[Container]:
    return sorted(containers, key=_ORDER, reverse=True)


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
    keep, remove, decision = Action.KEEP, Action.REMOVE, ContainerDecision

    ordered = _newest_first(containers)
    # now - stopped < minimum_age, and now - stopped > maximum_age, as comparisons of times
    # (exact: datetime arithmetic is in whole microseconds).
    young_after = _before(now, settings.minimum_age)
    old_before = _before(now, settings.maximum_age) if settings.maximum_age else None
    for c in ordered:
        unit = evict_unit(c)
        if keep_labelled(c.labels):
            decisions[c.id] = decision(c, unit, keep, Reason.KEEP_LABEL)
        elif c.state not in _DEAD:
            decisions[c.id] = decision(c, unit, keep, Reason.RUNNING)
        elif (stopped := c.stopped_at) > young_after:
            decisions[c.id] = decision(c, unit, keep, Reason.TOO_YOUNG)
        elif old_before is not None and stopped < old_before:
            decisions[c.id] = decision(c, unit, remove, Reason.AGE)
        else:
            units[unit].append(c)  # newest first, as `ordered` is

    if settings.max_per_pod_container >= 0:
        _trim_units(units, settings.max_per_pod_container, Reason.PER_UNIT_CAP, decisions)

    cap = settings.max_dead_containers
    if cap >= 0 and sum(map(len, units.values())) > cap:
        _global_cap(units, ordered, cap, decisions)

    for unit, members in units.items():
        for c in members:
            decisions[c.id] = decision(c, unit, keep, Reason.WITHIN_CAP)

    return ContainerPlan(tuple([decisions[c.id] for c in ordered]))


def _global_cap(
    units: dict[str, list[Container]],
    ordered: list[Container],
    cap: int,
    decisions: dict[str, ContainerDecision],
) -> None:
    """More than `cap` left: every unit trimmed to max(1, cap // units), then the globally
    oldest go until the total fits (`global-cap`)."""
    live_units = sum(1 for members in units.values() if members)
    _trim_units(units, max(1, cap // max(1, live_units)), Reason.GLOBAL_CAP, decisions)
    # What is left, in `ordered`'s order (every unit's members are in it): no second sort.
    left = {c.id for members in units.values() for c in members}
    doomed = {c.id for c in [c for c in ordered if c.id in left][cap:]}
    for unit, members in units.items():
        for c in members:
            if c.id in doomed:
                decisions[c.id] = ContainerDecision(c, unit, Action.REMOVE, Reason.GLOBAL_CAP)
        members[:] = [c for c in members if c.id not in doomed]


def _before(now: datetime, age: timedelta) -> datetime:
    """`now - age`; the earliest time there is when that is before year 1 (an age longer than
    the calendar: every container is younger)."""
    try:
        return now - age
    except OverflowError:
        return datetime.min.replace(tzinfo=now.tzinfo)


def _trim_units(
    units: dict[str, list[Container]],
    keep: int,
    reason: Reason,
    decisions: dict[str, ContainerDecision],
) -> None:
    """Remove for `reason` each unit's members beyond its newest `keep`."""
    remove = Action.REMOVE
    for unit, members in units.items():
        if len(members) > keep:
            for c in members[keep:]:
                decisions[c.id] = ContainerDecision(c, unit, remove, reason)
            del members[keep:]


def sizes_needed(
    containers: Iterable[Container], settings: ContainerSettings, *, under_pressure: bool
) -> bool:
    """Whether a cycle (and `report`) asks the engine for dead containers' writable-layer sizes:
    only under pressure, with `remove_under_disk_pressure`, and a dead container listed (the
    question is costly: dockerd sizes every container's writable layer to answer it)."""
    return (
        under_pressure
        and settings.remove_under_disk_pressure
        and any(c.state in _DEAD for c in containers)
    )


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
