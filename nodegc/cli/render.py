"""Plans and cycle reports as JSON (a stable contract) and as tables for people."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from nodegc.cli.filesystems import (
    filesystem_json,
    filesystem_line,
    filesystem_lines,
    filesystems_json,
)
from nodegc.cli.safe import visible, visible_lines
from nodegc.collect.cycle import CycleReport
from nodegc.collect.intents import Pending
from nodegc.durations import humanize_age
from nodegc.model import (
    Action,
    BuildCacheDecision,
    BuildCachePlan,
    Container,
    ContainerDecision,
    FilesystemStats,
    ImageDecision,
    ImagePlan,
    Plan,
    RemovalResult,
    short_id,
)
from nodegc.policy.filesystems import short_text
from nodegc.policy.targets import MINIMUM_FREE
from nodegc.units import human_bytes, iso


# -- JSON ---------------------------------------------------------------------------------------
def image_decision_json(d: ImageDecision) -> dict[str, Any]:
    return {
        "id": d.image.id,
        "action": str(d.action),
        "reason": str(d.reason),
        "tags": list(d.image.tags),
        "digests": list(d.image.digests),
        "size_bytes": d.image.size_bytes,
        "unique_size_bytes": d.unique_size_bytes,
        "frees_bytes": d.frees_bytes,
        "parent_id": d.image.parent_id or None,
        "first_seen": iso(d.record.first_seen),
        "last_used": iso(d.record.last_used),
        "used_by": list(d.used_by),
    }


def container_decision_json(d: ContainerDecision) -> dict[str, Any]:
    c = d.container
    return {
        "id": c.id,
        "action": str(d.action),
        "reason": str(d.reason),
        "name": c.name,
        "image_id": c.image_id,
        "evict_unit": d.evict_unit,
        "pod": c.pod,
        "state": str(c.state),
        "created": iso(c.created),
        "finished_at": iso(c.finished_at),
        # Set while only a window is known (no decision depended on the exact time).
        "finished_after": iso(c.finished_after) if not c.finish_known else None,
        "finished_before": iso(c.finished_before) if not c.finish_known else None,
    }


def image_plan_json(p: ImagePlan, fs: FilesystemStats) -> dict[str, Any]:
    return {
        "trigger": p.trigger or None,
        "high_threshold_percent": p.high_threshold_percent,
        "low_threshold_percent": p.low_threshold_percent,
        "target_free_bytes": p.target_free_bytes,
        "available_bytes": fs.available_bytes,
        "usage_percent": p.usage_percent,
        "bytes_to_free": p.bytes_to_free,
        "bytes_planned": p.bytes_planned,
        "projected_usage_percent": fs.usage_percent_after(p.freed_before + p.bytes_planned),
        "inode_usage_percent": p.inode_usage_percent,
        "inode_high_threshold_percent": p.inode_high_threshold_percent,
        "inode_low_threshold_percent": p.inode_low_threshold_percent,
        "inodes_to_free": p.inodes_to_free,
        "projected_inode_usage_percent": projected_inode_usage(p, fs),
        "decisions": [image_decision_json(d) for d in p.decisions],
    }


def build_cache_decision_json(d: BuildCacheDecision) -> dict[str, Any]:
    r = d.record
    return {
        "id": r.id,
        "type": r.type,
        "description": r.description,
        "action": str(d.action),
        "reason": str(d.reason),
        "size_bytes": r.size_bytes,
        "frees_bytes": d.frees_bytes,
        "last_used": iso(r.last_used),
        "usage_count": r.usage_count,
    }


def build_cache_json(p: BuildCachePlan) -> dict[str, Any]:
    """`bytes_reclaimable` is null when the build cache was not looked at (below the thresholds
    with no maximum age, build cache GC off, or an engine without one)."""
    return {
        "bytes_reclaimable": p.bytes_reclaimable if p.observed else None,
        "decisions": [build_cache_decision_json(d) for d in p.decisions],
    }


def projected_inode_usage(p: ImagePlan, fs: FilesystemStats) -> int | None:
    """Inode usage once the planned removals are done; None where the runtime cannot tell
    per-layer inode counts (Docker, CRI): the closed loop measures instead."""
    planned = p.inodes_planned
    if planned is None:
        return None
    if fs.inodes_total <= 0:
        return 0
    free = min(fs.inodes_total, fs.inodes_free + planned)
    return 100 - (free * 100) // fs.inodes_total


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "generated_at": iso(plan.now),
        "dry_run": True,
        "filesystem": filesystem_json(plan.filesystem),
        "images": image_plan_json(plan.images, plan.filesystem),
        "containers": {
            "decisions": [container_decision_json(d) for d in plan.containers.decisions]
        },
        "build_cache": build_cache_json(plan.build_cache),
        "filesystems": filesystems_json(plan),
    }


def _with_outcomes(
    decisions: list[dict[str, Any]],
    results: Mapping[str, RemovalResult],
    dry_run: bool,
    not_needed: Collection[str] = (),
) -> list[dict[str, Any]]:
    for d in decisions:
        r = results.get(d["id"])
        if d["action"] == Action.KEEP and r is not None and not dry_run:
            # Taken past the plan: the measured disk had not come down to the target yet.
            d["action"], d["reason"] = str(Action.REMOVE), str(r.reason)
            d["outcome"], d["detail"] = str(r.outcome), r.detail or "past the plan"
        elif d["action"] == Action.KEEP:
            d["outcome"], d["detail"] = "kept", ""
        elif d["id"] in not_needed:
            d["outcome"], d["detail"] = "not-needed", "the measured disk had reached the target"
        elif dry_run:
            d["outcome"], d["detail"] = "would-remove", ""
        elif r is None:
            d["outcome"], d["detail"] = "not-attempted", ""
        else:
            d["outcome"], d["detail"] = str(r.outcome), r.detail
    return decisions


def _cache_with_outcomes(
    decisions: list[dict[str, Any]],
    results: Mapping[str, RemovalResult],
    dry_run: bool,
    not_needed: Collection[str] = (),
) -> list[dict[str, Any]]:
    """As `_with_outcomes`; a record the plan kept that the closed loop removed anyway (the disk
    had not come back as planned, or its image went) shows the removal it had."""
    for d in decisions:
        r = results.get(d["id"])
        if r is not None and not dry_run:
            d["action"], d["reason"] = str(Action.REMOVE), str(r.reason)
            d["frees_bytes"] = r.size_bytes
            d["outcome"], d["detail"] = str(r.outcome), r.detail
    return _with_outcomes(decisions, results, dry_run, not_needed)


def cycle_json(report: CycleReport) -> dict[str, Any]:
    by_id = {r.id: r for r in report.results}
    fs = report.filesystem_before
    images = image_plan_json(report.image_plan, fs)
    images["decisions"] = _with_outcomes(
        images["decisions"], by_id, report.dry_run, report.images_not_needed
    )
    for d in images["decisions"]:
        r = by_id.get(d["id"])
        # What this removal let go of: its layers no remaining image holds (measured in total).
        d["freed_bytes"] = r.size_bytes if r is not None and not report.dry_run else 0
    images["bytes_freed"] = report.image_bytes_freed
    images["inodes_freed"] = report.image_inodes_freed
    images["target_reached"] = report.target_reached
    after = report.images_after
    images["usage_percent_after"] = after.usage_percent if after else None
    images["inode_usage_percent_after"] = after.inode_usage_percent if after else None
    # Images removed in later passes (after a skip) are not in the first plan's decisions.
    listed = {d["id"] for d in images["decisions"]}
    images["extra_removals"] = [_result_json(r) for r in report.image_results if r.id not in listed]
    containers = [container_decision_json(d) for d in report.plan.containers.decisions]
    return {
        "generated_at": iso(report.plan.now),
        "dry_run": report.dry_run,
        "filesystem": filesystem_json(fs),
        "filesystem_after": filesystem_json(report.filesystem_after)
        if report.filesystem_after
        else None,
        "filesystems": filesystems_json(
            report.plan,
            report.filesystems_after
            or ((report.filesystem_after,) if report.filesystem_after else ()),
        ),
        "containers": {"decisions": _with_outcomes(containers, by_id, report.dry_run)},
        "images": images,
        "sandboxes": [_result_json(r) for r in report.container_results if r.kind == "sandbox"],
        "build_cache": _cycle_build_cache_json(report, by_id),
        "failures": len(report.failures),
        "not_attempted": report.not_attempted,
        "error": report.error,
    }


def _cycle_build_cache_json(
    report: CycleReport, by_id: Mapping[str, RemovalResult]
) -> dict[str, Any]:
    plan = report.build_cache_plan
    data = build_cache_json(plan)
    data["decisions"] = _cache_with_outcomes(
        data["decisions"], by_id, report.dry_run, report.build_cache_not_needed
    )
    return data


def interrupted_json(
    report: CycleReport | None, error: str, pending: Sequence[Pending]
) -> dict[str, Any]:
    """`once --output json` when the cycle stopped short (exit 3): what was done before."""
    if report is not None:
        data = cycle_json(report)
    else:  # stopped before the first plan: nothing was attempted
        data = {"dry_run": False, "containers": {"decisions": []}, "images": None,
                "sandboxes": [], "failures": 0, "not_attempted": 0}  # fmt: skip
    data["error"] = error
    data["pending_intents"] = pending_json(pending)
    return data


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


def _result_json(r: RemovalResult) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "id": r.id,
        "name": r.name,
        "reason": str(r.reason),
        "outcome": str(r.outcome),
        "detail": r.detail,
        "size_bytes": r.size_bytes,
    }


# -- tables -------------------------------------------------------------------------------------
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


def _ago(now: datetime, when: datetime | None) -> str:
    return "never" if when is None else f"{humanize_age(now - when)} ago"


def _stopped(now: datetime, c: Container) -> str:
    """How long ago a dead container stopped; "≥" while only a window is known (its end)."""
    return _ago(now, c.stopped_at) if c.finish_known else f"≥ {_ago(now, c.stopped_at)}"


def image_summary(p: ImagePlan, fs: FilesystemStats) -> str:
    n = len(p.removals)
    head = _image_head(p, fs)
    before = (
        f" after {human_bytes(p.freed_before)} of build cache and dead containers"
        if p.freed_before
        else ""
    )
    tail = (
        f"; planned {human_bytes(p.bytes_planned)} in {n} image{'s' * (n != 1)}{before}, "
        f"projected usage {fs.usage_percent_after(p.freed_before + p.bytes_planned)}%"
    )
    if p.inodes_to_free:
        projected = projected_inode_usage(p, fs)
        tail += (
            f"; inode usage {p.inode_usage_percent}% >= inode high threshold "
            f"{p.inode_high_threshold_percent}%: free {p.inodes_to_free:,} inodes to reach "
            f"{p.inode_low_threshold_percent}%, projected "
            + (f"{projected}%" if projected is not None else "unknown (measured while removing)")
        )
    if p.under_pressure and not p.target_reachable:
        tail += " — NOT ENOUGH removable images to reach the low threshold"
    return head + tail


# Tags a table line shows; the rest are counted ("+N more"). The JSON keeps every tag.
TABLE_TAGS = 3


def tags_text(tags: Sequence[str], shown: int = TABLE_TAGS) -> str:
    """A few tags for a table cell: "a:1,b:2,c:3 +297 more"; "<none>" for an untagged image."""
    if not tags:
        return "<none>"
    text = ",".join(tags[:shown])
    return f"{text} +{len(tags) - shown} more" if len(tags) > shown else text


def _image_rows(
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
            _ago(now, d.record.first_seen),
            _ago(now, d.record.last_used),
        ]
        if outcomes is not None:
            row.append(outcomes.get(d.image.id, "kept" if d.action is Action.KEEP else "-"))
        rows.append(row)
    return rows


def _container_rows(
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
            _stopped(now, c) if c.state.is_dead else "-",
        ]
        if outcomes is not None:
            row.append(outcomes.get(c.id, "kept" if d.action is Action.KEEP else "-"))
        rows.append(row)
    return rows


def build_cache_summary(p: BuildCachePlan) -> str | None:
    """One line about the build cache; None when it was not looked at or holds no record (an
    engine without BuildKit, such as Podman, lists none: silent)."""
    if not p.observed or not p.decisions:
        return None
    n = len(p.removals)
    return (
        f"Build cache: {len(p.decisions)} record{'s' * (len(p.decisions) != 1)}, "
        f"{human_bytes(p.bytes_reclaimable)} reclaimable; planned "
        f"{human_bytes(p.bytes_planned)} in {n} record{'s' * (n != 1)}"
    )


def _build_cache_rows(
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
            _ago(now, r.last_used),
            str(r.usage_count),
        ]
        if outcomes is not None:
            row.append(outcomes.get(r.id, "kept" if d.action is Action.KEEP else "-"))
        rows.append(row)
    return rows


BUILD_CACHE_HEADERS = [
    "ACTION", "REASON", "RECORD", "TYPE", "DESCRIPTION", "SIZE", "FREES", "LAST USED", "USES",
]  # fmt: skip


def _build_cache_section(
    p: BuildCachePlan, now: datetime, outcomes: Mapping[str, str] | None
) -> list[str]:
    if not p.observed or not p.decisions:
        return []
    headers = BUILD_CACHE_HEADERS + (["OUTCOME"] if outcomes is not None else [])
    rows = _build_cache_rows(p.decisions, now, outcomes)
    return ["", _section("Build cache", p.decisions, headers, rows)]


# SIZE: the image's listed size (every layer it uses); FREES: what removing it frees in this plan.
IMAGE_HEADERS = ["ACTION", "REASON", "IMAGE", "TAGS", "SIZE", "FREES", "FIRST SEEN", "LAST USED"]
CONTAINER_HEADERS = ["ACTION", "REASON", "CONTAINER", "NAME", "STATE", "EVICT UNIT", "STOPPED"]


def _section(
    title: str, decisions: Sequence[Any], headers: list[str], rows: list[list[str]]
) -> str:
    removals = sum(1 for d in decisions if d.action is Action.REMOVE)
    head = f"{title}: {removals} to remove, {len(decisions) - removals} kept"
    return head + ("\n" + table(headers, rows) if rows else "")


def plan_table(plan: Plan, kubelet_line: str | None = None) -> str:
    """The report for people; `kubelet_line` (what the kubelet would do) follows the summary."""
    now = plan.now
    parts = [
        "nodegc report — a dry run: nothing is changed",
        *filesystem_lines(plan),
        image_summary(plan.images, plan.filesystem),
        *([line] if (line := build_cache_summary(plan.build_cache)) else []),
        *([kubelet_line] if kubelet_line else []),
        *_build_cache_section(plan.build_cache, now, None),
        "",
        _section(
            "Containers",
            plan.containers.decisions,
            CONTAINER_HEADERS,
            _container_rows(plan.containers.decisions, now, None),
        ),
        "",
        _section(
            "Images",
            plan.images.decisions,
            IMAGE_HEADERS,
            _image_rows(plan.images.decisions, now, None),
        ),
    ]
    return visible_lines("\n".join(parts))


def _outcome_text(r: RemovalResult) -> str:
    return str(r.outcome) + (f" ({r.detail})" if r.detail else "")


def cycle_table(report: CycleReport) -> str:
    now = report.plan.now
    outcomes = {r.id: _outcome_text(r) for r in report.results}
    outcomes.update(
        {
            i: "not needed (target reached)"
            for i in report.images_not_needed | report.build_cache_not_needed
        }
    )
    if report.dry_run:
        outcomes = {}
        for d in (*report.plan.containers.removals, *report.image_plan.removals):
            key = d.container.id if isinstance(d, ContainerDecision) else d.image.id
            outcomes[key] = "would remove"
        for c in report.build_cache_plan.removals:
            outcomes[c.record.id] = "would remove"
    title = "nodegc once --dry-run — nothing is changed" if report.dry_run else "nodegc once"
    first, *others = filesystem_lines(report.plan)
    parts = [title, "before: " + first, *others]
    parts.append(image_summary(report.image_plan, report.filesystem_before))
    if line := build_cache_summary(report.build_cache_plan):
        parts.append(line)
    parts += _build_cache_section(report.build_cache_plan, now, outcomes)
    parts += [
        "",
        _section(
            "Containers",
            report.plan.containers.decisions,
            [*CONTAINER_HEADERS, "OUTCOME"],
            _container_rows(report.plan.containers.decisions, now, outcomes),
        ),
        "",
        _section(
            "Images",
            report.image_plan.decisions,
            [*IMAGE_HEADERS, "OUTCOME"],
            _image_rows(report.image_plan.decisions, now, outcomes),
        ),
    ]
    sandboxes = [r for r in report.container_results if r.kind == "sandbox"]
    if sandboxes:
        parts.append("Pod sandboxes (after their containers):")
        parts += [
            f"  {short_id(r.id)} {visible(r.name)} {r.reason} {visible(_outcome_text(r))}"
            for r in sandboxes
        ]
    listed = {d.image.id for d in report.image_plan.decisions}
    extra = [r for r in report.image_results if r.id not in listed]
    if extra:
        parts.append("Images removed past the plan:")
        parts += [
            f"  {short_id(r.id)} {visible(r.name)} {visible(_outcome_text(r))}" for r in extra
        ]
    if report.filesystems_after:
        first, *others = filesystem_lines(report.plan, report.filesystems_after)
        parts += ["", "after:  " + first, *others]
    elif report.filesystem_after is not None:
        parts += ["", "after:  " + filesystem_line(report.filesystem_after)]
    removed = [r for r in report.results if str(r.outcome) == "removed"]
    skipped = [r for r in report.results if str(r.outcome) == "skipped"]
    if not report.dry_run:
        parts.append(
            f"Removed {sum(r.kind == 'container' for r in removed)} containers, "
            f"{sum(r.kind == 'build-cache' for r in removed)} build cache records "
            f"({human_bytes(report.build_cache_bytes_freed)}) and "
            f"{sum(r.kind == 'image' for r in removed)} images "
            f"(image GC freed {human_bytes(report.disk_bytes_freed)}, measured); "
            f"{len(skipped)} skipped, {len(report.failures)} failed."
        )
    if report.ran_images and not report.target_reached:
        parts.append(free_disk_space_failed(report))
    return visible_lines("\n".join(parts))


def _image_head(p: ImagePlan, fs: FilesystemStats) -> str:
    """The header's first part: which rule triggered (`policy.targets`) and what it asks for."""
    if p.trigger == MINIMUM_FREE:
        return (
            f"Image GC: free space {human_bytes(fs.available_bytes)} is below minimum_free: "
            f"free {human_bytes(p.bytes_to_free)} to reach {_target_text(p)}"
        )
    if p.bytes_to_free:
        return (
            f"Image GC: usage {p.usage_percent}% >= high threshold {p.high_threshold_percent}%: "
            f"free {human_bytes(p.bytes_to_free)} to reach {_target_text(p)}"
        )
    if p.high_threshold_percent >= 100 and not p.target_free_bytes:
        return "Image GC by disk usage is off (high threshold 100%)"
    free = f" and free space {human_bytes(fs.available_bytes)} is not below minimum_free"
    return (
        f"Image GC: usage {p.usage_percent}% is below the high threshold "
        f"{p.high_threshold_percent}%{free if p.target_free_bytes else ''}: no space to free"
    )


