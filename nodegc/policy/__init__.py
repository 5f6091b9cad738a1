"""The policy: pure functions from an observation to a plan. No I/O, no clock, no engine.

`plan(snapshot, history, images, containers, now)` decides containers first and images second,
so that an image whose last containers this cycle removes can go in the same cycle (dependents
before owners). Under disk pressure what the disk asks for is freed in this order: build cache
records, unused images, then dead containers the caps would keep (and the images they leave
unused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from nodegc.config import BuildCacheSettings, ContainerSettings, ImageSettings
from nodegc.model import (
    Action,
    BuildCachePlan,
    ContainerDecision,
    ContainerPlan,
    History,
    ImagePlan,
    Layer,
    Plan,
    Reason,
    Snapshot,
)
from nodegc.policy import targets
from nodegc.policy.build_cache import plan_build_cache, shared_layers, unshared_by
from nodegc.policy.containers import (
    evict_unit,
    plan_containers,
    under_pressure_order,
)
from nodegc.policy.filesystems import plan_filesystems
from nodegc.policy.images import (
    bytes_to_free,
    is_pinned,
    lru_key,
    plan_images,
    users_of,
)


def plan(
    snapshot: Snapshot,
    history: History,
    images: ImageSettings,
    containers: ContainerSettings,
    now: datetime,
    *,
    dependents_first: bool = True,
    build_cache: BuildCacheSettings | None = None,
    containers_under_pressure: bool = True,
) -> Plan:
    """The whole cycle's plan over one snapshot.

    With `dependents_first`, images count on this plan's container removals by the caps (the
    cycle removes those before images); without, every listed container keeps its image in use.
    Dead containers removed under disk pressure go after images, and the images they leave
    unused after them, in the same cycle: images count on them either way.
    `build_cache` None: build cache GC off. The build cache and writable-layer sizes are what
    `snapshot.disk_usage` holds (the cycle asks for them only when they can matter).
    `containers_under_pressure` False: plan no dead container for disk pressure (an image pass
    that runs before them).
    """
    container_plan = plan_containers(snapshot.containers, containers, now)
    filesystems = plan_filesystems(snapshot.measured, container_plan, images, containers)
    leaving = {d.container.id for d in container_plan.removals} if dependents_first else set()
    fs = snapshot.filesystem
    asked = targets.wanted(fs, images)
    wanted, inodes, pressure = asked.bytes, asked.inodes, bool(asked.trigger)
    records = snapshot.disk_usage.build_cache
    cache_plan = plan_build_cache(
        records,
        build_cache or BuildCacheSettings(enabled=False),
        now,
        bytes_wanted=wanted,
        inodes_wanted=bool(inodes),
        under_pressure=pressure,
    )
    held = shared_layers(records, snapshot.layers) if cache_plan.observed else {}
    image_plan = plan_images(
        fs,
        snapshot.images,
        snapshot.containers,
        history,
        images,
        now,
        layers=snapshot.layers,
        leaving_containers=leaving,
        freed_before=cache_plan.bytes_planned,
        other_holders=held,
    )
    if held and not image_plan.target_reachable:
        cache_plan = unshared_by(
            cache_plan,
            held,
            snapshot.layers,
            [d.image.id for d in image_plan.removals],
            wanted,
            cache_plan.bytes_planned + image_plan.bytes_planned,
        )
        image_plan = replace(image_plan, freed_before=cache_plan.bytes_planned)
    if (
        containers_under_pressure
        and containers.remove_under_disk_pressure
        and not image_plan.target_reachable
    ):
        container_plan, image_plan = _dead_containers_under_pressure(
            snapshot,
            history,
            images,
            now,
            container_plan,
            leaving,
            cache_plan,
            held,
        )
    return Plan(
        now=now,
        filesystem=snapshot.filesystem,
        containers=container_plan,
        images=image_plan,
        build_cache=cache_plan,
        filesystems=filesystems,
    )


def _dead_containers_under_pressure(
    snapshot: Snapshot,
    history: History,
    images: ImageSettings,
    now: datetime,
    container_plan: ContainerPlan,
    leaving: set[str],
    cache_plan: BuildCachePlan,
    held: Mapping[str, Sequence[Layer]],
) -> tuple[ContainerPlan, ImagePlan]:
    """When build cache and unused images cannot reach the target: dead containers the caps keep
    go too (`disk-pressure`), longest stopped first, each with its writable layer (0 where the
    runtime cannot tell: the cycle's closed loop measures), and every image one of them leaves
    unused (an estimate here: the image walk of the final plan decides), until the target is
    covered. The images are planned again with those containers leaving."""
    sizes = snapshot.disk_usage.container_sizes or {}
    first = plan_images(
        snapshot.filesystem,
        snapshot.images,
        snapshot.containers,
        history,
        images,
        now,
        layers=snapshot.layers,
        leaving_containers=leaving,
        freed_before=cache_plan.bytes_planned,
        other_holders=held,
    )
    freed = cache_plan.bytes_planned + first.bytes_planned
    kept_images = {
        d.image.id: d.unique_size_bytes
        for d in first.decisions
        if d.action is Action.KEEP and d.reason is Reason.IN_USE
    }
    users = {image_id: set(ids) for image_id, ids in users_of(snapshot.containers, leaving).items()}
    chosen: dict[str, ContainerDecision] = {}
    for d in under_pressure_order(container_plan):
        # Inodes: the runtime gives no per-container counts, so under inode pressure every
        # candidate is planned (the closed loop stops at the inode target).
        if freed >= first.bytes_to_free and not first.inodes_to_free:
            break
        chosen[d.container.id] = replace(d, action=Action.REMOVE, reason=Reason.DISK_PRESSURE)
        freed += sizes.get(d.container.id, 0)
        holders = users.get(d.container.image_id)
        if holders is not None:
            holders.discard(d.container.id)
            if not holders and d.container.image_id in kept_images:
                freed += kept_images.pop(d.container.image_id)
    if not chosen:
        return container_plan, first
    decisions = tuple(chosen.get(d.container.id, d) for d in container_plan.decisions)
    pressure_plan = ContainerPlan(decisions)
    containers_freed = sum(sizes.get(c, 0) for c in chosen)
    final = plan_images(
        snapshot.filesystem,
        snapshot.images,
        snapshot.containers,
        history,
        images,
        now,
        layers=snapshot.layers,
        leaving_containers=leaving | set(chosen),
        freed_before=cache_plan.bytes_planned + containers_freed,
        other_holders=held,
    )
    return pressure_plan, final


__all__ = [
    "bytes_to_free",
    "evict_unit",
    "is_pinned",
    "lru_key",
    "plan",
    "plan_build_cache",
    "plan_containers",
    "plan_images",
]
