"""The policy: pure functions from an observation to a plan. No I/O, no clock, no engine.

`plan(snapshot, history, images, containers, now)` decides containers first and images second,
so that an image whose last containers this cycle removes can go in the same cycle (dependents
before owners). Under disk pressure what the disk asks for is freed in the order of the pressure
ladder (`policy.ladder`): build cache records, unused images, the records they leave unshared,
then dead containers the caps would keep (and the images they leave unused).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from nodegc.policy.build_cache import plan_build_cache, shared_layers, unshared_by
from nodegc.policy.containers import (
    evict_unit,
    plan_containers,
    under_pressure_order,
)
from nodegc.policy.filesystems import plan_filesystems
from nodegc.policy.images import (
    Counted,
    bytes_to_free,
    is_pinned,
    lru_key,
    plan_images,
    users_of,
)
from nodegc.policy.ladder import Goal, Step, pressure_ladder


@dataclass(frozen=True, slots=True)
class Scope:
    """What a plan may count on. `dependents_first`: images count on this plan's container
    removals by the caps (the cycle removes those before images); without, every listed
    container keeps its image in use. `containers_under_pressure` False: plan no dead container
    for disk pressure (an image pass that runs before them)."""

    dependents_first: bool = True
    containers_under_pressure: bool = True


def plan(
    snapshot: Snapshot,
    history: History,
    images: ImageSettings,
    containers: ContainerSettings,
    now: datetime,
    *,
    build_cache: BuildCacheSettings | None = None,
    scope: Scope = Scope(),
) -> Plan:
    """The whole cycle's plan over one snapshot: containers by the caps, then, under disk
    pressure, the pressure ladder's steps previewed in its order (`policy.ladder`), each while
    the plan so far falls short of the goal. Dead containers removed under disk pressure go
    after images, and the images they leave unused after them, in the same cycle: images count
    on them either way. `build_cache` None: build cache GC off. The build cache and
    writable-layer sizes are what `snapshot.disk_usage` holds (the cycle asks for them only when
    they can matter)."""
    container_plan = plan_containers(snapshot.containers, containers, now)
    filesystems = plan_filesystems(snapshot.measured, container_plan, images, containers)
    ladder = pressure_ladder(
        snapshot.filesystem,
        images,
        dead_containers=scope.containers_under_pressure and containers.remove_under_disk_pressure,
    )
    leaving = {d.container.id for d in container_plan.removals} if scope.dependents_first else set()
    p = _Preview(snapshot, history, images, now, ladder.goal, container_plan, frozenset(leaving))
    p.cache_settings = build_cache or BuildCacheSettings(enabled=False)
    removed: set[Step] = set()
    for rung in ladder.rungs:
        if not ladder.starts(rung, removed=removed, shared=bool(p.held)):
            continue
        if rung.while_short and p.reachable():
            break
        if _PREVIEW[rung.step](p):
            removed.add(rung.step)
    assert p.image_plan is not None  # the images step never waits for the disk
    return Plan(
        now=now,
        filesystem=snapshot.filesystem,
        containers=p.container_plan,
        images=p.image_plan,
        build_cache=p.cache_plan,
        filesystems=filesystems,
    )


@dataclass
class _Preview:
    """A plan being made, step by step of the ladder."""

    snapshot: Snapshot
    history: History
    images: ImageSettings
    now: datetime
    goal: Goal
    container_plan: ContainerPlan
    leaving: frozenset[str]
    cache_settings: BuildCacheSettings = field(
        default_factory=lambda: BuildCacheSettings(enabled=False)
    )
    cache_plan: BuildCachePlan = field(default_factory=lambda: BuildCachePlan(observed=False))
    held: Mapping[str, Sequence[Layer]] = field(default_factory=dict)
    image_plan: ImagePlan | None = None

    def reachable(self) -> bool:
        """Whether the plan so far covers what the disk asks for."""
        return self.image_plan is not None and self.image_plan.target_reachable

    def plan_images(self, leaving: Collection[str], freed_before: int) -> ImagePlan:
        s = self.snapshot
        counted = Counted(s.layers, leaving, freed_before, self.held)
        return plan_images(
            s.filesystem,
            s.images,
            s.containers,
            self.history,
            self.images,
            self.now,
            counted=counted,
        )


def _build_cache(p: _Preview) -> bool:
    """Build cache records, least recently used first (`policy.build_cache`)."""
    records = p.snapshot.disk_usage.build_cache
    p.cache_plan = plan_build_cache(
        records,
        p.cache_settings,
        p.now,
        bytes_wanted=p.goal.bytes,
        inodes_wanted=bool(p.goal.inodes),
        under_pressure=bool(p.goal.trigger),
    )
    p.held = shared_layers(records, p.snapshot.layers) if p.cache_plan.observed else {}
    return bool(p.cache_plan.removals)


def _images(p: _Preview) -> bool:
    """Unused images, counting on what the build cache frees and the layers shared records
    hold."""
    p.image_plan = p.plan_images(p.leaving, p.cache_plan.bytes_planned)
    return bool(p.image_plan.removals)


def _unshared_build_cache(p: _Preview) -> bool:
    """The shared records the planned image removals leave unshared (`unshared_by`)."""
    assert p.image_plan is not None
    before = len(p.cache_plan.removals)
    p.cache_plan = unshared_by(
        p.cache_plan,
        p.held,
        p.snapshot.layers,
        [d.image.id for d in p.image_plan.removals],
        p.goal.bytes,
        p.cache_plan.bytes_planned + p.image_plan.bytes_planned,
    )
    p.image_plan = replace(p.image_plan, freed_before=p.cache_plan.bytes_planned)
    return len(p.cache_plan.removals) > before


def _dead_containers(p: _Preview) -> bool:
    """Dead containers under pressure and, planned with them, the images they leave
    (`_dead_containers_under_pressure`)."""
    p.container_plan, p.image_plan, chosen = _dead_containers_under_pressure(p)
    return chosen


def _planned_with_the_containers(_p: _Preview) -> bool:
    """The images the containers leave are planned with them; the records those images leave
    unshared are the walk's (the build cache is listed again after them)."""
    return False