def _target_text(p: ImagePlan) -> str:
    """What the byte targets ask for: "80%", "20.0 GiB free" or both."""
    parts = []
    if p.high_threshold_percent < 100:
        parts.append(f"{p.low_threshold_percent}%")
    if p.target_free_bytes:
        parts.append(f"{human_bytes(p.target_free_bytes)} free")
    return " and ".join(parts) or "the target"


def free_disk_space_failed(report: CycleReport) -> str:
    """The kubelet's FreeDiskSpaceFailed, in nodegc's words: what the disk shows now (measured),
    and what image GC freed of what the thresholds asked for."""
    fs = report.images_after or report.filesystem_after or report.filesystem_before
    verb = "would free" if report.dry_run else "freed"
    parts = [] if report.image_target_reached else _image_fs_short(report, fs, verb)
    parts += [short_text(plan, after) for plan, after in report.filesystems_short]
    return "FreeDiskSpaceFailed: " + "; ".join(parts)


def _image_fs_short(report: CycleReport, fs: FilesystemStats, verb: str) -> list[str]:
    p = report.image_plan
    freed = report.disk_bytes_freed
    parts = []
    if p.bytes_to_free or not p.inodes_to_free:
        parts.append(
            f"image filesystem {fs.path} is {fs.usage_percent}% used "
            f"({human_bytes(fs.used_bytes)} of {human_bytes(fs.capacity_bytes)}); deleting "
            f"build cache, unused images and dead containers {verb} {human_bytes(freed)} of the "
            f"{human_bytes(p.bytes_to_free)} "
            f"needed to reach {_target_text(p)}"
        )
    if p.inodes_to_free:
        inodes = (
            f"{report.image_inodes_freed:,}"
            if not report.dry_run
            else f"{p.inodes_planned:,}"
            if p.inodes_planned is not None
            else "an unknown number of"
        )
        parts.append(
            f"inodes of {fs.path} are {fs.inode_usage_percent}% used ({fs.used_inodes:,} of "
            f"{fs.inodes_total:,}); deleting unused images {verb} {inodes} inodes of the "
            f"{p.inodes_to_free:,} needed to reach {p.inode_low_threshold_percent}%"
        )
    return parts
