"""Where the space is, for people and for JSON: each filesystem's bytes by kind, the rest, and
the biggest holders by name (engine names shown escaped, `safe.visible`)."""

from __future__ import annotations

from typing import Any

from nodegc.cli.safe import visible
from nodegc.collect.usage import SpaceReport
from nodegc.holders import Holder, HolderKind
from nodegc.units import human_bytes

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

_WHAT = {
    HolderKind.CONTAINERS_RUNNING: "writable layer of container",
    HolderKind.CONTAINERS_DEAD: "writable layer of dead container",
    HolderKind.LOGS: "log of container",
    HolderKind.VOLUMES_NAMED: "volume",
    HolderKind.VOLUMES_ANONYMOUS_UNUSED: "anonymous volume",
}


def holder_json(h: Holder) -> dict[str, Any]:
    return {
        "kind": str(h.kind),
        "name": h.name,
        "size_bytes": h.size_bytes,
        "removable": h.removable,
        "path": h.path or None,
        "pod": h.pod,
    }


def space_json(space: SpaceReport | None) -> list[dict[str, Any]] | None:
    """`breakdown` of `report --output json`: one object per measured filesystem; None where
    the runtime cannot say."""
    if space is None:
        return None
    return [
        {
            "path": b.path,
            "roles": [str(r) for r in b.roles],
            "used_bytes": b.used_bytes,
            "bytes": {str(kind): size for kind, size in b.by_kind},
            "biggest": [holder_json(h) for h in b.biggest],
        }
        for b in space.filesystems
    ]


def describe(h: Holder) -> str:
    """One holder in words, escaped: "log of container web-1 (pod default/web) 100.0 MiB"."""
    if h.kind is HolderKind.REST:
        return f"{h.name} {human_bytes(h.size_bytes)}"
    what = _WHAT.get(h.kind)
    text = f"{what} {visible(h.name)}" if what else visible(h.name)
    if h.pod:
        text += f" (pod {visible(h.pod)})"
    if h.path:
        text += f" at {visible(h.path)}"
    return f"{text} {human_bytes(h.size_bytes)}"


def space_lines(space: SpaceReport | None) -> list[str]:
    """The table's section: per filesystem, its kinds and its biggest holders."""
    if space is None:
        return ["Where the space is: the runtime cannot say (Docker only)"]
    lines = []
    for b in space.filesystems:
        roles = ", ".join(str(r) for r in b.roles) or "everything"
        lines.append(
            f"Where the space is on {visible(b.path)} ({roles}): {human_bytes(b.used_bytes)} used"
        )
        for kind, size in b.by_kind:
            lines.append(f"  {_LABELS[kind]:<28} {human_bytes(size):>12}")
        for h in b.biggest:
            lines.append(f"  biggest: {describe(h)}")
    return lines


def untouchable_text(space: SpaceReport | None, path: str | None = None) -> str:
    """ "; the biggest holders nodegc may not remove: A, B, C" (or "")."""
    if space is None:
        return ""
    held = space.untouchable(path)
    if not held:
        return ""
    return "; the biggest holders nodegc may not remove: " + ", ".join(describe(h) for h in held)
