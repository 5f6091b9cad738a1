"""The tables of `report` and `once` for people: aligned columns, every cell made visible
(`safe.visible`), and the rows of each kind of decision (images, containers, build cache) with
an optional OUTCOME column."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from nodegc.cli.safe import visible
from nodegc.durations import humanize_age
from nodegc.model import (
    Action,
    BuildCacheDecision,
    BuildCachePlan,
    Container,
    ContainerDecision,
    ImageDecision,
    RemovalResult,
    short_id,
)
from nodegc.units import human_bytes


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Aligned columns; every cell shown with its control characters escaped (`safe.visible`)."""
    rows = [[visible(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def ago(now: datetime, when: datetime | None) -> str:
    return "never" if when is None else f"{humanize_age(now - when)} ago"


def stopped(now: datetime, c: Container) -> str:
    """How long ago a dead container stopped; "≥" while only a window is known (its end)."""
    return ago(now, c.stopped_at) if c.finish_known else f"≥ {ago(now, c.stopped_at)}"


# Tags a table line shows; the rest are counted ("+N more"). The JSON keeps every tag.
TABLE_TAGS = 3


def tags_text(tags: Sequence[str], shown: int = TABLE_TAGS) -> str:
    """A few tags for a table cell: "a:1,b:2,c:3 +297 more"; "<none>" for an untagged image."""
    if not tags:
        return "<none>"
    text = ",".join(tags[:shown])
    return f"{text} +{len(tags) - shown} more" if len(tags) > shown else text


def image_rows(
    decisions: Sequence[ImageDecision], now: datetime, outcomes: Mapping[str, str] | None
) -> list[list[str]]:
    rows = []
    for d in decisions:
        row = [
            str(d.action),
            str(d.reason),
            short_id(d.image.id),
            tags_text(d.image.tags),
            human_bytes(d.image.size_bytes),
            human_bytes(d.frees_bytes) if d.action is Action.REMOVE else "-",
            ago(now, d.record.first_seen),
            ago(now, d.record.last_used),
        ]
        if outcomes is not None:
            row.append(outcomes.get(d.image.id, "kept" if d.action is Action.KEEP else "-"))
        rows.append(row)
    return rows


def container_rows(
    decisions: Sequence[ContainerDecision], now: datetime, outcomes: Mapping[str, str] | None
) -> list[list[str]]:
    rows = []
    for d in decisions:
        c = d.container
        row = [
            str(d.action),
            str(d.reason),
            short_id(c.id),
            c.name,
            str(c.state),
            d.evict_unit,
            stopped(now, c) if c.state.is_dead else "-",
        ]
        if outcomes is not None:
            row.append(outcomes.get(c.id, "kept" if d.action is Action.KEEP else "-"))
        rows.append(row)
    return rows


def build_cache_rows(
    decisions: Sequence[BuildCacheDecision], now: datetime, outcomes: Mapping[str, str] | None
) -> list[list[str]]:
    rows = []
    for d in decisions:
        r = d.record
        row = [
            str(d.action),
            str(d.reason),
            r.id[:12],
            r.type,
            r.describe(),
            human_bytes(r.size_bytes),
            human_bytes(d.frees_bytes) if d.action is Action.REMOVE else "-",
            ago(now, r.last_used),
            str(r.usage_count),
        ]
        if outcomes is not None:
            row.append(outcomes.get(r.id, "kept" if d.action is Action.KEEP else "-"))
        rows.append(row)
    return rows


BUILD_CACHE_HEADERS = [
    "ACTION", "REASON", "RECORD", "TYPE", "DESCRIPTION", "SIZE", "FREES", "LAST USED", "USES",
]  # fmt: skip


def build_cache_section(
    p: BuildCachePlan, now: datetime, outcomes: Mapping[str, str] | None
) -> list[str]:
    if not p.observed or not p.decisions:
        return []
    headers = BUILD_CACHE_HEADERS + (["OUTCOME"] if outcomes is not None else [])
    rows = build_cache_rows(p.decisions, now, outcomes)
    return ["", section("Build cache", p.decisions, headers, rows)]


# SIZE: the image's listed size (every layer it uses); FREES: what removing it frees in this plan.


IMAGE_HEADERS = ["ACTION", "REASON", "IMAGE", "TAGS", "SIZE", "FREES", "FIRST SEEN", "LAST USED"]


CONTAINER_HEADERS = ["ACTION", "REASON", "CONTAINER", "NAME", "STATE", "EVICT UNIT", "STOPPED"]


def section(title: str, decisions: Sequence[Any], headers: list[str], rows: list[list[str]]) -> str:
    removals = sum(1 for d in decisions if d.action is Action.REMOVE)
    head = f"{title}: {removals} to remove, {len(decisions) - removals} kept"
    return head + ("\n" + table(headers, rows) if rows else "")


def outcome_text(r: RemovalResult) -> str:
    return str(r.outcome) + (f" ({r.detail})" if r.detail else "")