_PREVIEW: dict[Step, Callable[[_Preview], bool]] = {
    Step.BUILD_CACHE: _build_cache,
    Step.IMAGES: _images,
    Step.UNSHARED_BUILD_CACHE: _unshared_build_cache,
    Step.DEAD_CONTAINERS: _dead_containers,
    Step.IMAGES_LEFT: _planned_with_the_containers,
    Step.BUILD_CACHE_LEFT: _planned_with_the_containers,
}


def _dead_containers_under_pressure(p: _Preview) -> tuple[ContainerPlan, ImagePlan, bool]:
    """When build cache and unused images cannot reach the target: dead containers the caps keep
    go too (`disk-pressure`), longest stopped first, each with its writable layer (0 where the
    runtime cannot tell: the cycle's closed loop measures), and every image one of them leaves
    unused (an estimate here: the image walk of the final plan decides), until the target is
    covered. The images are planned again with those containers leaving."""
    sizes = p.snapshot.disk_usage.container_sizes or {}
    first = p.plan_images(p.leaving, p.cache_plan.bytes_planned)
    chosen = _choose_containers(p, first, sizes)
    if not chosen:
        return p.container_plan, first, False
    decisions = tuple(chosen.get(d.container.id, d) for d in p.container_plan.decisions)
    containers_freed = sum(sizes.get(c, 0) for c in chosen)
    final = p.plan_images(p.leaving | set(chosen), p.cache_plan.bytes_planned + containers_freed)
    return ContainerPlan(decisions), final, True


def _choose_containers(
    p: _Preview, first: ImagePlan, sizes: Mapping[str, int]
) -> dict[str, ContainerDecision]:
    """The dead containers under pressure, longest stopped first, until what they free (with the
    images they leave unused) covers what `first` still falls short of."""
    freed = p.cache_plan.bytes_planned + first.bytes_planned
    kept_images = {
        d.image.id: d.unique_size_bytes
        for d in first.decisions
        if d.action is Action.KEEP and d.reason is Reason.IN_USE
    }
    users = {i: set(ids) for i, ids in users_of(p.snapshot.containers, p.leaving).items()}
    chosen: dict[str, ContainerDecision] = {}
    for d in under_pressure_order(p.container_plan):
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
    return chosen


__all__ = [
    "Counted",
    "Scope",
    "bytes_to_free",
    "evict_unit",
    "is_pinned",
    "lru_key",
    "plan",
    "plan_build_cache",
    "plan_containers",
    "plan_images",
]
