"""Where the space is, asked of the runtime: for `report`, and when image GC cannot reach its
target (never in a cycle below the thresholds: `/system/df` walks writable layers and volumes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nodegc.holders import Breakdown, Holder, HolderKind, Holdings
from nodegc.model import FilesystemStats, Snapshot
from nodegc.policy.breakdown import breakdown, full_usage_worth_asking, image_split, untouchable
from nodegc.runtime import Runtime, RuntimeError_, RuntimeUnavailable, cri_usage, docker_usage
from nodegc.runtime.docker_sizes import Seen, Walked, walk_containers
from nodegc.state.store import StateDir, StateError
from nodegc.units import human_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpaceReport:
    """The breakdown of each measured filesystem, and the holders it was made of."""

    filesystems: tuple[Breakdown, ...]
    holders: tuple[Holder, ...]

    def untouchable(self, path: str | None = None, n: int = 3) -> tuple[Holder, ...]:
        """The `n` biggest holders nodegc may not remove, on the filesystem at `path` (the
        first, the image filesystem, by default)."""
        for b in self.filesystems:
            if path is None or b.path == path:
                return untouchable(b, self.holders, n)
        return ()


class Prefetch:
    """The walk of a big Docker node's container directories (logs, writable layers), begun in
    a thread before the engine is asked for its listings (`report`: it runs while the engine
    answers them, which takes seconds at 20,000 containers) and taken by `explain`.

    What the walk learns that lasts (`docker_sizes.Seen`: each layer's mount id, the log names
    and empty layers of directories that have not changed since) is kept in the state directory
    (`walk.json`, when `save`) for the next walk, which then lists and opens only what changed:
    2 syscalls instead of 14 for a container whose directories did not."""

    def __init__(self, root: str, overlay2: bool, state: StateDir | None, save: bool) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="nodegc-walk")
        self._future = self._pool.submit(_walk, root, overlay2, state, save)
        self._pool.shutdown(wait=False)

    def result(self) -> Walked | None:
        try:
            return self._future.result()
        except OSError:
            return None


def _walk(root: str, overlay2: bool, state: StateDir | None, save: bool) -> Walked:
    kept = state.load_walk() if state is not None else {}
    seen = {cid: Seen(*rec) for cid, rec in kept.items()}
    walked = walk_containers(root, overlay2, seen=seen)
    unchanged = walked.seen.keys() == seen.keys() and all(
        walked.seen[cid] is record for cid, record in seen.items()
    )  # (the walk hands back the very record it was given where nothing changed)
    if state is not None and save and not unchanged:
        records = {cid: (s.mount, s.home, s.logs, s.empty) for cid, s in walked.seen.items()}
        try:
            state.save_walk(records)
        except StateError as exc:  # a cache: the next walk reads the directories again
            log.warning(
                "what the walk learnt not kept", extra={"path": str(state.path), "error": str(exc)}
            )
    return walked


def prefetch(
    runtime: Runtime, state: StateDir | None = None, save: bool = False
) -> Prefetch | None:
    """Begin the walk where the breakdown will need it (a dockerd node with more container
    directories than `/system/df` is worth asking for); None elsewhere, or if the engine cannot
    say where its data is (the observation that follows says why). `state`: where what the walk
    learnt is kept (`walk.json`; `save`: written back)."""
    try:
        found = docker_usage.prefetchable(runtime)
    except (RuntimeError_, OSError):
        return None
    if found is None or full_usage_worth_asking(found[2]):
        return None
    return Prefetch(found[0], found[1], state, save)


def explain(
    runtime: Runtime,
    filesystems: Sequence[FilesystemStats],
    snapshot: Snapshot | None = None,
    early: Prefetch | None = None,
) -> SpaceReport | None:
    """The breakdown (Docker, Podman: `runtime.docker_usage`; CRI: `runtime.cri_usage`), or None
    where the runtime cannot say or the engine failed to answer (said in the log: an
    explanation is never worth failing a command for). `/system/df` sizes every writable layer
    and volume (21 s at 5,000 images and 20,000 containers on dockerd 20.10): past
    `policy.breakdown.FULL_USAGE_MAX_CONTAINERS` containers in `snapshot`, dockerd's breakdown
    is made from the snapshot and cheaper answers (`runtime.docker_sizes`); if the engine
    still does not answer in time, the report goes on without a breakdown."""
    try:
        images: tuple[Holder, ...] | None = None
        found: Holdings | None = None
        if snapshot is not None:
            images = _images(snapshot)
            found = _lean(runtime, snapshot, early, images)
        found = (
            found or docker_usage.space_holders(runtime, images) or cri_usage.space_holders(runtime)
        )
    except RuntimeUnavailable as exc:
        log.warning(
            "where the space is: the engine did not answer in time; no breakdown this time",
            extra={"object": "filesystems", "error": str(exc)},
        )
        return None
    except RuntimeError_ as exc:
        log.warning(
            "where the space is: unavailable",
            extra={"object": "filesystems", "error": str(exc)},
        )
        return None
    if found is None:
        return None
    spread = breakdown(filesystems, found.holders, unknown=found.unknown)
    return SpaceReport(spread, found.holders)


def _images(snapshot: Snapshot) -> tuple[Holder, ...]:
    """The images in use and unused, split from the snapshot's layers (`policy.breakdown`)."""
    in_use, unused = image_split(snapshot.images, snapshot.containers, snapshot.layers)
    return (
        Holder(HolderKind.IMAGES_IN_USE, "images in use", in_use, False),
        Holder(HolderKind.IMAGES_UNUSED, "unused images", unused, True),
    )


