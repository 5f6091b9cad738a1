"""One garbage-collection cycle: observe, plan, act, report.

The collector holds no rule of its own: what goes is the policy's answer; this module only runs
the steps in order, carries out removals through the runtime, and records what happened. Its
jobs live in their own modules, mixed into `Collector`: `observing.py` (the snapshot, history),
`walks.py` (the pressure ladder's steps through the closed loop), `execute.py` (one removal, a
batch, the engine lost), `recovery.py` (what an interrupted run left), `report.py`
(`CycleReport`, re-exported here).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from nodegc import policy
from nodegc.clock import Clock, utcnow
from nodegc.collect import intents
from nodegc.collect.cost import LayerCost
from nodegc.collect.execute import Executing
from nodegc.collect.observe import Measure, measure, remeasure
from nodegc.collect.observing import Observing
from nodegc.collect.pause import cycle_collector_paused
from nodegc.collect.recovery import FINISHED_BEFORE_A_KILL, GONE_BY_SOMEONE_ELSE, Recovering
from nodegc.collect.removal import ResultListener
from nodegc.collect.report import CycleReport
from nodegc.collect.sandboxes import collect_sandboxes
from nodegc.collect.walks import Walking
from nodegc.config import Settings
from nodegc.model import History, Layer, Plan, Reason, Snapshot
from nodegc.policy.ladder import Ladder
from nodegc.runtime import Runtime, RuntimeUnavailable, connect
from nodegc.state.store import StateDir

__all__ = [
    "FINISHED_BEFORE_A_KILL",
    "GONE_BY_SOMEONE_ELSE",
    "Collector",
    "CycleReport",
    "open_runtime",
]


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


class Collector(Observing, Walking, Executing, Recovering):
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
        self.cost = LayerCost(runtime.listed_size_cost, state, persist=persist)
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
                try:
                    self._free_disk(report, snapshot if not containers else None)
                    self._relieve_other_filesystems(report)
                finally:  # images.lookahead: a projection plans every filesystem of one cycle
                    self.projected = False
            report.filesystem_after = self.measure(snapshot.filesystem.path)
            if len(snapshot.measured) > 1:
                report.filesystems_after = remeasure(snapshot.measured, self.measure)
            self.save_history()
            return report
