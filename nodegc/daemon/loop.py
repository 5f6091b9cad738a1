"""`nodegc run`: the scheduled reconcile loop.

The loop only decides *when* to run a step; what to remove is the policy's answer and how is the
collector's. Jobs (APScheduler, never two of a kind at once, coalesced):
- container GC every containers.gc_period, image GC every images.gc_period (the kubelet's periods);
- a cheap disk watch every images.pressure_check_period (statvfs only, of every filesystem the
  last observation found) that starts image GC at once when any crosses its high threshold;
- a heartbeat for /healthz and the systemd watchdog; an event watcher thread keeps last use live.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry

from nodegc import __version__
from nodegc.collect.cycle import Collector, CycleReport, open_runtime
from nodegc.collect.observe import FilesystemError, TargetBeyondCapacity, measure, remeasure
from nodegc.config import ConfigError, Settings
from nodegc.daemon.conditions import (
    CONTAINER_GC_SUCCEEDED,
    DISK_PRESSURE,
    IMAGE_GC_SUCCEEDED,
    RUNTIME_REACHABLE,
    StatusBoard,
)
from nodegc.daemon.disk import (
    disk_pressure,
    filesystems_detail,
    image_outcome,
    pressure_change_text,
    pressure_log_fields,
)
from nodegc.daemon.events import EventBatch, EventWatcher
from nodegc.daemon.fill import FillWatch
from nodegc.daemon.metrics import Metrics
from nodegc.daemon.notify import SystemdNotifier
from nodegc.daemon.server import StatusServer
from nodegc.daemon.space import explain_shortfall
from nodegc.model import ALL_ROLES, FilesystemStats, Outcome, Snapshot
from nodegc.policy.filesystems import pressure_on_each
from nodegc.runtime import Runtime, RuntimeError_, RuntimeUnavailable
from nodegc.state.audit import AuditLog, audit_path
from nodegc.state.lock import StateLock
from nodegc.state.store import StateDir

log = logging.getLogger("nodegc.daemon.loop")

HEARTBEAT_SECONDS = 2.0
# After an image cycle that fell short, the disk watch waits this long before trying again.
PRESSURE_RETRY = timedelta(seconds=60)
STOP_TIMEOUT_SECONDS = 8.0


class ListenError(Exception):
    """The HTTP listener could not bind; the message names metrics.address. Exit code 2."""


def _jitter(period: timedelta) -> int:
    return int(min(5.0, period.total_seconds() * 0.1))


class Daemon:
    def __init__(
        self,
        settings: Settings,
        reload: Callable[[], Settings],
        *,
        registry: CollectorRegistry | None = None,
        runtime_factory: Callable[[Settings, StateDir], Runtime] | None = None,
    ) -> None:
        self.settings = settings
        self._reload = reload
        self.state = StateDir(settings.state.directory)
        self.lock = StateLock(settings.state.directory)
        self.registry = registry or CollectorRegistry()
        node = os.environ.get("NODE_NAME") or socket.gethostname()
        self.metrics = Metrics(self.registry, node=node)
        self.board = StatusBoard(node=node)
        self.fill = FillWatch(self.registry, self.board)
        self.notifier = SystemdNotifier()
        factory = runtime_factory or open_runtime
        self.runtime = factory(settings, self.state)
        self.event_runtime = factory(settings, self.state)
        self.audit = AuditLog(audit_path(settings), node=node)
        self.collector: Collector | None = None
        self.batch = EventBatch()
        self.watcher: EventWatcher | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.server: StatusServer | None = None
        self.stop_event = threading.Event()
        self.exit_code = 0  # 2: a setting the first measurement refused (a byte target)
        self.reload_requested = threading.Event()
        self.ready = threading.Event()
        self.last_tick = time.monotonic()
        self._image_gc_running = threading.Lock()
        self._last_short_image_cycle: datetime | None = None
        # The filesystems the last complete observation measured (paths and roles): the watch's.
        self._watched: tuple[FilesystemStats, ...] = ()

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> int:
        """Run until SIGTERM/SIGINT. The caller has validated settings and the state directory."""
        self.lock.acquire()
        try:
            return self._run_locked()
        finally:
            self.lock.release()

    def _run_locked(self) -> int:
        self.collector = Collector(
            self.settings,
            self.runtime,
            self.state,
            listeners=[self.metrics.record_removal, self.audit.record],
        )
        self.metrics.set_info(self.runtime.name)
        self._install_signals()
        if self.settings.metrics.enabled:
            self.server = StatusServer(
                self.settings.metrics.address,
                self.registry,
                healthy=self.healthy,
                ready=self.readiness,
                status=self.status,
                allowed_hosts=self.settings.metrics.allowed_hosts,
            )
            try:
                self.server.start()
            except OSError as exc:
                raise ListenError(
                    f"metrics.address = {self.settings.metrics.address}: cannot listen "
                    f"({exc.strerror or exc}); choose a free host:port or set "
                    "metrics.enabled = false"
                ) from None
        self.watcher = EventWatcher(
            self.event_runtime,
            self.batch,
            on_connected=self._on_engine_connected,
            on_broken=self._on_engine_broken,
        )
        self.watcher.start()
        self.scheduler = BackgroundScheduler(
            executors={"default": SchedulerPool(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone=UTC,
        )
        self._schedule()
        self.scheduler.start()
        log.info(
            "nodegc started",
            extra={
                "version": __version__,
                "runtime": self.settings.runtime.endpoint,
                "state": str(self.state.path),
            },
        )
        while not self.stop_event.wait(0.5):
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._apply_reload()
        return self._shutdown()

    def request_stop(self) -> None:
        self.stop_event.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())

    def _shutdown(self) -> int:
        log.info("stopping: finishing the removal in flight")
        self.notifier.stopping()
        assert self.collector is not None
        self.collector.stopping.set()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.watcher is not None:
            self.watcher.stop(timeout=2.0)
        # Wait for a cycle in flight to finish its current removal (the collector's lock).
        while time.monotonic() < deadline:
            if self.collector.lock.acquire(timeout=0.2):
                break
        else:
            log.warning("a cycle did not finish in time; exiting anyway")
        self._flush_events()
        self.collector.save_history()
        if self.server is not None:
            self.server.stop()
        self.runtime.close()
        self.event_runtime.close()
        log.info("stopped")
        return self.exit_code

    # -- scheduling -------------------------------------------------------------------------
    def _schedule(self) -> None:
        assert self.scheduler is not None
        s = self.settings
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self.container_gc,
            IntervalTrigger(
                seconds=s.containers.gc_period.total_seconds(),
                jitter=_jitter(s.containers.gc_period),
            ),
            id="container-gc",
            next_run_time=now + timedelta(seconds=1),
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.image_gc,
            IntervalTrigger(
                seconds=s.images.gc_period.total_seconds(), jitter=_jitter(s.images.gc_period)
            ),
            id="image-gc",
            next_run_time=now + timedelta(seconds=2),
            replace_existing=True,
        )
        if s.images.pressure_check_period:
            self.scheduler.add_job(
                self.pressure_check,
                IntervalTrigger(seconds=s.images.pressure_check_period.total_seconds()),
                id="pressure-check",
                replace_existing=True,
            )
        elif self.scheduler.get_job("pressure-check"):
            self.scheduler.remove_job("pressure-check")
        self.scheduler.add_job(
            self.heartbeat,
            IntervalTrigger(seconds=HEARTBEAT_SECONDS),
            id="heartbeat",
            next_run_time=now,
            replace_existing=True,
        )

    def _apply_reload(self) -> None:
        try:
            new = self._reload()
        except ConfigError as exc:
            log.error(
                "configuration reload refused; keeping the running configuration",
                extra={"error": str(exc).replace("\n", "; ")},
            )
            return
        fixed = ("runtime", "state", "metrics")
        for section in fixed:
            if getattr(new, section) != getattr(self.settings, section):
                log.warning(
                    f"[{section}] changed: takes effect after a restart",
                    extra={"section": section},
                )
                setattr(new, section, getattr(self.settings, section))
        self.settings = new
        assert self.collector is not None
        with self.collector.lock:
            self.collector.settings = new
        self._schedule()
        log.info("configuration reloaded")

    # -- jobs -------------------------------------------------------------------------------
    def heartbeat(self) -> None:
        self.last_tick = time.monotonic()
        self._flush_events()
        if self.ready.is_set():
            self.notifier.watchdog()

    def _flush_events(self) -> None:
        used, arrived = self.batch.take()
        if (used or arrived) and self.collector is not None:
            self.collector.apply_events(used, arrived)

    def container_gc(self) -> None:
        self._cycle("container", CONTAINER_GC_SUCCEEDED, containers=True, images=False)

    def image_gc(self) -> None:
        if not self._image_gc_running.acquire(blocking=False):
            return
        try:
            self._cycle("image", IMAGE_GC_SUCCEEDED, containers=False, images=True)
        finally:
            self._image_gc_running.release()

    def pressure_check(self) -> None:
        """statvfs only, of every filesystem watched; starts image GC at once when any is at or
        above its high threshold (bytes or inodes)."""
        try:
            measured = self._measure_watched()
        except FilesystemError as exc:
            self.board.set(DISK_PRESSURE, None, "CannotMeasure", str(exc))
            return
        if not measured:
            return
        # Lookahead: a filesystem's fill rate projects a crossing of high soon (any watched).
        soon = self.fill.check(measured, self.settings.images)
        pressure = self._observe_disk(measured, soon)
        projected = bool(soon) and not pressure
        if not (pressure or projected):
            return
        recent = self._last_short_image_cycle
        if recent is not None and datetime.now(UTC) - recent < PRESSURE_RETRY:
            return
        if self._image_gc_running.locked():
            return
        observed = pressure_on_each(measured, self.settings.images)
        log.info(
            "usage crossed the high threshold: starting image GC now"
            if pressure
            else "usage projected to cross the high threshold: starting image GC now",
            extra=pressure_log_fields(observed) if pressure else {"projected": list(soon)},
        )
        assert self.scheduler is not None
        if self.collector is not None:  # the next image cycle plans as if high were crossed
            self.collector.projected = projected
        self.scheduler.add_job(self.image_gc, id="image-gc-now", replace_existing=True)

    def _measure_watched(self) -> tuple[FilesystemStats, ...]:
        """images.filesystem_path alone when set, else each filesystem the last observation
        measured, again, keeping its roles (none before the first observation)."""
        override = self.settings.images.filesystem_path
        if override:
            return (replace(measure(override), roles=ALL_ROLES),)
        return remeasure(self._watched)

    def _observe_disk(self, measured: Sequence[FilesystemStats], soon: Sequence[str] = ()) -> bool:
        """Metrics and the DiskPressure condition from one measurement of each filesystem (the
        image filesystem first; `soon`: those the lookahead projects a crossing on); True when
        any is under pressure of bytes or inodes."""
        images = self.settings.images
        high, inode_high = images.high_threshold_percent, images.inode_high_threshold_percent
        minimum_free = int(images.minimum_free)
        self.metrics.observe_filesystem(measured[0], high, inode_high, minimum_free)
        self.metrics.observe_filesystems(measured)
        self.metrics.set_thresholds(images)
        observed = pressure_on_each(measured, images)
        pressure, reason, message = disk_pressure(observed, images, soon)
        self.metrics.disk_pressure.set(1 if pressure else 0)
        self.board.set_details(filesystems=filesystems_detail(observed, images))
        before = self.board.get(DISK_PRESSURE)
        first = before is None or before.status == "Unknown"
        changed = self.board.set(DISK_PRESSURE, pressure, reason, message)
        if changed or (before is not None and before.reason != reason):  # the rule changed
            log.log(
                logging.WARNING if pressure else logging.INFO,
                pressure_change_text(observed, pressure, bool(soon), first or not changed),
                extra={
                    "filesystems": {fs.path: fs.usage_percent for fs, _ in observed},
                    "condition": message,
                    "reason": reason,
                    "high": high,
                    "inode_high": inode_high,
                },
            )
        return pressure

    def _cycle(self, kind: str, condition: str, *, containers: bool, images: bool) -> None:
        assert self.collector is not None
        if self.stop_event.is_set():
            return
        self._flush_events()
        started = time.monotonic()
        try:
            report = self.collector.cycle(containers=containers, images=images)
        except RuntimeUnavailable as exc:
            self._on_engine_broken(str(exc))
            self._finished(kind, condition, started, False, "RuntimeUnavailable", str(exc))
            return
        except TargetBeyondCapacity as exc:  # a configuration error: exit 2, nothing removed
            log.error("invalid configuration: stopping", extra={"error": str(exc)})
            self.exit_code = 2
            self.request_stop()
            return
        except (RuntimeError_, FilesystemError) as exc:
            self._finished(kind, condition, started, False, "ObservationFailed", str(exc))
            return
        except Exception as exc:  # a bug must not kill the daemon: say so and carry on
            log.exception("cycle crashed", extra={"kind": kind})
            self._finished(kind, condition, started, False, "InternalError", repr(exc))
            return
        self._after_cycle(kind, condition, started, report)

    def _after_cycle(self, kind: str, condition: str, started: float, report: CycleReport) -> None:
        assert self.collector is not None
        snapshot = self.collector.last_snapshot
        if snapshot is not None:
            self._mark_reachable(snapshot)
        fs = report.filesystem_after or report.filesystem_before
        self._observe_disk(
            report.filesystems_after or (replace(fs, roles=report.filesystem_before.roles),)
        )
        removed = [r for r in report.results if r.outcome is Outcome.REMOVED]
        failed = report.failures
        ok = not failed and (kind != "image" or report.target_reached)
        if kind == "image":
            if report.image_plan.under_pressure:
                self.metrics.image_cycle_freed(report.disk_bytes_freed)
            reason, message = image_outcome(
                report,
                fs,
                len(removed),
                lambda: explain_shortfall(
                    self.collector, self.metrics, self.board, self.audit, report
                ),
            )
        else:
            reason = "Collected" if not failed else "RemovalsFailed"
            message = f"removed {len(removed)} dead containers"
        if failed:
            reason = "RemovalsFailed"
            message += f"; {len(failed)} removals failed"
        self._finished(kind, condition, started, ok, reason, message, report)
        if removed or failed or not ok:
            log.log(
                logging.INFO if ok else logging.WARNING,
                f"{kind} GC: {message}",
                extra={"kind": kind, "removed": len(removed), "failed": len(failed)},
            )
        self.board.set_details(**{f"last_{kind}_gc": message})
        self.notifier.status(f"{kind} GC: {message}")

    def _finished(
        self,
        kind: str,
        condition: str,
        started: float,
        ok: bool,
        reason: str,
        message: str,
        report: CycleReport | None = None,
    ) -> None:
        if kind == "image":
            self._last_short_image_cycle = None if ok else datetime.now(UTC)
        seconds = time.monotonic() - started
        self.metrics.cycle_finished(kind, seconds, ok, time.time(), report)
        self.board.set(condition, ok, reason, message)

    # -- engine connectivity ------------------------------------------------------------------
    def _on_engine_connected(self) -> None:
        """The event stream (re)connected: put right what a removal cut short by the engine's
        loss left (the intent journal), resync from a full listing, then say we are ready."""
        assert self.collector is not None
        self.collector.recover()
        self._mark_reachable(self.collector.observe())

    def _mark_reachable(self, snapshot: Snapshot) -> None:
        """A complete listing just succeeded: the engine answers and the daemon is ready."""
        self._watched = snapshot.measured
        self.metrics.observe_snapshot(snapshot)
        self._observe_disk(snapshot.measured)
        self.metrics.runtime_up(True)
        if self.board.set(RUNTIME_REACHABLE, True, "Answering", "listings succeed"):
            log.info("engine reachable", extra={"endpoint": self.settings.runtime.endpoint})
        if not self.ready.is_set():
            self.ready.set()
            self.notifier.ready(f"watching {len(snapshot.images)} images")

    def _on_engine_broken(self, reason: str) -> None:
        self.metrics.runtime_up(False)
        self.ready.clear()
        if self.board.set(RUNTIME_REACHABLE, False, "Unreachable", reason):
            log.warning(
                "engine unreachable: GC paused, retrying with backoff",
                extra={"endpoint": self.settings.runtime.endpoint, "error": reason},
            )

    # -- health ---------------------------------------------------------------------------
    def healthy(self) -> bool:
        return time.monotonic() - self.last_tick < max(30.0, 5 * HEARTBEAT_SECONDS)

    def readiness(self) -> tuple[bool, str]:
        if self.ready.is_set():
            return True, "ok"
        condition = self.board.get(RUNTIME_REACHABLE)
        return False, f"engine not answering: {condition.message if condition else 'unknown'}"

    def status(self) -> dict[str, Any]:
        return self.board.to_json()


def config_reloader(config_path: Path | None, overrides: dict[str, Any]) -> Callable[[], Settings]:
    from nodegc.config import load_settings

    return lambda: load_settings(config_path, overrides)
