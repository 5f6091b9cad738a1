"""`nodegc history`: the audit record for people (a table) or machines (a JSON array).

The JSON array and the table's rows are the removal attempts; the records of image GC missing its
target (`"event": "target-missed"`) follow the table as lines of their own (never counted as
attempts), and are in `audit.jsonl` for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from nodegc.cli.exits import EXIT_OK, EXIT_USAGE
from nodegc.cli.safe import visible, visible_lines
from nodegc.cli.tables import table
from nodegc.clock import Clock, utcnow
from nodegc.config import Settings
from nodegc.durations import format_duration, humanize_age
from nodegc.model import short_id
from nodegc.state.audit import TARGET_MISSED, audit_path, is_removal, read_audit
from nodegc.state.files import StateError
from nodegc.units import human_bytes, iso

HEADERS = ["TIME", "AGO", "KIND", "OUTCOME", "REASON", "ID", "NAME", "SIZE", "DETAIL"]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _cell(value: Any, limit: int = 80) -> str:
    """A cell: control characters shown as escapes (a newline in a label forges no row)."""
    text = visible(value if value is not None else "").strip() or "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_table(entries: Iterable[Mapping[str, Any]], now: datetime) -> str:
    """Entries as a table (time, ago, kind, outcome, reason, short id, name, size, detail) with a
    one-line summary; "No removals recorded." when there are none."""
    rows = []
    removed = skipped = failed = gone = freed = 0
    for e in entries:
        if not is_removal(e):  # a record of its own kind (`missed_lines`)
            continue
        parsed = datetime.fromisoformat(str(e.get("time")))
        size = _int(e.get("size_bytes"))
        outcome = str(e.get("outcome", ""))
        if outcome == "removed":
            removed += 1
            if e.get("kind") in ("image", "build-cache"):
                freed += size
        elif outcome == "skipped":
            skipped += 1
        elif outcome == "failed":
            failed += 1
        elif outcome == "gone":
            gone += 1
        rows.append(
            [
                iso(parsed.replace(microsecond=0)) or "-",
                f"{humanize_age(now - parsed)} ago",
                _cell(e.get("kind")),
                _cell(outcome),
                _cell(e.get("reason")),
                short_id(str(e.get("id", ""))) or "-",
                _cell(e.get("name"), 60),
                human_bytes(size) if size else "-",
                _cell(e.get("detail")),
            ]
        )
    if not rows:
        return "No removals recorded."
    summary = (
        f"{len(rows)} attempt{'s' * (len(rows) != 1)}: {removed} removed "
        f"({human_bytes(freed)} of images and build cache), {skipped} skipped, {failed} failed"
    )
    if gone:
        summary += f", {gone} gone (removed by someone else)"
    return visible_lines(table(HEADERS, rows) + "\n" + summary)


def missed_lines(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per record of image GC missing its target: when, where, freed of needed, and
    the biggest holders nodegc may not touch (engine text escaped)."""
    lines = []
    for e in entries:
        if e.get("event") != TARGET_MISSED:
            continue
        holders = ", ".join(
            f"{_cell(h.get('kind'))} {_cell(h.get('name'), 60)} {human_bytes(_int(h.get('bytes')))}"
            for h in e.get("holders") or []
            if isinstance(h, dict)
        )
        lines.append(
            f"{_cell(e.get('time'))} target missed on {_cell(e.get('filesystem'))}: freed "
            f"{human_bytes(_int(e.get('freed_bytes')))} of "
            f"{human_bytes(_int(e.get('needed_bytes')))} needed; "
            f"the biggest holders nodegc may not touch: {holders or 'unknown'}"
        )
    return lines


def history_command(
    settings: Settings, since: timedelta | None, output: str, *, clock: Clock = utcnow
) -> int:
    """`nodegc history`: print the audit record (a table, or a JSON array with `output="json"`).

    Returns 0; a missing audit file is an empty history. An unreadable one is one line on
    stderr and 2.
    """
    path = audit_path(settings)
    now = clock()
    cutoff = now - since if since is not None else None
    try:
        entries, skipped = read_audit(path, cutoff)
    except (OSError, StateError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        print(f"nodegc: cannot read the audit record {path}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    if skipped:
        print(
            f"nodegc: skipped {skipped} torn or unreadable line{'s' * (skipped != 1)} in {path}*",
            file=sys.stderr,
        )
    removals = [e for e in entries if is_removal(e)]
    missed = missed_lines(entries)
    if output == "json":
        json.dump(removals, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif removals or missed:
        print(render_table(removals, now) if removals else "No removals recorded.")
        if missed:
            print(visible_lines("\n".join(["Targets missed:", *missed])))
    else:
        window = f" in the last {format_duration(since)}" if since is not None else ""
        print(f"No removals recorded{window} ({path}).")
    return EXIT_OK
