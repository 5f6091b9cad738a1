"""Carrying out one removal: the engine's answer as an outcome, a log line, the listeners told.

One place for the mapping every kind of removal shares (images, containers, sandboxes):
removed; skipped when the engine refuses because the object is in use now (a race, never
forced) or is already gone; failed on any other engine error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nodegc.model import Outcome, RemovalResult, short_id
from nodegc.runtime import Conflict, NotFound, RuntimeError_

log = logging.getLogger(__name__)

ResultListener = Callable[[RemovalResult], None]

SHUTTING_DOWN = "nodegc is shutting down"


def carry_out(
    remove: Callable[[], None], stopping: threading.Event | None = None
) -> tuple[Outcome, str]:
    """Run `remove` (unless nodegc is stopping) and classify what the engine answered."""
    if stopping is not None and stopping.is_set():
        return Outcome.SKIPPED, SHUTTING_DOWN
    try:
        remove()
    except Conflict as exc:
        return Outcome.SKIPPED, f"in use now: {exc}"
    except NotFound as exc:
        return Outcome.SKIPPED, f"already gone: {exc}"
    except RuntimeError_ as exc:  # RuntimeUnavailable included
        return Outcome.FAILED, str(exc)
    return Outcome.REMOVED, ""


def log_result(result: RemovalResult, fields: Mapping[str, Any]) -> None:
    """One line naming the object: `<kind> <outcome>: <short id> (<name>)`."""
    level = logging.WARNING if result.outcome is Outcome.FAILED else logging.INFO
    log.log(
        level,
        f"{result.kind} {result.outcome}: {short_id(result.id)} ({result.name})",
        extra={**fields, "outcome": str(result.outcome), "detail": result.detail},
    )


def tell(listeners: Iterable[ResultListener], results: Iterable[RemovalResult]) -> None:
    """Pass each result to each listener (audit, metrics); a listener's error is logged, never
    raised: a report must not undo a removal that happened."""
    listeners = list(listeners)
    for result in results:
        for listener in listeners:
            try:
                listener(result)
            except Exception:
                log.exception(
                    "removal listener failed", extra={"object": result.id, "kind": result.kind}
                )
