"""Where the space is, for people and for JSON: each filesystem's bytes by kind, the rest, and
the biggest holders by name (engine names shown escaped, `safe.visible`)."""

from __future__ import annotations

from http.client import HTTPException
from typing import Any

from nodegc.cli.safe import visible
from nodegc.cli.space_status import fill_rate_line, fill_rate_lines
from nodegc.collect import usage
from nodegc.collect.usage import SpaceReport, space_json
from nodegc.holders import Holder, HolderKind
from nodegc.units import human_bytes

__all__ = [
    "daemon_fill_rate",
    "daemon_fill_rates",
    "describe",
    "fill_rate_line",
    "fill_rate_lines",
    "space_json",
    "space_lines",
    "untouchable_text",
]

_LABELS = {
    HolderKind.IMAGES_IN_USE: "images in use",
    HolderKind.IMAGES_UNUSED: "images unused",
    HolderKind.BUILD_CACHE_IN_USE: "build cache in use",
    HolderKind.BUILD_CACHE_RECLAIMABLE: "build cache reclaimable",
    HolderKind.CONTAINERS_RUNNING: "writable layers, running",
    HolderKind.CONTAINERS_DEAD: "writable layers, dead",
    HolderKind.LOGS: "container logs",
    HolderKind.VOLUMES_NAMED: "volumes, named or in use",
    HolderKind.VOLUMES_ANONYMOUS_UNUSED: "volumes, anonymous unused",
    HolderKind.REST: "rest (not the engine's)",
    HolderKind.RESERVED: "reserved by the filesystem",
}


def describe(h: Holder) -> str:
    """One holder in words, engine text escaped."""
    return usage.describe(h, visible)


def space_lines(space: SpaceReport | None) -> list[str]:
    """The table's section: per filesystem, its kinds and its biggest holders."""
    if space is None:
        return ["Where the space is: the runtime cannot say"]
    lines = []
    for b in space.filesystems:
        roles = ", ".join(str(r) for r in b.roles) or "everything"
        lines.append(
            f"Where the space is on {visible(b.path)} ({roles}): {human_bytes(b.used_bytes)} used"
        )
        for kind, size in b.sizes().items():
            shown = "unknown" if size is None else human_bytes(size)
            lines.append(f"  {_LABELS[kind]:<28} {shown:>12}")
        for h in b.biggest:
            lines.append(f"  biggest: {describe(h)}")
    return lines


def untouchable_text(space: SpaceReport | None, path: str | None = None) -> str:
    """ "; the biggest holders nodegc may not remove: A, B, C" (or ""), escaped."""
    return usage.untouchable_note(space, path, visible)


def daemon_fill_rates(
    address: str, enabled: bool
) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """The daemon's last fill-rate estimates for `report`: the image filesystem's (its /status
    `details.fill_rate`) and every watched filesystem's (`details.fill_rates`); None where no
    daemon answers (quickly: `report` does not wait for one)."""
    if not enabled:
        return None, None
    from nodegc.cli.status import fetch_status

    try:
        details = fetch_status(address, timeout=1.0).get("details") or {}
    except (OSError, ValueError, HTTPException):
        return None, None
    if not isinstance(details, dict):
        return None, None
    rate, rates = details.get("fill_rate"), details.get("fill_rates")
    if not isinstance(rates, list):  # a daemon from before fill_rates: its one estimate
        rates = [rate] if isinstance(rate, dict) else None
    else:
        rates = [r for r in rates if isinstance(r, dict)]
    return (rate if isinstance(rate, dict) else None), rates


def daemon_fill_rate(address: str, enabled: bool) -> dict[str, Any] | None:
    """The daemon's last estimate of the image filesystem's fill rate (`daemon_fill_rates`)."""
    return daemon_fill_rates(address, enabled)[0]
