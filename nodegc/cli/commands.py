"""The commands behind the CLI: each builds a collector, runs it once and says what happened."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nodegc.cli import jsonout, render
from nodegc.cli.breakdown import (
    daemon_fill_rates,
    fill_rate_line,
    fill_rate_lines,
    space_json,
    space_lines,
    untouchable_text,
)
from nodegc.cli.exits import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    leave_for_exit,
)
from nodegc.cli.kubelet import kubelet_json, kubelet_would
from nodegc.cli.safe import visible
from nodegc.collect import intents
from nodegc.collect.cycle import Collector, CycleReport, open_runtime
from nodegc.collect.observe import FilesystemError, remeasure
from nodegc.collect.pause import cycle_collector_paused
from nodegc.collect.usage import Prefetch, SpaceReport, explain, missed_records, prefetch
from nodegc.config import Settings
from nodegc.config.kubelet import read_kubelet_config
from nodegc.model import Outcome, RemovalResult
from nodegc.runtime import RuntimeError_, RuntimeUnavailable
from nodegc.state.audit import TARGET_MISSED, AuditLog, audit_path
from nodegc.state.lock import AlreadyRunning, StateLock
from nodegc.state.store import StateDir, StateError, UnsafeState

log = logging.getLogger("nodegc")


class CommandFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def collector(
    settings: Settings, *, need_writable_state: bool, lock: bool = False
) -> Iterator[Collector]:
    """A collector over the configured runtime and state directory, closed afterwards.

    `lock`: hold the state directory's lock (the daemon's) meanwhile: one collector at a time;
    another holder is exit 2, before the engine is asked anything."""
    state = StateDir(settings.state.directory)
    try:
        state.check_writable()
        writable = True
    except UnsafeState:
        raise  # never worked around, not even read-only: exit 2 (`_run`)
    except StateError as exc:
        if need_writable_state:
            raise CommandFailed(
                EXIT_USAGE, f"{exc} (history would be lost; `nodegc report` works read-only)"
            ) from None
        writable = False
        log.warning(
            "state directory is read-only: history is read but not saved",
            extra={"path": str(state.path), "error": str(exc)},
        )
    held = StateLock(state.path) if lock else None
    if held is not None:
        try:
            held.acquire()
        except AlreadyRunning as exc:
            raise CommandFailed(EXIT_USAGE, str(exc)) from None
    try:
        with _collector(settings, state, writable, need_writable_state) as gc:
            yield gc
    finally:
        if held is not None:
            held.release()


@contextmanager
def _collector(
    settings: Settings, state: StateDir, writable: bool, audited: bool
) -> Iterator[Collector]:
    runtime = open_runtime(settings, state)
    # Every removal attempt goes to the audit record (as the daemon's do), and is counted so
    # that an engine error later in the cycle does not claim that nothing was removed.
    attempts: list[RemovalResult] = []
    audit = AuditLog(audit_path(settings)) if audited else None
    listeners: list[Callable[[RemovalResult], None]] = [attempts.append]
    if audit is not None:
        listeners.append(audit.record)
    gc: Collector | None = None
    try:
        gc = Collector(settings, runtime, state, persist=writable, listeners=listeners)
        yield gc
    except RuntimeUnavailable as exc:
        done = _so_far(attempts, gc.last_report if gc is not None else None)
        lost = "engine flaky" if exc.flaky else "engine unreachable"
        raise CommandFailed(EXIT_UNREACHABLE, f"{lost}{done}: {exc}") from None
    except RuntimeError_ as exc:
        done = _so_far(attempts, gc.last_report if gc is not None else None)
        done = done or ", nothing removed"
        raise CommandFailed(EXIT_UNREACHABLE, f"engine error{done}: {exc}") from None
    except FilesystemError as exc:
        raise CommandFailed(EXIT_USAGE, str(exc)) from None
    finally:
        runtime.close()
        if audit is not None:
            audit.close()


def _so_far(attempts: list[RemovalResult], report: CycleReport | None) -> str:
    """What the cycle did before an engine error stopped it ("" when it attempted nothing):
    the counts the audit record (`nodegc history`) and `--output json` give too."""
    not_attempted = report.not_attempted if report is not None else 0
    if not attempts and not not_attempted:
        return ""
    count = {o: sum(1 for r in attempts if r.outcome is o) for o in Outcome}
    text = (
        f" after {len(attempts)} removal attempts this cycle: {count[Outcome.REMOVED]} removed, "
        f"{count[Outcome.FAILED]} failed, {count[Outcome.SKIPPED]} skipped (see `nodegc history`)"
    )
    if not_attempted:
        text += f"; {not_attempted} more planned, not attempted"
    return text


def _run(body: Callable[[], int]) -> int:
    try:
        return body()
    except CommandFailed as exc:  # (engine messages quote names: shown escaped, `safe`)
        print(f"nodegc: {visible(exc)}", file=sys.stderr)
        return exc.code
    except UnsafeState as exc:  # a hostile state directory or file: `state.files`
        print(f"nodegc: {visible(exc)}", file=sys.stderr)
        return EXIT_USAGE


def report(settings: Settings, args: argparse.Namespace) -> int:
    def body() -> int:
        with collector(settings, need_writable_state=False) as gc:
            early = prefetch(gc.runtime, gc.state, gc.persist)  # walks while the engine lists
            plan = gc.report()
            pending = intents.pending(gc.journal, gc.last_snapshot)
            space = where_the_space_is(gc, early)
        kubelet = read_kubelet_config(args.kubelet_config) if args.kubelet_config else None
        fill_rate, fill_rates = daemon_fill_rates(
            settings.metrics.address, settings.metrics.enabled
        )
        if args.output == "json":
            data = render.plan_json(plan)
            data["pending_intents"] = render.pending_json(pending)
            data["breakdown"] = space_json(space)
            data["fill_rate"] = fill_rate
            data["fill_rates"] = fill_rates
            if kubelet is not None:
                data["kubelet"] = kubelet_json(plan.filesystem, kubelet)
            _print_json(data)
            leave_for_exit(data)
        else:
            line = kubelet_would(plan.filesystem, kubelet) if kubelet is not None else None
            print(render.plan_table(plan, kubelet_line=line))
            print("\n".join(space_lines(space)))
            print("\n".join(fill_rate_lines(fill_rates) or [fill_rate_line(fill_rate)]))
            for text in render.pending_lines(pending):
                print(text)
        leave_for_exit(gc, plan, space, early)
        return EXIT_OK

    # The cycle collector paused for the whole report, not only its plan: the snapshot lives to
    # the end, and each collection the rendering's allocations set off walked it again (about
    # 0.1-0.2 s of a 2.5 s report at 20,000 containers); a report makes no garbage cycles worth
    # collecting before it exits.
    with cycle_collector_paused():
        return _run(body)


def once(settings: Settings, args: argparse.Namespace) -> int:
    def body() -> int:
        acting = not args.dry_run
        with collector(settings, need_writable_state=acting, lock=acting) as gc:
            try:
                result = gc.cycle(dry_run=args.dry_run)
            except (RuntimeError_, FilesystemError) as exc:
                # Exit 3 (or 2) follows; the JSON still says what was done before it.
                if args.output == "json":
                    pending = intents.pending(gc.journal, None)
                    _print_json(render.interrupted_json(gc.last_report, str(exc), pending))
                raise
            pending = intents.pending(gc.journal, None)
            space = where_the_space_is(gc) if not result.target_reached else None
        if args.output == "json":
            data = render.cycle_json(result)
            data["pending_intents"] = render.pending_json(pending)
            data["breakdown"] = space_json(space)
            _print_json(data)
        else:
            print(render.cycle_table(result))
            for text in render.pending_lines(pending):
                print(text)
        if not result.target_reached:
            log.warning(render.free_disk_space_failed(result) + untouchable_text(space))
            audit_missed(settings, result, space)
        if result.failures or not result.target_reached:
            return EXIT_INCOMPLETE
        return EXIT_OK

    return _run(body)


def audit_missed(settings: Settings, report: CycleReport, space: SpaceReport | None) -> None:
    """The audit record's `target-missed` lines for a cycle that missed its target."""
    records = missed_records(report, space)
    if not records:
        return
    with AuditLog(audit_path(settings)) as audit:
        for fields in records:
            audit.record_event(TARGET_MISSED, fields)


