"""Build cache GC policy: BuildKit's cache records, least recently used first, before images.

Pure: the engine's records, settings, the time and what the disk asks for in; a decision for every
record out. Facts it rests on (`docs/` and the reference notes):

- a record `InUse` is held by a build running now: never removed (the engine refuses anyway);
- a record `Shared` backs an image layer: removing it frees nothing while the image is there (and
  the engine keeps it without `all`), so it is kept as `shared`; when its image goes, the engine
  lists it unshared and it becomes a candidate like any other;
- a record with children stays until they go: a parent is as recently used, as much in use and
  as shared as its youngest, busiest descendant, and goes after its children (the removal order
  puts children first);
- a record used less than `minimum_age` ago stays (`too-young`), so a pipeline's next step finds
  its cache; with `maximum_age` set, records unused that long go whatever the disk (`age`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from nodegc.config import BuildCacheSettings
from nodegc.model import (
    Action,
    BuildCacheDecision,
    BuildCachePlan,
    BuildCacheRecord,
    Layer,
    Reason,
)

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Subtree:
    """A record seen with its descendants: what keeps it is what keeps any of them."""

    last_used: datetime | None
    depth: int
    in_use: bool
    shared: bool


def last_used(record: BuildCacheRecord) -> datetime | None:
    """When the record was last used (the engine's LastUsedAt), else made; None if neither."""
    return record.last_used or record.created_at


def bytes_reclaimable(records: Sequence[BuildCacheRecord]) -> int:
    """What removing every record neither in use nor shared would free (docker's figure)."""
    return sum(r.size_bytes for r in records if not r.in_use and not r.shared)


def _subtrees(records: Sequence[BuildCacheRecord]) -> Mapping[str, _Subtree]:
    by_id = {r.id: r for r in records}
    children: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r.parent is not None and r.parent in by_id and r.parent != r.id:
            children[r.parent].append(r.id)
    depth = _depths(records, by_id)
    out: dict[str, _Subtree] = {}

    def visit(record_id: str, path: frozenset[str]) -> _Subtree:
        if record_id in out:
            return out[record_id]
        r = by_id[record_id]
        used, in_use, shared = last_used(r), r.in_use, r.shared
        for child in children.get(record_id, ()):
            if child in path:
                continue
            sub = visit(child, path | {child})
            in_use, shared = in_use or sub.in_use, shared or sub.shared
            if sub.last_used is not None and (used is None or sub.last_used > used):
                used = sub.last_used
        out[record_id] = _Subtree(used, depth[record_id], in_use, shared)
        return out[record_id]

    for r in records:
        visit(r.id, frozenset({r.id}))
    return out


def _depths(
    records: Sequence[BuildCacheRecord], by_id: Mapping[str, BuildCacheRecord]
) -> dict[str, int]:
    """Each record's depth from its root, cut at cycles (an engine's answer is not trusted)."""
    depth: dict[str, int] = {}
    for r in records:
        seen: set[str] = set()
        node, d = r, 0
        while node.parent is not None and node.parent in by_id and node.id not in seen:
            seen.add(node.id)
            node, d = by_id[node.parent], d + 1
        depth[r.id] = d
    return depth


def removal_order(records: Sequence[BuildCacheRecord]) -> list[BuildCacheRecord]:
    """Least recently used first (a record counts as used when any descendant was), children
    before their parents, ties by id: the order is total and repeatable."""
    return _ordered(records, _subtrees(records))


def _ordered(
    records: Sequence[BuildCacheRecord], trees: Mapping[str, _Subtree]
) -> list[BuildCacheRecord]:
    def key(r: BuildCacheRecord) -> tuple[bool, datetime, int, str]:
        t = trees[r.id]
        return (t.last_used is not None, t.last_used or _NEVER, -t.depth, r.id)

    return sorted(records, key=key)


def plan_build_cache(
    records: Sequence[BuildCacheRecord] | None,
    settings: BuildCacheSettings,
    now: datetime,
    *,
    bytes_wanted: int,
    inodes_wanted: bool = False,
    under_pressure: bool | None = None,
) -> BuildCachePlan:
    """Decide every record's fate.

    `records` None: the engine has no build cache, or it was not observed (nothing is said).
    Kept: `in-use` (a build holds it or a descendant), `shared` (it or a descendant backs an image
    layer), `too-young` (it or a descendant used less than `minimum_age` ago).
    Removed for `age`: unused longer than `maximum_age` (when set), whatever the disk.
    Removed for `space`: least recently used first until what the plan frees covers
    `bytes_wanted`; for `inodes` (no byte need left, the inode threshold crossed): every other
    candidate, in the same order (the engine gives no inode counts: the cycle's closed loop stops
    at the inode target). The rest are kept as `target-reached` under pressure, else
    `below-threshold`.
    """
    if records is None or not settings.enabled:
        return BuildCachePlan(observed=False)
    pressure = under_pressure if under_pressure is not None else bool(bytes_wanted or inodes_wanted)
    trees = _subtrees(records)
    decisions: list[BuildCacheDecision] = []
    ordered = _ordered(records, trees)
    verdicts = _whatever_the_disk(ordered, trees, settings, now)
    freed = sum(r.size_bytes for r in ordered if verdicts.get(r.id, (None,))[0] is Action.REMOVE)
    for r in ordered:
        verdict = verdicts.get(r.id)
        if verdict is None:
            if freed < bytes_wanted:
                verdict = (Action.REMOVE, Reason.SPACE)
                freed += r.size_bytes
            elif inodes_wanted:
                verdict = (Action.REMOVE, Reason.INODES)
                freed += r.size_bytes
            else:
                verdict = (
                    Action.KEEP,
                    Reason.TARGET_REACHED if pressure else Reason.BELOW_THRESHOLD,
                )
        action, reason = verdict
        frees = r.size_bytes if action is Action.REMOVE else 0
        decisions.append(BuildCacheDecision(r, action, reason, frees))
    return BuildCachePlan(
        observed=True, decisions=tuple(decisions), bytes_reclaimable=bytes_reclaimable(records)
    )


def _whatever_the_disk(
    ordered: Sequence[BuildCacheRecord],
    trees: Mapping[str, _Subtree],
    settings: BuildCacheSettings,
    now: datetime,
) -> dict[str, tuple[Action, Reason]]:
    """The verdicts the disk does not change: kept `in-use`, `shared`, `too-young`; removed for
    `age`. Records without one are candidates for the disk."""
    verdicts: dict[str, tuple[Action, Reason]] = {}
    for r in ordered:
        t = trees[r.id]
        if t.in_use:
            verdicts[r.id] = (Action.KEEP, Reason.IN_USE)
        elif t.shared:
            verdicts[r.id] = (Action.KEEP, Reason.SHARED)
        elif t.last_used is not None and now - t.last_used < settings.minimum_age:
            verdicts[r.id] = (Action.KEEP, Reason.TOO_YOUNG)
        elif settings.maximum_age and (
            t.last_used is None or now - t.last_used > settings.maximum_age
        ):
            verdicts[r.id] = (Action.REMOVE, Reason.AGE)
    return verdicts


def retry_refused(records: Sequence[BuildCacheRecord]) -> bool:
    """Whether a record the engine refuses is tried again after the others in the same walk:
    where the engine names no record's parent (BuildKit on Docker 26 and 28 gives `Parent` and
    `Parents` null for every record), children cannot be put before their parents, and a
    parent is refused while a child stays; once the child is gone it goes."""
    return len(records) > 1 and not any(r.parent for r in records)


def needs_listing(settings: BuildCacheSettings, *, under_pressure: bool) -> bool:
    """Whether a cycle (and `report`, which shows what a cycle would do) must ask the engine for
    its build cache: under disk (or inode) pressure, or every cycle when `maximum_age` is set;
    never with build cache GC off. Below the thresholds no record would go, and the question is
    costly (dockerd 20.10 sizes every container's writable layer to answer it)."""
    return settings.enabled and (under_pressure or bool(settings.maximum_age))


def holder(record_id: str) -> str:
    """The record's name among the holders of layers (`policy.space`)."""
    return f"build-cache:{record_id}"


def shared_layers(
    records: Sequence[BuildCacheRecord] | None, layers: Mapping[str, Sequence[Layer]]
) -> dict[str, tuple[Layer, ...]]:
    """The image layer each shared record backs, as holders for the space accounting: an image
    layer one of them holds is not freed by removing the image alone.

    The engine does not say which layer a record backs; a record's snapshot is that layer, so
    its size is the layer's size (history's `Size` of the step): a shared record of a size one
    layer key alone has is taken to back it. Records of size 0 (the base image's, `from local`)
    and records whose size more than one layer has are left out (then the image's figure may
    overstate what it frees; the cycle's closed loop measures what really came back)."""
    if not records:
        return {}
    by_size: dict[int, set[str]] = defaultdict(set)
    known: dict[str, Layer] = {}
    for stack in layers.values():
        for layer in stack:
            if layer.told_bytes:  # a record's size is the layer's unpacked size
                by_size[layer.told_bytes].add(layer.key)
                known[layer.key] = layer
    out: dict[str, tuple[Layer, ...]] = {}
    for r in records:
        keys = by_size.get(r.size_bytes, set()) if r.shared and r.size_bytes > 0 else set()
        if len(keys) == 1:
            out[holder(r.id)] = (known[next(iter(keys))],)
    return out


def unshared_by(
    plan: BuildCachePlan,
    held: Mapping[str, Sequence[Layer]],
    layers: Mapping[str, Sequence[Layer]],
    removed_images: Collection[str],
    bytes_wanted: int,
    freed_before: int,
) -> BuildCachePlan:
    """The plan with the shared records whose every image this plan removes turned into
    removals for `space` (their bytes come back only now, after the images: the cycle lists the
    build cache again after removing images), least recently used first, while the plan still
    falls short of `bytes_wanted` (`freed_before`: what it frees so far)."""
    holders_of: dict[str, set[str]] = defaultdict(set)
    for image_id, stack in layers.items():
        for layer in stack:
            holders_of[layer.key].add(image_id)
    freed = freed_before
    decisions = []
    for d in plan.decisions:
        stack = held.get(holder(d.record.id))
        if (
            d.reason is Reason.SHARED
            and stack
            and freed < bytes_wanted
            and not d.record.in_use
            and all(holders_of[layer.key] <= set(removed_images) for layer in stack)
        ):
            d = BuildCacheDecision(d.record, Action.REMOVE, Reason.SPACE, d.record.size_bytes)
            freed += d.frees_bytes
        decisions.append(d)
    return replace(plan, decisions=tuple(decisions))
