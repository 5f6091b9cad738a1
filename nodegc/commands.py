"""The commands behind the CLI: each builds a collector, runs it once and says what happened."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nodegc import render
from nodegc.cli import EXIT_INCOMPLETE, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from nodegc.config import Settings
from nodegc.cycle import Collector
from nodegc.observe import FilesystemError
from nodegc.runtime import RuntimeError_, RuntimeUnavailable, connect
from nodegc.state import StateDir, StateError

log = logging.getLogger("nodegc")


class CommandFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def collector(settings: Settings, *, need_writable_state: bool) -> Iterator[Collector]:
    """A collector over the configured runtime and state directory, closed afterwards."""
    state = StateDir(settings.state.directory)
    writable = state.writable()
    if need_writable_state and not writable:
        try:
            state.ensure()
        except StateError as exc:
            raise CommandFailed(
                EXIT_USAGE, f"{exc} (history would be lost; `nodegc report` works read-only)"
            ) from None
    if not writable:
        log.warning(
            "state directory is read-only: history is read but not saved",
            extra={"path": str(state.path)},
        )
    runtime = connect(
        settings.runtime.type,
        settings.runtime.endpoint,
        settings.runtime.timeout,
        state.load_finish_times(),
    )
    try:
        yield Collector(settings, runtime, state, persist=writable)
    except RuntimeUnavailable as exc:
        raise CommandFailed(EXIT_UNREACHABLE, f"engine unreachable: {exc}") from None
    except RuntimeError_ as exc:
        raise CommandFailed(EXIT_UNREACHABLE, f"engine error, nothing removed: {exc}") from None
    except FilesystemError as exc:
        raise CommandFailed(EXIT_USAGE, str(exc)) from None
    finally:
        runtime.close()


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
        if args.output == "json":
            _print_json(render.plan_json(plan))
        else:
            print(render.plan_table(plan))
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

    from nodegc.cli import overrides_from
    from nodegc.lock import AlreadyRunning
    from nodegc.loop import Daemon, ListenError, config_reloader

    def body() -> int:
        try:
            StateDir(settings.state.directory).ensure()
        except StateError as exc:
            raise CommandFailed(EXIT_USAGE, f"{exc} (history would be lost)") from None
        # One process, one registry: the *_created series add nothing an operator reads.
        prometheus_client.disable_created_metrics()
        daemon = Daemon(settings, config_reloader(args.config, overrides_from(args)))
        try:
            return daemon.run()
        except (AlreadyRunning, ListenError) as exc:
            raise CommandFailed(EXIT_USAGE, str(exc)) from None

    return _run(body)


def status(settings: Settings, args: argparse.Namespace) -> int:
    from nodegc.status import status_command

    return status_command(settings, args.output)


def history(settings: Settings, args: argparse.Namespace) -> int:
    from nodegc.audit import history_command

    return history_command(settings, args.since, args.output)
