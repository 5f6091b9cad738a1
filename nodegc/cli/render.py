"""Plans and cycle reports as JSON (a stable contract) and as the `report` and `once` pages for
people, and the kubelet's FreeDiskSpaceFailed line in nodegc's words.

The pieces of a page live beside it: `tables.py` (the columns and rows of each kind of decision),
`summaries.py` (the lines about what image GC and the build cache hold and ask for),
`pending.py` (interrupted removals of the intent journal), `filesystems.py` (one line per
filesystem)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from nodegc.cli.filesystems import (
    filesystem_json,
    filesystem_line,
    filesystem_lines,
    filesystems_json,
)
from nodegc.cli.pending import pending_json, pending_lines
from nodegc.cli.safe import visible, visible_lines
from nodegc.cli.summaries import (
    build_cache_summary,
    image_summary,
    projected_inode_usage,
    target_text,
)
from nodegc.cli.tables import (
    CONTAINER_HEADERS,
    IMAGE_HEADERS,
    build_cache_section,
    container_rows,
    image_rows,
    outcome_text,
    section,
)
from nodegc.collect.cycle import CycleReport
from nodegc.collect.intents import Pending
from nodegc.model import (
    Action,
    BuildCacheDecision,
    BuildCachePlan,
    ContainerDecision,
    FilesystemStats,
    ImageDecision,
    ImagePlan,
    Plan,
    RemovalResult,
    short_id,
)
from nodegc.policy.filesystems import short_text
from nodegc.units import human_bytes, iso

__all__ = [
    "build_cache_json",
    "container_decision_json",
    "cycle_json",
    "cycle_table",
    "free_disk_space_failed",
    "image_decision_json",
    "image_plan_json",
    "interrupted_json",
    "pending_json",
    "pending_lines",
    "plan_json",
    "plan_table",
]


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
def plan_table(plan: Plan, kubelet_line: str | None = None) -> str:
    """The report for people; `kubelet_line` (what the kubelet would do) follows the summary."""
    now = plan.now
    parts = [
        "nodegc report — a dry run: nothing is changed",
        *filesystem_lines(plan),
        image_summary(plan.images, plan.filesystem),
        *([line] if (line := build_cache_summary(plan.build_cache)) else []),
        *([kubelet_line] if kubelet_line else []),
        *build_cache_section(plan.build_cache, now, None),
        "",
        section(
            "Containers",
            plan.containers.decisions,
            CONTAINER_HEADERS,
            container_rows(plan.containers.decisions, now, None),
        ),
        "",
        section(
            "Images",
            plan.images.decisions,
            IMAGE_HEADERS,
            image_rows(plan.images.decisions, now, None),
        ),
    ]
    return visible_lines("\n".join(parts))


def cycle_table(report: CycleReport) -> str:
    """`once` for people: the filesystems before, the summaries, a table per kind with each
    decision's outcome, what went past the plan, the filesystems after and the totals."""
    now = report.plan.now
    outcomes = _cycle_outcomes(report)
    title = "nodegc once --dry-run — nothing is changed" if report.dry_run else "nodegc once"
    first, *others = filesystem_lines(report.plan)
    parts = [title, "before: " + first, *others]
    parts.append(image_summary(report.image_plan, report.filesystem_before))
    if line := build_cache_summary(report.build_cache_plan):
        parts.append(line)
    parts += build_cache_section(report.build_cache_plan, now, outcomes)
    parts += [
        "",
        section(
            "Containers",
            report.plan.containers.decisions,
            [*CONTAINER_HEADERS, "OUTCOME"],
            container_rows(report.plan.containers.decisions, now, outcomes),
        ),
        "",
        section(
            "Images",
            report.image_plan.decisions,
            [*IMAGE_HEADERS, "OUTCOME"],
            image_rows(report.image_plan.decisions, now, outcomes),
        ),
    ]
    parts += _past_the_plan_lines(report)
    parts += _after_lines(report)
    if report.ran_images and not report.target_reached:
        parts.append(free_disk_space_failed(report))
    return visible_lines("\n".join(parts))


def _cycle_outcomes(report: CycleReport) -> dict[str, str]:
    """The OUTCOME cell of each object: what its removal did, "not needed (target reached)",
    or, in a dry run, "would remove" for every planned removal."""
    if report.dry_run:
        outcomes = {}
        for d in (*report.plan.containers.removals, *report.image_plan.removals):
            key = d.container.id if isinstance(d, ContainerDecision) else d.image.id
            outcomes[key] = "would remove"
        for c in report.build_cache_plan.removals:
            outcomes[c.record.id] = "would remove"
        return outcomes
    outcomes = {r.id: outcome_text(r) for r in report.results}
    outcomes.update(
        {
            i: "not needed (target reached)"
            for i in report.images_not_needed | report.build_cache_not_needed
        }
    )
    return outcomes


def _past_the_plan_lines(report: CycleReport) -> list[str]:
    """Pod sandboxes removed after their containers, and images removed in later passes (not
    in the first plan's decisions)."""
    parts = []
    sandboxes = [r for r in report.container_results if r.kind == "sandbox"]
    if sandboxes:
        parts.append("Pod sandboxes (after their containers):")
        parts += [
            f"  {short_id(r.id)} {visible(r.name)} {r.reason} {visible(outcome_text(r))}"
            for r in sandboxes
        ]
    listed = {d.image.id for d in report.image_plan.decisions}
    extra = [r for r in report.image_results if r.id not in listed]
    if extra:
        parts.append("Images removed past the plan:")
        parts += [f"  {short_id(r.id)} {visible(r.name)} {visible(outcome_text(r))}" for r in extra]
    return parts


def _after_lines(report: CycleReport) -> list[str]:
    """The filesystems measured after the cycle, and (not for a dry run) the totals."""
    parts = []
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
    return parts


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
            f"needed to reach {target_text(p)}"
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
