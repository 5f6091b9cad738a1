"""The commands behind the CLI: each builds a collector, runs it once and says what happened."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nodegc.cli import render
from nodegc.cli.exits import EXIT_INCOMPLETE, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from nodegc.collect.cycle import Collector, open_runtime
from nodegc.collect.observe import FilesystemError
from nodegc.config import Settings
from nodegc.config.kubelet import read_kubelet_config
from nodegc.model import Outcome, RemovalResult
from nodegc.policy.kubelet import kubelet_json, kubelet_would
from nodegc.runtime import RuntimeError_, RuntimeUnavailable
from nodegc.state.audit import AuditLog, audit_path
from nodegc.state.store import StateDir, StateError

log = logging.getLogger("nodegc")


class CommandFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def collector(settings: Settings, *, need_writable_state: bool) -> Iterator[Collector]:
    """A collector over the configured runtime and state directory, closed afterwards."""
    state = StateDir(settings.state.directory)
    try:
        state.check_writable()
        writable = True
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
    runtime = open_runtime(settings, state)
    # Every removal attempt goes to the audit record (as the daemon's do), and is counted so
    # that an engine error later in the cycle does not claim that nothing was removed.
    attempts: list[RemovalResult] = []
    audit = AuditLog(audit_path(settings)) if need_writable_state else None
    listeners: list[Callable[[RemovalResult], None]] = [attempts.append]
    if audit is not None:
        listeners.append(audit.record)
    try:
        yield Collector(settings, runtime, state, persist=writable, listeners=listeners)
    except RuntimeUnavailable as exc:
        raise CommandFailed(
            EXIT_UNREACHABLE, f"engine unreachable{_so_far(attempts)}: {exc}"
        ) from None
    except RuntimeError_ as exc:
        done = _so_far(attempts) or ", nothing removed"
        raise CommandFailed(EXIT_UNREACHABLE, f"engine error{done}: {exc}") from None
    except FilesystemError as exc:
        raise CommandFailed(EXIT_USAGE, str(exc)) from None
    finally:
        runtime.close()
        if audit is not None:
            audit.close()


def _so_far(attempts: list[RemovalResult]) -> str:
    """What the cycle did before an engine error stopped it ("" when it removed nothing)."""
    if not attempts:
        return ""
    removed = sum(1 for r in attempts if r.outcome is Outcome.REMOVED)
    return (
        f" after {removed} of {len(attempts)} removals this cycle (see `nodegc history`); "
        "the rest was not attempted"
    )


def _run(body: Callable[[], int]) -> int:
    try:
        return body()
    except CommandFailed as exc:
        print(f"nodegc: {exc}", file=sys.stderr)
        return exc.code


def report(settings: Settings, args: argparse.Namespace) -> int:
    def body() -> int:
        with collector(settings, need_writable_state=False) as gc:
            plan = gc.report()
        kubelet = read_kubelet_config(args.kubelet_config) if args.kubelet_config else None
        if args.output == "json":
            data = render.plan_json(plan)
            if kubelet is not None:
                data["kubelet"] = kubelet_json(plan.filesystem, kubelet)
            _print_json(data)
        else:
            line = kubelet_would(plan.filesystem, kubelet) if kubelet is not None else None
            print(render.plan_table(plan, kubelet_line=line))
        return EXIT_OK

    return _run(body)


def once(settings: Settings, args: argparse.Namespace) -> int:
    def body() -> int:
        with collector(settings, need_writable_state=not args.dry_run) as gc:
            result = gc.cycle(dry_run=args.dry_run)
        if args.output == "json":
            _print_json(render.cycle_json(result))
        else:
            print(render.cycle_table(result))
        if not result.target_reached:
            log.warning(render.free_disk_space_failed(result))
        if result.failures or not result.target_reached:
            return EXIT_INCOMPLETE
        return EXIT_OK

    return _run(body)


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def run(settings: Settings, args: argparse.Namespace) -> int:
    import prometheus_client

    from nodegc.cli.options import settings_overrides
    from nodegc.daemon.loop import Daemon, ListenError, config_reloader
    from nodegc.state.lock import AlreadyRunning

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
