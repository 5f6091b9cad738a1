"""One garbage-collection cycle: observe, plan, act, report.

The collector holds no rule of its own: what goes is the policy's answer; this module only runs
the steps in order, carries out removals through the runtime, and records what happened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from nodegc import policy
from nodegc.clock import Clock, utcnow
from nodegc.collect import intents
from nodegc.collect.build_cache import collect_build_cache
from nodegc.collect.cost import LayerCost
from nodegc.collect.learn import learn_layers
from nodegc.collect.observe import Measure, check_targets, measure, remeasure, take_snapshot
from nodegc.collect.pause import cycle_collector_paused
from nodegc.collect.rebuild import rebuild_history
from nodegc.collect.relief import Candidate, Loop, Settle, relieve, settled
from nodegc.collect.removal import ResultListener, carry_out, log_result, tell
from nodegc.collect.sandboxes import collect_sandboxes
from nodegc.config import ImageSettings, Settings
from nodegc.model import (
    Action,
    BuildCachePlan,
    ContainerDecision,
    DiskUsage,
    FilesystemPlan,
    FilesystemStats,
    History,
    ImageDecision,
    ImagePlan,
    Layer,
    Outcome,
    Plan,
    Reason,
    RemovalResult,
    Snapshot,
    short_id,
)
from nodegc.policy import targets
from nodegc.policy.build_cache import needs_listing, shared_layers
from nodegc.policy.containers import pressure_removals
from nodegc.policy.filesystems import filesystem_target_met as met_for
from nodegc.policy.filesystems import pressured_elsewhere, short_of_target
from nodegc.policy.finish_times import finish_times_needed, with_finish_times
from nodegc.policy.history import observe, record_events
from nodegc.policy.images import image_holdings, target_met
from nodegc.policy.ladder import Goal, Ladder, Step, plan_settings, pressure_ladder
from nodegc.policy.space import Ledger, store_costs
from nodegc.runtime import Runtime, RuntimeError_, RuntimeUnavailable, connect
from nodegc.state.audit import audit_path, read_audit
from nodegc.state.journal import Intent
from nodegc.state.store import StateDir, StateError

log = logging.getLogger(__name__)


# The detail of an audit line written at replay for a removal an interrupted run carried out.
FINISHED_BEFORE_A_KILL = (
    "gone when nodegc started again: an earlier run was removing it when it was interrupted, "
    "before it could record it"
)
# ... and for one found gone that nodegc had not asked the engine to delete (outcome `gone`).
GONE_BY_SOMEONE_ELSE = (
    "gone when nodegc started again: removed by someone else (an earlier run planned it but "
    "had not asked the engine to delete it when it was interrupted)"
)
# Finish times asked for per image per round (the adapters' request pool), and the rounds after
# which whatever is still wanted is asked for at once.
FINISH_TIME_BATCH = 8
FINISH_TIME_ROUNDS = 8


@dataclass
class CycleReport:
    """What one cycle did."""

    dry_run: bool
    plan: Plan  # the plan the cycle started from (its container part is what was carried out)
    image_plan: ImagePlan  # the image plan carried out (made after container GC, on a fresh look)
    filesystem_before: FilesystemStats
    filesystem_after: FilesystemStats | None = None
    container_results: list[RemovalResult] = field(default_factory=list)
    image_results: list[RemovalResult] = field(default_factory=list)
    ran_images: bool = True
    # The build cache plan carried out (made with the image plan), and what its walk did.
    build_cache_plan: BuildCachePlan = field(default_factory=lambda: BuildCachePlan(False))
    build_cache_results: list[RemovalResult] = field(default_factory=list)
    # Measured around the image removals alone (the build cache's and dead containers' steps of
    # the same image GC are not counted in it); None: no image step ran.
    images_freed: int | None = None
    # The image filesystem as measured when image GC was planned and when its loop stopped.
    images_before: FilesystemStats | None = None
    images_after: FilesystemStats | None = None
    # Every filesystem measured after the cycle (roles kept); empty: not measured (dry run).
    filesystems_after: tuple[FilesystemStats, ...] = ()
    # Planned removals left out because the measured disk had reached the target.
    images_not_needed: set[str] = field(default_factory=set)
    build_cache_not_needed: set[str] = field(default_factory=set)
    # The steps of the policy's ladder (`policy.ladder`) the cycle carried out, in order.
    steps: list[Step] = field(default_factory=list)
    # Planned removals never started because the engine was lost first (not in the audit).
    not_attempted: int = 0
    error: str | None = None  # why the cycle stopped short (the engine was lost), if it did

    @property
    def results(self) -> list[RemovalResult]:
        return self.container_results + self.build_cache_results + self.image_results

    @property
    def build_cache_bytes_freed(self) -> int:
        return sum(r.size_bytes for r in self.build_cache_results if r.outcome is Outcome.REMOVED)

    @property
    def failures(self) -> list[RemovalResult]:
        return [r for r in self.results if r.outcome is Outcome.FAILED]

    @property
    def image_bytes_freed(self) -> int:
        """Measured: the bytes statvfs shows came back while image GC removed (0 when the disk
        filled faster meanwhile). A dry run: what the plan says its removals free."""
        if self.dry_run:
            return self.image_plan.bytes_planned
        if self.images_freed is not None:
            return self.images_freed
        if self.images_before is None or self.images_after is None:
            return 0
        return max(0, self.images_after.available_bytes - self.images_before.available_bytes)

    @property
    def disk_bytes_freed(self) -> int:
        """Measured: the bytes statvfs shows came back over the whole of image GC (the build
        cache, images and dead containers it removed for the disk). A dry run: what the plan
        says all of them free."""
        if self.dry_run:
            return self.image_plan.freed_before + self.image_plan.bytes_planned
        if self.images_before is None or self.images_after is None:
            return 0
        return max(0, self.images_after.available_bytes - self.images_before.available_bytes)

    @property
    def image_inodes_freed(self) -> int:
        """Measured like the bytes: inodes that came back while image GC removed."""
        if self.dry_run or self.images_before is None or self.images_after is None:
            return 0
        return max(0, self.images_after.inodes_free - self.images_before.inodes_free)

    @property
    def target_reached(self) -> bool:
        """Whether every filesystem under pressure is where its thresholds asked, as last
        measured: the image filesystem (image GC) and any other (`filesystems_short`)."""
        return self.image_target_reached and not self.filesystems_short

    @property
    def image_target_reached(self) -> bool:
        """Whether the image filesystem is where image GC was asked to bring it, as last measured
        (a dry run: whether the plan's removals would get there)."""
        if self.dry_run:
            return self.image_plan.target_reachable
        if not self.image_plan.under_pressure:
            return True
        after = self.images_after or self.filesystem_after
        return after is not None and target_met(after, self.image_plan)

    @property
    def filesystems_short(self) -> list[tuple[FilesystemPlan, FilesystemStats]]:
        """Filesystems without images under pressure still short of their target, with their
        last measurement (a dry run: none is said to be; the closed loop decides there)."""
        return (
            [] if self.dry_run else short_of_target(self.plan.filesystems, self.filesystems_after)
        )


def open_runtime(settings: Settings, state: StateDir) -> Runtime:
    """The configured runtime's adapter, primed with the finish times the state directory
    remembers: the one place a connection is made (`once`, `report` and the daemon)."""
    return connect(
        settings.runtime.type,
        settings.runtime.endpoint,
        settings.runtime.timeout,
        state.load_finish_times(),
        sandbox_image=settings.runtime.sandbox_image,
    )


class Collector:
    """Runs cycles against one runtime with one history. Thread-safe: one cycle at a time."""

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        state: StateDir,
        *,
        clock: Clock = utcnow,
        measure: Measure = measure,
        listeners: Sequence[ResultListener] = (),
        persist: bool = True,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.state = state
        self.clock = clock
        self.measure = measure
        self.listeners = list(listeners)
        self.persist = persist
        self.history: History = state.load_history(clock())
        # What was wrong with history when it was loaded: rebuilt at the first observation.
        self._history_lost: str | None = state.history_lost
        # Image id -> layers, learnt once per image id (they never change) and kept in the state
        # directory, so a cycle asks the engine only about images it has not seen.
        self.layers: dict[str, tuple[Layer, ...]] = state.load_layers()
        self._layers_dirty = False
        # What a listed byte costs on the disk, where the runtime says listed sizes are not it.
        self.cost = LayerCost(getattr(runtime, "listed_size_cost", None), state, persist=persist)
        self.lock = threading.RLock()
        self.history_save_error: str | None = None
        self.last_snapshot: Snapshot | None = None
        # Set when the process is asked to stop: removals not yet started are skipped.
        self.stopping = threading.Event()
        # Set while image GC climbs the policy's pressure ladder (`policy.ladder`): its goal, and
        # the settings the plans after the first are made with (the hysteresis).
        self._ladder: Ladder | None = None
        # What the image tag walks are about to do, on disk (`collect.intents`).
        self.journal = intents.journal_for(runtime, state)
        # The engine was found unreachable during this cycle's removals: start no more.
        self._engine_lost: RuntimeUnavailable | None = None
        self._not_attempted = 0
        self._probing = threading.Lock()
        self._lost = threading.Event()  # set with _engine_lost: the image loop starts no more
        self._walks = intents.Walks(runtime, None, ())  # the batch in progress
        # The cycle in progress or last run (a partial one when the engine was lost).
        self.last_report: CycleReport | None = None
        # Set by the daemon when the fill rate projects the high threshold within
        # images.lookahead: the next image GC plans as if high had been crossed (`projected`).
        self.projected = False

    # -- observe ----------------------------------------------------------------------------
    def observe(self) -> Snapshot:
        """A complete snapshot, folded into history (and saved, when this collector persists).

        The costly questions (the build cache, writable-layer sizes: one request) are asked only
        where the plan needs them, for `report` as for a cycle: under disk pressure, or for the
        build cache's maximum age."""
        with self.lock:
            now = self.clock()
            snapshot = take_snapshot(
                self.runtime, self.settings.images.filesystem_path, now, measure=self.measure
            )
            check_targets(self.settings.images, snapshot.measured)
            new_ids = [i.id for i in snapshot.images if i.id not in self.history.images]
            tagged_at: dict[str, datetime] = {}
            asked: set[str] = set()  # new images whose tag time was asked with their layers
            try:
                snapshot = self._with_disk_usage(snapshot)
                snapshot = self._resolve_finish_times(snapshot)
                snapshot = self._with_layers(snapshot, tagged_at, (set(new_ids), asked))
                rest = [i for i in new_ids if i not in asked]
                if rest:
                    tagged_at.update(self.runtime.image_tagged_at(rest))
            except RuntimeError_:
                # Keep what was learnt (layers, tag times, finish times): a retry asks only
                # about what is still unknown.
                self.history = record_events(self.history, {}, tagged_at)
                self.save_history()
                raise
            self.history = observe(self.history, snapshot, now, tagged_at)
            if (lost := self._history_lost) is not None:
                path = self.state.history_path
                self.history = rebuild_history(self.runtime, self.history, snapshot, lost, path)
                self._history_lost = None
            self.last_snapshot = snapshot
            self.save_history()
            return snapshot

    def _image_settings(self) -> ImageSettings:
        """The image settings plans are made with: the ladder's while image GC climbs it (the
        hysteresis), else as the policy has them (`policy.ladder.plan_settings`)."""
        if self._ladder is not None:
            return self._ladder.settings
        return plan_settings(self.settings.images, projected=self.projected)

    def _with_disk_usage(self, snapshot: Snapshot) -> Snapshot:
        images, containers = self._image_settings(), self.settings.containers
        pressure = targets.under_pressure(snapshot.filesystem, images)
        cache = needs_listing(self.settings.build_cache, under_pressure=pressure)
        sizes = (
            pressure
            and containers.remove_under_disk_pressure
            and any(c.state.is_dead for c in snapshot.containers)
        )
        if not cache and not sizes:
            return snapshot
        try:
            usage = self.runtime.disk_usage(build_cache=cache, container_sizes=sizes)
        except RuntimeUnavailable:
            raise
        except RuntimeError_ as exc:
            # Not a listing the plan can act on partially: no build cache GC this cycle and no
            # writable-layer sizes (the closed loop measures); images and containers go on.
            log.warning(
                "build cache and writable-layer sizes unavailable", extra={"error": str(exc)}
            )
            return snapshot
        return replace(snapshot, disk_usage=usage)

    def _with_layers(
        self, snapshot: Snapshot, tagged_at: dict[str, datetime], new: tuple[set[str], set[str]]
    ) -> Snapshot:
        """The snapshot with every image's layers: from what is kept, else asked of the runtime
        (once per image id, a batch at a time, each kept as it comes, with the tag times of the
        new ones, `new[0]`, into `tagged_at` and their ids into `new[1]`). Images no longer
        listed are forgotten."""
        listed = {i.id for i in snapshot.images}
        missing = [i.id for i in snapshot.images if i.id not in self.layers]
        if missing:
            self._layers_dirty = True
            learn_layers(self.runtime, missing, self.layers, tagged_at, *new)
        if len(self.layers) > len(listed):
            self.layers = {k: v for k, v in self.layers.items() if k in listed}
            self._layers_dirty = True
        # What each layer costs on the disk is the policy's rule for the runtime's store; where
        # the runtime's listed sizes are not the disk's (CRI), the learnt factor sizes them.
        costs = store_costs(snapshot.store, snapshot.images, self.layers)
        return self.cost.apply(replace(snapshot, layers=costs))

    def _resolve_finish_times(self, snapshot: Snapshot) -> Snapshot:
        """Ask the runtime for the exact finish times the plan and history depend on, and only
        those (`policy.finish_times`): a round at a time, as each answer can settle others.
        Raises RuntimeUnavailable like a listing: nothing is decided on a partial answer."""
        asked: set[str] = set()
        pressure = targets.under_pressure(snapshot.filesystem, self._image_settings())
        for attempt in range(FINISH_TIME_ROUNDS + 1):
            batch = None if attempt == FINISH_TIME_ROUNDS else FINISH_TIME_BATCH
            need = finish_times_needed(
                snapshot,
                self.history,
                self.settings.containers,
                snapshot.taken_at,
                batch,
                under_pressure=pressure,
            )
            need = [i for i in need if i not in asked]
            if not need:
                break
            asked.update(need)
            snapshot = with_finish_times(snapshot, self.runtime.finish_times(need))
        return snapshot

    def apply_events(
        self, used: Mapping[str, datetime], arrived: Mapping[str, datetime] | None = None
    ) -> None:
        """Fold a batch of what the event stream saw into history, and save it once."""
        if not used and not arrived:
            return
        with self.lock:
            self.history = record_events(self.history, used, arrived)
            self.save_history()

    def save_history(self) -> None:
        if not self.persist:
            return
        try:
            self.state.save_history(self.history)
            self.state.save_finish_times(self.runtime.finish_cache)
            if self._layers_dirty:
                self.state.save_layers(self.layers)
                self._layers_dirty = False
            self.history_save_error = None
        except StateError as exc:
            if self.history_save_error != str(exc):
                log.warning("history not saved", extra={"error": str(exc)})
            self.history_save_error = str(exc)

    def plan(
        self,
        snapshot: Snapshot,
        *,
        projected: bool = True,
        containers_under_pressure: bool = True,
    ) -> Plan:
        """The policy's plan for `snapshot`, with the interpreter's cycle collector paused while
        it runs (a process-wide switch: the caller's, not the pure policy's). `projected`: images
        may count on this plan's container removals (true for a dry run and a full cycle's
        preview)."""
        with cycle_collector_paused():
            return policy.plan(
                snapshot,
                self.history,
                self._image_settings(),
                self.settings.containers,
                snapshot.taken_at,
                build_cache=self.settings.build_cache,
                scope=policy.Scope(projected, containers_under_pressure),
            )

    def recover(self) -> None:
        """Put right what interrupted removals left (the intent journal): tags put back,
        removals that finished unrecorded recorded. Before every cycle that acts, and when the
        daemon finds the engine back. Never for `report` or a dry run. Raises like a listing."""
        with self.lock:
            if self.persist:
                intents.replay(self.runtime, self.journal, self._record_finished)

    def report(self) -> Plan:
        """The dry run: the plan of one full cycle; the engine is not asked to change anything."""
        return self.plan(self.observe())

    # -- act --------------------------------------------------------------------------------
    def cycle(
        self, *, dry_run: bool = False, containers: bool = True, images: bool = True
    ) -> CycleReport:
        """Container GC first, then image GC on a fresh observation.

        Raises RuntimeUnavailable when a listing fails: nothing is removed on partial information.
        """
        with self.lock:
            self.last_report = None
            self._engine_lost, self._not_attempted = None, 0
            self._lost.clear()
            if not dry_run:
                self.recover()
            snapshot = self.observe()
            first = self.plan(snapshot)
            report = CycleReport(
                dry_run=dry_run,
                plan=first,
                image_plan=first.images,
                filesystem_before=snapshot.filesystem,
                ran_images=images,
                build_cache_plan=first.build_cache,
            )
            self.last_report = report
            if dry_run:
                return report
            if containers:
                # By the caps now; those only disk pressure lets go come after images.
                by_caps = [
                    d for d in first.containers.removals if d.reason is not Reason.DISK_PRESSURE
                ]
                report.container_results = self._remove_all(by_caps)
                self._stop_if_engine_lost(report)
                # Sandboxes (CRI) after their containers: dependents before owners.
                report.container_results += collect_sandboxes(
                    self.runtime, self.settings, self.clock(), self.listeners
                )
            if images:
                self._free_disk(report, snapshot if not containers else None)
                self._relieve_other_filesystems(report)
            report.filesystem_after = self.measure(snapshot.filesystem.path)
            if len(snapshot.measured) > 1:
                report.filesystems_after = remeasure(snapshot.measured, self.measure)
            self.save_history()
            return report

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
            self.projected = False
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
        report.images_after = settle(lambda _: False) if settle else self.measure(path)
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
            stopping=_Either(self.stopping, self._lost),
            workers=self.settings.runtime.max_concurrent_removals,
            listeners=self.listeners,
            settle=self._settle(path),
        )

    def _settle(self, path: str) -> Settle | None:
        """Where the runtime frees after its removals return (its data, `frees_asynchronously`):
        measuring `path` until the disk is steady."""
        if not getattr(self.runtime, "frees_asynchronously", False):
            return None
        return lambda done: settled(lambda: self.measure(path), done)

    def _child_stays(self, d: ImageDecision, child_id: str) -> RemovalResult:
        """A parent whose child this cycle could not remove: the engine would refuse it."""
        i = d.image
        result = RemovalResult(
            kind="image",
            id=i.id,
            name=i.describe(),
            reason=d.reason,
            outcome=Outcome.SKIPPED,
            detail=f"an image built on it stays: {short_id(child_id)}",
            tags=i.tags,
        )
        log_result(result, {"image": i.id, "tags": list(i.tags), "child": child_id})
        return result

    def _remove_all(
        self, decisions: Sequence[ContainerDecision] | Sequence[ImageDecision]
    ) -> list[RemovalResult]:
        if not decisions:
            return []
        workers = min(self.settings.runtime.max_concurrent_removals, len(decisions))
        now = self.clock()
        batch = [
            intents.image_intent(d.image, str(d.reason), now)
            if isinstance(d, ImageDecision)
            else intents.container_intent(d.container, str(d.reason), now)
            for d in decisions
        ]
        self._walks = intents.Walks(self.runtime, self.journal, batch)
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remove") as pool:
                attempted = list(pool.map(self._remove_and_tell, decisions))
        finally:
            self._walks.close()
        results = [r for r in attempted if r is not None]
        self._not_attempted += len(attempted) - len(results)
        return results

    def _remove_one(self, decision: ContainerDecision | ImageDecision) -> RemovalResult | None:
        """One removal; a dead container's result carries its writable layer's size (the
        engine's, when it was asked). None when it was not started (the engine was lost)."""
        result = self._carry_out(decision)
        if (
            result is not None
            and isinstance(decision, ContainerDecision)
            and result.outcome is Outcome.REMOVED
        ):
            last = self.last_snapshot
            sizes = last.disk_usage.container_sizes if last is not None else None
            size = (sizes or {}).get(decision.container.id, 0)
            if size:
                result = replace(result, size_bytes=size)
        return result

    def _record_finished(self, finished: Sequence[Intent], gone: Sequence[Intent] = ()) -> None:
        """Audit the removals an interrupted run carried out but could not record (those the
        audit record has a line for since the intent was written were recorded already), and
        the objects it had planned that someone else removed meanwhile (outcome `gone`)."""
        if not finished and not gone:
            return
        since = min(i.started_at for i in [*finished, *gone])
        try:
            entries, _ = read_audit(audit_path(self.settings), since)
        except OSError:
            entries = []
        recorded = {(e.get("kind"), e.get("id")) for e in entries}
        results = []
        for intent, mine in [*((i, True) for i in finished), *((i, False) for i in gone)]:
            if (intent.kind, intent.object_id) in recorded:
                continue
            try:
                reason = Reason(intent.reason)
            except ValueError:
                log.warning(
                    "journal entry with an unknown reason", extra={"object": intent.object_id}
                )
                continue
            result = RemovalResult(
                kind=intent.kind,
                id=intent.object_id,
                name=intent.name,
                reason=reason,
                outcome=Outcome.REMOVED if mine else Outcome.GONE,
                detail=FINISHED_BEFORE_A_KILL if mine else GONE_BY_SOMEONE_ELSE,
                size_bytes=intent.size_bytes if mine else 0,
                tags=intent.tags,
                pod=intent.pod,
            )
            log_result(result, {"object": intent.object_id, "pid": intent.pid})
            results.append(result)
        tell(self.listeners, results)

    def _check_engine(self, exc: RuntimeUnavailable) -> None:
        """A removal found the engine unreachable (or too slow): is it gone, or was it this one
        request (an answer cut short, one stalled DELETE)? A ping says; meanwhile no removal
        starts. Gone: none starts any more in this cycle."""
        with self._probing:
            if self._engine_lost is not None:
                return
            try:
                self.runtime.ping()
            except RuntimeError_:
                self._engine_lost = exc
                self._lost.set()

    def _stop_if_engine_lost(self, report: CycleReport) -> None:
        """At the first sign the engine is unreachable no removal is started (those in flight
        may fail): the cycle ends here, raising it, with `report` saying what was done."""
        if self._engine_lost is None:
            return
        report.not_attempted = self._not_attempted
        report.error = str(self._engine_lost)
        log.error(
            "engine unreachable during removals: no more were started",
            extra={
                "removed": sum(1 for r in report.results if r.outcome is Outcome.REMOVED),
                "attempted": len(report.results),
                "not_attempted": report.not_attempted,
                "error": report.error,
            },
        )
        raise self._engine_lost

    def _carry_out(self, decision: ContainerDecision | ImageDecision) -> RemovalResult | None:
        """One removal's result; None when it was not started (the engine was lost)."""
        with self._probing:  # wait while a failure is being checked
            if self._engine_lost is not None:
                return None
        if isinstance(decision, ContainerDecision):
            c = decision.container
            kind, obj_id, name, size = "container", c.id, c.name, 0
            fields = {
                "container": c.id,
                "container_name": c.name,
                "pod": c.pod,
                "unit": decision.evict_unit,
            }

            def remove() -> None:
                what = f"remove container {short_id(c.id)} ({c.name})"
                self._walks.check(what, c.id)
                self._walks.mark_sent(what, c.id)
                self.runtime.remove_container(c)
        else:
            i = decision.image
            kind, obj_id, name, size = "image", i.id, i.describe(), decision.frees_bytes
            fields = {
                "image": i.id,
                "tags": list(i.tags),
                "size_bytes": i.size_bytes,
                "frees_bytes": decision.frees_bytes,
            }

            def remove() -> None:
                notes.append(self._walks.remove_image(i) or "")

        fields["reason"] = str(decision.reason)
        notes: list[str] = []  # what happened to tags no longer the image's

        def attempt() -> None:
            try:
                remove()
            except RuntimeUnavailable as exc:
                self._check_engine(exc)
                raise

        outcome, detail = carry_out(attempt, self.stopping)
        detail = detail or "".join(notes)
        if kind == "container":
            self._walks.finish(obj_id)  # answered either way: final (an image settles itself)
        result = RemovalResult(
            kind=kind,
            id=obj_id,
            name=name,
            reason=decision.reason,
            outcome=outcome,
            detail=detail,
            size_bytes=size if outcome is Outcome.REMOVED else 0,
            tags=decision.image.tags if isinstance(decision, ImageDecision) else (),
            pod=decision.container.pod if isinstance(decision, ContainerDecision) else None,
        )
        log_result(result, fields)
        return result

    def _remove_and_tell(self, decision: ContainerDecision | ImageDecision) -> RemovalResult | None:
        """`_remove_one`, its result told (audited) as soon as it is done, not when the batch
        is: a kill loses no finished one."""
        result = self._remove_one(decision)
        if result is not None:
            tell(self.listeners, [result])
        return result

    def _not_started(self, d: ContainerDecision | ImageDecision) -> RemovalResult:
        """The result of a removal the closed loop handed over after the engine was found lost."""
        if isinstance(d, ImageDecision):
            i = d.image
            kind, obj_id, name, tags, pod = "image", i.id, i.describe(), i.tags, None
            fields: dict[str, object] = {"image": i.id, "tags": list(i.tags)}
        else:
            c = d.container
            kind, obj_id, name, tags, pod = "container", c.id, c.name, (), c.pod
            fields = {"container": c.id, "container_name": c.name, "pod": c.pod}
        result = RemovalResult(
            kind=kind,
            id=obj_id,
            name=name,
            reason=d.reason,
            outcome=Outcome.SKIPPED,
            detail="not attempted: the engine is unreachable",
            tags=tags,
            pod=pod,
        )
        log_result(result, fields)
        return result


class _Either:
    """Set when either event is (the image loop's "start no more": stopping, or engine lost)."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


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
            unconditional=d.reason in (Reason.AGE, Reason.SUPERSEDED),  # whatever the disk
            after=tuple(children.get(d.image.id, ())),
        )
        for d in plan.decisions
        if d.action is Action.REMOVE or d.reason is Reason.TARGET_REACHED
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
