"""`nodegc history`: the audit record for people (a table) or machines (a JSON array)."""

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
from nodegc.state.audit import audit_path, read_audit
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
    if output == "json":
        json.dump(entries, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif entries:
        print(render_table(entries, now))
    else:
        window = f" in the last {format_duration(since)}" if since is not None else ""
        print(f"No removals recorded{window} ({path}).")
    return EXIT_OK
