"""Rendering of the filesystems a cycle measured: the image filesystem's line and JSON (the
single-filesystem contract), and every filesystem with its roles where there are several."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nodegc.model import FilesystemPlan, FilesystemStats, Plan
from nodegc.policy.filesystems import filesystem_target_met
from nodegc.units import human_bytes


def filesystem_json(fs: FilesystemStats) -> dict[str, Any]:
    return {
        "path": fs.path,
        "capacity_bytes": fs.capacity_bytes,
        "available_bytes": fs.available_bytes,
        "usage_percent": fs.usage_percent,
        "inodes_total": fs.inodes_total,
        "inodes_free": fs.inodes_free,
    }


def _fs_json(fs: FilesystemStats) -> dict[str, Any]:
    return {
        **filesystem_json(fs),
        "used_bytes": fs.used_bytes,
        "inode_usage_percent": fs.inode_usage_percent,
    }


def _fs_plans(plan: Plan) -> tuple[FilesystemPlan, ...]:
    """The plan's filesystems (the image filesystem alone where the plan names no other)."""
    if plan.filesystems:
        return plan.filesystems
    i = plan.images
    return (
        FilesystemPlan(
            plan.filesystem,
            i.high_threshold_percent,
            i.low_threshold_percent,
            i.inode_high_threshold_percent,
            i.inode_low_threshold_percent,
            i.bytes_to_free,
            i.inodes_to_free,
            ("build-cache", "image", "container"),
            trigger=i.trigger,
            target_free_bytes=i.target_free_bytes,
        ),
    )


def filesystems_json(
    plan: Plan, after: Sequence[FilesystemStats] | None = None
) -> list[dict[str, Any]]:
    """Every filesystem measured: its roles, usage, what its thresholds ask for, what frees space
    there, and (`after`: a cycle that acted) its usage afterwards."""
    later = {fs.path: fs for fs in after or ()}
    out = []
    for p in _fs_plans(plan):
        fs = p.filesystem
        then = later.get(fs.path)
        out.append(
            {
                **_fs_json(fs),
                "roles": [str(r) for r in fs.roles],
                "high_threshold_percent": p.high_threshold_percent,
                "low_threshold_percent": p.low_threshold_percent,
                "under_pressure": p.under_pressure,
                "trigger": p.trigger or None,
                "target_free_bytes": p.target_free_bytes,
                "bytes_to_free": p.bytes_to_free,
                "inodes_to_free": p.inodes_to_free,
                "frees": list(p.frees),
                "containers_planned": len(p.containers),
                "after": _fs_json(then) if then is not None else None,
                # Where its thresholds asked, as measured after (None: not measured again).
                "target_reached": filesystem_target_met(then, plan=p) if then else None,
            }
        )
    return out


def filesystem_line(fs: FilesystemStats) -> str:
    return (
        f"Filesystem {fs.path}: {fs.usage_percent}% used "
        f"({human_bytes(fs.used_bytes)} of {human_bytes(fs.capacity_bytes)}, "
        f"{human_bytes(fs.available_bytes)} free; {fs.inodes_free:,} of {fs.inodes_total:,} "
        "inodes free)"
    )


def filesystem_lines(plan: Plan, after: Sequence[FilesystemStats] = ()) -> list[str]:
    """The image filesystem's line; where more than one filesystem was measured, a line for each
    with its roles, and for one without images under pressure what frees space there."""
    plans = _fs_plans(plan)
    if len(plans) == 1 and not after:
        return [filesystem_line(plan.filesystem)]
    later = {fs.path: fs for fs in after}
    lines = []
    for p in plans:
        fs = later.get(p.filesystem.path, p.filesystem)
        roles = ", ".join(str(r) for r in p.filesystem.roles) or "measured"
        lines.append(filesystem_line(fs).replace(f" {fs.path}:", f" {fs.path} ({roles}):", 1))
        if p.under_pressure and not p.images and not after:
            lines.append(
                f"  usage {fs.usage_percent}% >= high threshold {p.high_threshold_percent}%: "
                f"{len(p.containers)} dead containers may go (their writable layers, logs and "
                "anonymous volumes); removing images frees nothing here"
            )
    return lines