def where_the_space_is(gc: Collector, early: Prefetch | None = None) -> SpaceReport | None:
    """The breakdown of every filesystem the last observation measured, measured again now
    (`early`: the walk of the container directories begun before the observation)."""
    snapshot = gc.last_snapshot
    if snapshot is None:
        return None
    return explain(gc.runtime, remeasure(snapshot.measured, gc.measure), snapshot, early)


def _print_json(data: Any) -> None:
    """The document in one write (`json.dump` to a stream wrote each token apart: 667,626 writes
    for a node of 2,500 images, most of a big node's `report` time), encoded by `jsonout`."""
    sys.stdout.write(jsonout.dumps(data) + "\n")
    sys.stdout.flush()


def run(settings: Settings, args: argparse.Namespace) -> int:
    import prometheus_client

    from nodegc.cli.options import settings_overrides
    from nodegc.daemon.loop import Daemon, ListenError, config_reloader

    def body() -> int:
        try:
            StateDir(settings.state.directory).check_writable()
        except StateError as exc:
            raise CommandFailed(EXIT_USAGE, f"{exc} (history would be lost)") from None
        # One process, one registry: the *_created series add nothing an operator reads.
        prometheus_client.disable_created_metrics()
        daemon = Daemon(settings, config_reloader(args.config, settings_overrides(args)))
        try:
            return daemon.run()
        except (AlreadyRunning, ListenError) as exc:
            raise CommandFailed(EXIT_USAGE, str(exc)) from None

    return _run(body)


def status(settings: Settings, args: argparse.Namespace) -> int:
    from nodegc.cli.status import status_command

    return status_command(settings, args.output)


def history(settings: Settings, args: argparse.Namespace) -> int:
    from nodegc.cli.history import history_command

    return history_command(settings, args.since, args.output)
