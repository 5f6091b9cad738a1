"""The policy: pure functions from an observation to a plan. No I/O, no clock, no engine.

`plan(snapshot, history, images, containers, now)` decides containers first and images second,
so that an image whose last containers this cycle removes can go in the same cycle (dependents
before owners).
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime

from nodegc.config import ContainerSettings, ImageSettings
from nodegc.model import History, Plan, Snapshot
from nodegc.policy.containers import evict_unit, plan_containers
from nodegc.policy.images import bytes_to_free, is_pinned, lru_key, plan_images


def plan(
    snapshot: Snapshot,
    history: History,
    images: ImageSettings,
    containers: ContainerSettings,
    now: datetime,
    *,
    avoid_images: Collection[str] = (),
    dependents_first: bool = True,
) -> Plan:
    """The whole cycle's plan over one snapshot.

    With `dependents_first`, images count on this plan's container removals (the cycle removes
    containers before images); without, every listed container keeps its image in use.
    """
    with _cycle_collector_paused():
        container_plan = plan_containers(snapshot.containers, containers, now)
        leaving = {d.container.id for d in container_plan.removals} if dependents_first else set()
        image_plan = plan_images(
            snapshot.filesystem,
            snapshot.images,
            snapshot.containers,
            history,
            images,
            now,
            layers=snapshot.layers,
            leaving_containers=leaving,
            avoid=avoid_images,
        )
    return Plan(
        now=now, filesystem=snapshot.filesystem, containers=container_plan, images=image_plan
    )


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while planning: the plan allocates a few objects per
    container and image and makes no cycles, and each collection the allocations set off would
    walk the whole (large) snapshot again; on 100k containers that was a third of the plan time.
    Restored afterwards; nothing is left uncollected."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


__all__ = [
    "bytes_to_free",
    "evict_unit",
    "is_pinned",
    "lru_key",
    "plan",
    "plan_containers",
    "plan_images",
]
