"""Interrupted removals the intent journal holds, as JSON and as lines for the tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nodegc.cli.safe import visible
from nodegc.cli.tables import tags_text
from nodegc.collect.intents import Pending
from nodegc.model import short_id
from nodegc.units import iso


def pending_json(pending: Sequence[Pending]) -> list[dict[str, Any]]:
    """The intent journal's entries: interrupted removals the next cycle puts right."""
    return [
        {
            "kind": p.intent.kind,
            "id": p.intent.object_id,
            "name": p.intent.name,
            "action": p.intent.action,
            "reason": p.intent.reason,
            "started_at": iso(p.intent.started_at),
            "pid": p.intent.pid,
            "tags": list(p.intent.tags),
            "digests": list(p.intent.digests),
            "present": p.present,
            "missing_tags": list(p.missing_tags) if p.missing_tags is not None else None,
            "in_progress": p.in_progress,
        }
        for p in pending
    ]


# Interrupted removals a table names one by one; the rest are counted.


TABLE_PENDING = 10


def pending_lines(pending: Sequence[Pending]) -> list[str]:
    """One line per interrupted removal (the first few), for the tables."""
    lines = []
    for p in pending[:TABLE_PENDING]:
        what = (
            f"removal in progress (pid {p.intent.pid})"
            if p.in_progress
            else "interrupted removal pending"
        )
        head = f"{what}: {p.intent.kind} {short_id(p.intent.object_id)}"
        head += f" ({visible(tags_text(p.intent.tags) if p.intent.tags else p.intent.name)})"
        if p.present is False:
            state = f"the {p.intent.kind} is gone (the removal had finished)"
        elif p.intent.kind != "image":
            state = "not removed yet"
        elif p.missing_tags is None:
            state = f"{len(p.intent.tags)} tags recorded"
        else:
            state = f"{len(p.missing_tags)} of {len(p.intent.tags)} tags missing"
        if p.present is False:
            then = "records it"
        elif p.intent.kind == "image":
            then = "puts every tag back, then removes it if it is still planned"
        else:
            then = "puts it right"
        lines.append(f"{head}: {state}; the next `nodegc once` or `nodegc run` {then}")
    if len(pending) > TABLE_PENDING:
        more = len(pending) - TABLE_PENDING
        lines.append(f"+{more} more interrupted removals (see --output json)")
    return lines