def _lean(
    runtime: Runtime, snapshot: Snapshot, early: Prefetch | None, images: tuple[Holder, ...]
) -> Holdings | None:
    """dockerd's holders without `/system/df` on a node with many containers; None elsewhere."""
    if full_usage_worth_asking(len(snapshot.containers)):
        return None
    known = docker_usage.Known(images, snapshot.containers, snapshot.disk_usage.build_cache)
    walked = early.result() if early is not None else None
    return docker_usage.lean_space_holders(runtime, known, walked)


_WHAT = {
    HolderKind.CONTAINERS_RUNNING: "writable layer of container",
    HolderKind.CONTAINERS_DEAD: "writable layer of dead container",
    HolderKind.LOGS: "log of container",
    HolderKind.VOLUMES_NAMED: "volume",
    HolderKind.VOLUMES_ANONYMOUS_UNUSED: "anonymous volume",
}


def describe(h: Holder, escape: Callable[[str], str] = str) -> str:
    """One holder in words: "log of container web (pod prod/web-0) at PATH 96.9 MiB"; engine
    text through `escape` (the command line's `visible`; JSON needs none)."""
    if h.kind is HolderKind.REST:
        return f"{h.name} {human_bytes(h.size_bytes)}"
    what = _WHAT.get(h.kind)
    text = f"{what} {escape(h.name)}" if what else escape(h.name)
    if h.pod:
        text += f" (pod {escape(h.pod)})"
    if h.path:
        text += f" at {escape(h.path)}"
    return f"{text} {human_bytes(h.size_bytes)}"


def untouchable_note(
    space: SpaceReport | None, path: str | None = None, escape: Callable[[str], str] = str
) -> str:
    """ "; the biggest holders nodegc may not remove: A, B, C" (or "" where nothing is known)."""
    held = space.untouchable(path) if space is not None else ()
    if not held:
        return ""
    return "; the biggest holders nodegc may not remove: " + ", ".join(
        describe(h, escape) for h in held
    )


def target_missed(
    space: SpaceReport | None, path: str, needed_bytes: int, freed_bytes: int
) -> dict[str, Any]:
    """The audit record's fields when image GC missed its target on `path` (`"event":
    "target-missed"`): what was needed and freed (measured), and the three biggest holders
    nodegc may not touch there (empty where the runtime cannot say)."""
    held = space.untouchable(path) if space is not None else ()
    return {
        "filesystem": path,
        "needed_bytes": needed_bytes,
        "freed_bytes": freed_bytes,
        "holders": [
            {"kind": str(h.kind), "name": h.name, "bytes": h.size_bytes, "path": h.path or None}
            for h in held
        ],
    }


def missed_records(report: Any, space: SpaceReport | None) -> list[dict[str, Any]]:
    """The `target-missed` audit records of a cycle (a `CycleReport`): the image filesystem's
    when image GC missed its target, and each other filesystem left short; none for a dry run."""
    if report.dry_run:
        return []
    out = []
    if not report.image_target_reached:
        fs = report.images_after or report.filesystem_after or report.filesystem_before
        out.append(
            target_missed(space, fs.path, report.image_plan.bytes_to_free, report.disk_bytes_freed)
        )
    for plan, after in report.filesystems_short:
        freed = max(0, after.available_bytes - plan.filesystem.available_bytes)
        out.append(target_missed(space, after.path, plan.bytes_to_free, freed))
    return out


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
    """`breakdown` in JSON (`report`, `once`, the daemon's /status): one object per measured
    filesystem; None where the runtime cannot say."""
    if space is None:
        return None
    return [
        {
            "path": b.path,
            "roles": [str(r) for r in b.roles],
            "used_bytes": b.used_bytes,
            "bytes": {str(kind): size for kind, size in b.sizes().items()},
            "biggest": [holder_json(h) for h in b.biggest],
        }
        for b in space.filesystems
    ]
