"""The daemon's "where the space is": asked only when an image cycle could not reach its target
(never below the thresholds), exported as `nodegc_filesystem_bytes{filesystem,kind}`, kept in
/status (`details.where_the_space_is`), and named in the FreeDiskSpaceFailed message."""

from __future__ import annotations

import logging
from typing import Any

from nodegc.collect.cycle import Collector
from nodegc.collect.observe import FilesystemError, remeasure
from nodegc.collect.usage import (
    SpaceReport,
    explain,
    missed_records,
    space_json,
    untouchable_note,
)
from nodegc.runtime import RuntimeError_
from nodegc.state.audit import TARGET_MISSED, AuditLog

log = logging.getLogger(__name__)


def explain_shortfall(
    collector: Collector,
    metrics: Any,
    board: Any,
    audit: AuditLog | None = None,
    report: Any = None,
) -> str:
    """ "; the biggest holders nodegc may not remove: ..." for the condition message (or ""),
    with the metrics and /status updated, and the audit record's `target-missed` lines for
    `report` (a `CycleReport`). Never raises for an engine or filesystem error."""
    snapshot = collector.last_snapshot
    space: SpaceReport | None = None
    try:
        if snapshot is not None:
            with collector.lock:
                space = explain(
                    collector.runtime, remeasure(snapshot.measured, collector.measure), snapshot
                )
    except (RuntimeError_, FilesystemError) as exc:
        log.warning(
            "where the space is: unavailable",
            extra={"object": "filesystems", "error": str(exc)},
        )
    if audit is not None and report is not None:
        for fields in missed_records(report, space):
            audit.record_event(TARGET_MISSED, fields)
    publish(space, metrics, board)
    return untouchable_note(space)


def publish(space: SpaceReport | None, metrics: Any, board: Any) -> None:
    """The breakdown into the metrics and /status (nothing where the runtime cannot say)."""
    if space is None:
        return
    metrics.observe_space(space)
    board.set_details(where_the_space_is=space_json(space))
