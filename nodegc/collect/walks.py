"""The collector's walks under pressure: the policy's pressure ladder (`policy.ladder`) carried
out step by step (build cache, images, the records they leave unshared, dead containers, the
images and records they leave), each through the closed loop (`collect.relief`), and dead
containers on filesystems without images. No rule of its own: the order, when a step starts and
where it stops are the ladder's. A mixin of `collect.cycle.Collector`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from nodegc.collect import intents
from nodegc.collect.build_cache import collect_build_cache
from nodegc.collect.execute import Either
from nodegc.collect.relief import (
    SETTLE_FINAL_QUIET_SECONDS,
    SETTLE_QUIET_SECONDS,
    Candidate,
    Loop,
    Settle,
    relieve,
    settle_within,
)
from nodegc.collect.report import CycleReport
from nodegc.model import (
    Action,
    BuildCachePlan,
    ContainerDecision,
    DiskUsage,
    FilesystemStats,
    ImageDecision,
    ImagePlan,
    Layer,
    Outcome,
    Plan,
    RemovalResult,
    Snapshot,
)
from nodegc.policy.build_cache import shared_layers
from nodegc.policy.containers import pressure_removals
from nodegc.policy.filesystems import filesystem_target_met as met_for
from nodegc.policy.filesystems import pressured_elsewhere
from nodegc.policy.images import image_holdings, target_met
from nodegc.policy.ladder import (
    Goal,
    Ladder,
    Step,
    loop_may_take,
    pressure_ladder,
    whatever_the_disk,
)
from nodegc.policy.space import Ledger

log = logging.getLogger(__name__)


class Walking:
    """Methods of `Collector` (`collect.cycle`)."""

    def _relieve_other_filesystems(self, report: CycleReport) -> None:
        """Filesystems without images under pressure (e.g. `DockerRootDir` holding logs and
        volumes beside the containerd image store): dead containers go there, longest stopped
        first, until its low threshold (`policy.filesystems`). Images are never removed for it."""
        if not pressured_elsewhere(report.plan.filesystems):
            return
        snapshot = self.observe()
        for fp in pressured_elsewhere(self.plan(snapshot).filesystems):
            log.info(
                "filesystem without images above its high threshold: removing dead containers",
                extra={"path": fp.filesystem.path, "usage_percent": fp.filesystem.usage_percent},
            )
            done = {r.id for r in report.container_results}
            decisions = [d for d in fp.containers if d.container.id not in done]
            results = self._containers_under_pressure(
                snapshot,
                decisions,
                partial(met_for, plan=fp),
                fp.filesystem.path,
            )
            report.container_results.extend(results)
            self._stop_if_engine_lost(report)

    # -- under pressure: the policy's ladder (build cache, images, dead containers) -----------
    def _free_disk(self, report: CycleReport, current: Snapshot | None) -> None:
        try:
            self._climb(report, current)
        finally:  # where image GC left the disk, whichever step it stopped at
            self._ladder = None
            if report.images_before is not None:
                report.images_after = self.measure(report.images_before.path)
            if self._engine_lost is None and not self.stopping.is_set():
                # The shown plan counted on dead containers going under pressure; an image it
                # planned that the later passes never needed was left out, not lost.
                tried = {r.id for r in report.image_results}
                report.images_not_needed |= {
                    d.image.id for d in report.image_plan.removals if d.image.id not in tried
                }

    def _climb(self, report: CycleReport, current: Snapshot | None) -> None:
        """Image GC: the policy's pressure ladder (`policy.ladder.pressure_ladder`) carried out
        step by step, each through the closed loop towards the ladder's goal. A step starts as
        the ladder says (`Ladder.starts`); one that runs only while the disk is short ends the
        climb when a fresh measurement meets the goal."""
        snapshot = current if current is not None else self.observe()
        path = snapshot.filesystem.path
        plan = self.plan(snapshot, projected=False)
        ladder = pressure_ladder(
            snapshot.filesystem,
            self.settings.images,
            projected=self.projected,
            dead_containers=self.settings.containers.remove_under_disk_pressure,
        )
        if plan.images.trigger != ladder.goal.trigger:  # the lookahead's `projected`
            plan = replace(plan, images=replace(plan.images, trigger=ladder.goal.trigger))
        report.image_plan = plan.images
        report.images_before = snapshot.filesystem
        report.build_cache_plan = plan.build_cache
        self._ladder = ladder  # what follows: to the goal, with the ladder's settings
        climb = _Climb(report, ladder, path, plan, snapshot)
        shared = any(d.record.shared for d in plan.build_cache.decisions)
        for rung in ladder.rungs:
            if not ladder.starts(rung, removed=climb.removed, shared=shared):
                continue
            if rung.while_short and ladder.goal.met(self.measure(path)):
                return
            report.steps.append(rung.step)
            if self._step(rung.step, climb):
                climb.removed.add(rung.step)

    def _step(self, step: Step, climb: _Climb) -> bool:
        """Carry out one step of the ladder; whether it removed anything."""
        report, goal, path = climb.report, climb.ladder.goal, climb.path
        if step is Step.BUILD_CACHE:
            removed = self._build_cache_pass(report, climb.plan.build_cache, goal, path)
            if removed:
                climb.snapshot = _after_cache_removals(climb.snapshot, removed, self.measure(path))
            return bool(removed)
        if step in (Step.IMAGES, Step.IMAGES_LEFT):
            before = len(report.image_results)
            self._image_gc(report, climb.snapshot if step is Step.IMAGES else None)
            return _any_removed(report.image_results[before:])
        if step is Step.DEAD_CONTAINERS:
            snapshot = self.observe()
            pressure = pressure_removals(self.plan(snapshot).containers)
            results = self._containers_under_pressure(snapshot, pressure, goal.met, path)
            report.container_results.extend(results)
            self._stop_if_engine_lost(report)
            return _any_removed(results)
        # The records removed images left unshared: the build cache listed again.
        cache = self.plan(self.observe()).build_cache
        return bool(self._build_cache_pass(report, cache, goal, path))

    def _containers_under_pressure(
        self,
        snapshot: Snapshot,
        decisions: Sequence[ContainerDecision],
        met: Callable[[FilesystemStats], bool],
        path: str,
    ) -> list[RemovalResult]:
        """Dead containers for disk pressure, longest stopped first, through the closed loop:
        each frees its writable layer (as the engine sized it; unsized ones go one at a time);
        the walk stops at the target."""
        sizes = snapshot.disk_usage.container_sizes or {}
        ledger = Ledger(
            {
                f"container:{d.container.id}": (
                    Layer(f"rw:{d.container.id}", sizes.get(d.container.id), None),
                )
                for d in decisions
            }
        )

        def remove(c: Candidate, _measured: FilesystemStats) -> RemovalResult:
            result = self._remove_one(c.item)
            return result if result is not None else self._not_started(c.item)

        now = self.clock()
        batch = [intents.container_intent(d.container, str(d.reason), now) for d in decisions]
        self._walks = intents.Walks(self.runtime, self.journal, batch)
        try:
            relief = relieve(
                [Candidate(key=f"container:{d.container.id}", item=d) for d in decisions],
                ledger=ledger,
                measured=self.measure(path),
                target_met=met,
                loop=self._loop(path),
                remove=remove,
                skip=remove,  # no prerequisites: never called
            )
        finally:
            self._walks.close()
        if self._engine_lost is not None:
            done = {r.id for r in relief.results}
            self._not_attempted += sum(1 for d in decisions if d.container.id not in done)
        return relief.results

    def _build_cache_pass(
        self, report: CycleReport, plan: BuildCachePlan, goal: Goal, path: str
    ) -> set[str]:
        """The build cache walk through the closed loop, towards the ladder's `goal`; the ids
        of the records it removed."""
        results, not_needed = collect_build_cache(
            self.runtime,
            plan,
            goal=goal,
            loop=self._loop(path),
            measured=self.measure(path),
            already=[r.id for r in report.build_cache_results],
        )
        report.build_cache_results += results
        tried = {r.id for r in report.build_cache_results}
        report.build_cache_not_needed = (report.build_cache_not_needed | not_needed) - tried
        self._stop_if_engine_lost(report)
        return {r.id for r in results if r.outcome is Outcome.REMOVED}

    def _image_gc(self, report: CycleReport, current: Snapshot | None) -> None:
        """Image GC on what is there now (a fresh observation after container GC, or the cycle's
        snapshot when no container was touched), as a closed loop (`collect.relief`): the plan's
        removals in its order with the disk measured after each one; planned space removals the
        measured disk no longer needs are left out, and when the plan does not get there (the
        engine refused one, the disk took back less) the loop goes on down the same order."""
        snapshot = current if current is not None else self.observe()
        plan = self.plan(snapshot, projected=False, containers_under_pressure=False).images
        # The cycle's image plan (what the report shows) is the one `_free_disk` made before
        # the build cache walk; this pass works from its own, on the disk as it is now.
        shown, shown_before = report.image_plan, report.images_before
        report.image_plan = plan
        report.images_before = snapshot.filesystem
        candidates = _image_candidates(plan)
        path = snapshot.filesystem.path
        goal = Goal.of(plan)

        def remove(c: Candidate, measured: FilesystemStats) -> RemovalResult:
            d: ImageDecision = c.item
            if d.action is Action.KEEP:  # past the plan: the disk is not there yet
                d = replace(d, action=Action.REMOVE, reason=goal.past_plan_reason(measured))
            result = self._remove_one(d)
            if result is None:  # the engine was found lost as this one was about to start
                return self._not_started(d)
            return result

        now = self.clock()
        batch = [intents.image_intent(c.item.image, str(c.item.reason), now) for c in candidates]
        self._walks = intents.Walks(self.runtime, self.journal, batch)
        try:
            relief = relieve(
                candidates,
                ledger=_image_ledger(snapshot),
                measured=snapshot.filesystem,
                target_met=goal.met,
                loop=replace(self._loop(path), under_pressure=goal.under_pressure),
                remove=remove,
                skip=lambda c, child: self._child_stays(c.item, child),
            )
        finally:
            self._walks.close()
        report.image_results = report.image_results + relief.results
        report.images_not_needed |= relief.not_needed
        if self._engine_lost is not None:
            done = {r.id for r in relief.results}
            self._not_attempted += sum(1 for c in candidates if c.planned and c.key not in done)
            self._stop_if_engine_lost(report)
        self._after_images(report, snapshot, plan, relief.results)
        report.image_plan = shown
        report.images_before = shown_before or snapshot.filesystem

    def _after_images(
        self, report: CycleReport, snapshot: Snapshot, plan: ImagePlan, results: list[RemovalResult]
    ) -> None:
        """Measure where the image pass left the disk (settled), learn what a listed byte costs,
        and say so when it ran out of candidates short of the goal."""
        path = snapshot.filesystem.path
        settle = self._settle(path) if results else None
        after = settle(lambda _: False, SETTLE_QUIET_SECONDS) if settle else self.measure(path)
        if settle and plan.under_pressure and not target_met(after, plan):  # GC slow to start
            after = settle(lambda fs: target_met(fs, plan), SETTLE_FINAL_QUIET_SECONDS)
        report.images_after = after
        came_back = report.images_after.available_bytes - snapshot.filesystem.available_bytes
        self.cost.learn(results, came_back)
        report.images_freed = (report.images_freed or 0) + max(0, came_back)
        if plan.under_pressure and not target_met(report.images_after, plan):
            log.info(
                "image GC ran out of candidates above the low threshold",
                extra={
                    "path": path,
                    "usage_percent": report.images_after.usage_percent,
                    "inode_usage_percent": report.images_after.inode_usage_percent,
                },
            )

    def _loop(self, path: str) -> Loop:
        """How a closed loop on `path` measures, stops (asked to, or the engine lost) and tells."""
        return Loop(
            measure=lambda: self.measure(path),
            stopping=Either(self.stopping, self._lost),
            workers=self.settings.runtime.max_concurrent_removals,
            listeners=self.listeners,
            settle=self._settle(path),
        )

    def _settle(self, path: str) -> Settle | None:
        """Where the runtime frees after its removals return (its data, `frees_asynchronously`):
        measuring `path` until the disk is steady."""
        if not self.runtime.frees_asynchronously:
            return None
        return settle_within(lambda: self.measure(path))


@dataclass
class _Climb:
    """One climb of the ladder: the report it fills, the ladder, the image filesystem's path,
    the first plan, the snapshot the image step plans on, and the steps that removed something."""

    report: CycleReport
    ladder: Ladder
    path: str
    plan: Plan
    snapshot: Snapshot
    removed: set[Step] = field(default_factory=set)


def _any_removed(results: Sequence[RemovalResult]) -> bool:
    return any(r.outcome is Outcome.REMOVED for r in results)


def _image_candidates(plan: ImagePlan) -> list[Candidate]:
    """The image pass's candidates in the plan's order: its removals (`age` and `superseded`
    whatever the disk), then those it kept `target-reached`; an image's children first."""
    children: dict[str, list[str]] = {}
    for d in plan.decisions:
        if d.image.parent_id:
            children.setdefault(d.image.parent_id, []).append(d.image.id)
    return [
        Candidate(
            key=d.image.id,
            item=d,
            planned=d.action is Action.REMOVE,
            unconditional=whatever_the_disk(d.reason),
            after=tuple(children.get(d.image.id, ())),
        )
        for d in plan.decisions
        if loop_may_take(d.action, d.reason)
    ]


def _image_ledger(snapshot: Snapshot) -> Ledger:
    """What each image's removal frees: its layers, less those another image or a shared build
    cache record holds."""
    ledger = Ledger(image_holdings(snapshot.images, snapshot.layers))
    records = snapshot.disk_usage.build_cache
    for holder, layers in shared_layers(records, snapshot.layers).items():
        ledger.add(holder, layers)
    return ledger


def _after_cache_removals(snapshot: Snapshot, removed: set[str], fs: FilesystemStats) -> Snapshot:
    """The snapshot as it stands after the build cache walk: the records removed are gone and the
    filesystem is measured again (the images and containers did not change: no new listing)."""
    records = snapshot.disk_usage.build_cache
    remaining = None if records is None else tuple(r for r in records if r.id not in removed)
    usage = DiskUsage(build_cache=remaining, container_sizes=snapshot.disk_usage.container_sizes)
    return replace(snapshot, filesystem=fs, disk_usage=usage)
