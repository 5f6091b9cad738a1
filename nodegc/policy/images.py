"""Image GC policy: the kubelet's least-recently-used eviction down to the low threshold.

Pure: a snapshot, history, settings and the time in; a decision for every image out.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime

from nodegc.config import ImageSettings
from nodegc.model import (
    LABEL_PINNED,
    Action,
    Container,
    FilesystemStats,
    History,
    Image,
    ImageDecision,
    ImagePlan,
    ImageRecord,
    Layer,
    Reason,
)
from nodegc.policy import targets
from nodegc.policy.space import Freed, Ledger, estimate_sizes, private_layer
from nodegc.policy.superseded import superseded
from nodegc.references import familiar_forms

# Kept for a reason no removal this cycle can change: their parents must stay too.
_HARD_KEEPS = frozenset({Reason.PINNED, Reason.IN_USE, Reason.TOO_YOUNG})


def under_disk_pressure(fs: FilesystemStats, high: int) -> bool:
    """The kubelet's trigger: usage at or above the high threshold (100 turns it off)."""
    return targets.percent_triggered(fs, high)


def under_inode_pressure(fs: FilesystemStats, high: int) -> bool:
    """The same trigger for inodes: inode usage at or above the inode high threshold (100 off)."""
    return targets.inode_triggered(fs, high)


def pressure_kinds(fs: FilesystemStats, settings: ImageSettings) -> tuple[str, ...]:
    """What a rule asks for (`policy.targets`): ("bytes",), ("inodes",), both, or ()."""
    return targets.pressure_kinds(fs, settings)


def target_met(fs: FilesystemStats, plan: ImagePlan) -> bool:
    """Whether a measurement shows what `plan` asked for: the byte targets (usage at or below
    the low threshold, free space at or above target_free) where bytes were wanted, inode usage
    at or below the inode low threshold where inodes were."""
    if plan.bytes_to_free and not bytes_met(fs, plan):
        return False
    return not (plan.inodes_to_free and fs.inode_usage_percent > plan.inode_low_threshold_percent)


def bytes_met(fs: FilesystemStats, plan: ImagePlan) -> bool:
    """Whether `fs` meets `plan`'s byte targets (`policy.targets.bytes_met`)."""
    return targets.bytes_met(
        fs, plan.high_threshold_percent, plan.low_threshold_percent, plan.target_free_bytes
    )


def bytes_to_free(fs: FilesystemStats, high: int, low: int) -> int:
    """What the kubelet's disk rule asks for: 0 below `high` (or with high = 100, GC off), else
    down to `low`: trigger at usage >= high; free capacity*(100-low)/100 - available. (nodegc's
    own rules, percent and bytes together: `policy.targets.wanted`.)"""
    if not under_disk_pressure(fs, high):
        return 0
    return targets.percent_amount(fs, high, low)


def is_pinned(image: Image, patterns: Sequence[str]) -> bool:
    """Pinned by the runtime, by the nodegc.io/pinned=true label, or by a glob in `pinned`."""
    if image.runtime_pinned or image.labels.get(LABEL_PINNED, "").lower() == "true":
        return True
    return any(
        fnmatch.fnmatchcase(form, pattern)
        for ref in image.references
        for form in familiar_forms(ref)
        for pattern in patterns
    )


def lru_key(image: Image, record: ImageRecord) -> tuple[bool, datetime, datetime, str]:
    """Eviction order: never-used images first (by first seen), then least recently used;
    ties by first seen, then by id, so the order is total and repeatable."""
    used = record.last_used is not None
    return (used, record.last_used or record.first_seen, record.first_seen, image.id)


def users_of(containers: Iterable[Container], leaving: Collection[str]) -> Mapping[str, list[str]]:
    """Image id -> ids of the containers (any state) that reference it (as their image or
    mounted as a volume), except those `leaving`."""
    users: dict[str, list[str]] = defaultdict(list)
    for c in containers:
        if c.id not in leaving:
            users[c.image_id].append(c.id)
            for mounted in c.mounted_images:
                if mounted != c.image_id:
                    users[mounted].append(c.id)
    return users


def image_holdings(
    images: Iterable[Image], layers: Mapping[str, Sequence[Layer]]
) -> dict[str, tuple[Layer, ...]]:
    """Image id -> its layers with sizes: as the runtime told them, estimated from the images'
    sizes where it told only identities (CRI), one private layer of the listed size where it told
    nothing."""
    stacks: dict[str, tuple[Layer, ...]] = {}
    totals: dict[str, int] = {}
    unknown = False
    for image in images:
        stack = tuple(layers.get(image.id, ()))
        if not stack:
            stack = private_layer(image.id, image.size_bytes)
        elif any(layer.size_bytes is None for layer in stack):
            unknown = True
        stacks[image.id] = stack
        totals[image.id] = image.size_bytes
    return estimate_sizes(stacks, totals) if unknown else stacks


def plan_images(
    fs: FilesystemStats,
    images: Sequence[Image],
    containers: Iterable[Container],
    history: History,
    settings: ImageSettings,
    now: datetime,
    *,
    layers: Mapping[str, Sequence[Layer]] | None = None,
    leaving_containers: Collection[str] = (),
    freed_before: int = 0,
    other_holders: Mapping[str, Sequence[Layer]] | None = None,
) -> ImagePlan:
    """Decide every image's fate.

    Kept: `pinned`; `in-use` by any container not in `leaving_containers` (dependents go first, so
    an image whose last containers this cycle removes may go in the same cycle); `too-young` when
    first seen less than `minimum_age` ago;
    `parent-of-in-use` when an image built on it (classic builder: `parent_id`) is kept for one of
    those reasons. Removed for `age`: not used for longer than `maximum_age`, once history covers
    that long (with every image built on it). Removed for `space` (or `inodes` once the bytes
    are covered and only inodes are still wanted): least recently used first, an image's children
    just before it, until what the removals really free (the layers they leave without a holder,
    `layers`) covers `bytes_to_free` and `inodes_to_free`; the other candidates are kept as
    `target-reached` (or `below-threshold` when the disk asks for nothing).

    The decisions come in the order the removals are to be carried out: age removals, space and
    inode removals, then the candidates a closed loop may still take in that order when the disk
    has not come down as planned (`target-reached`), then the images that must stay.

    `freed_before`: what this plan frees before images (the build cache, and dead containers
    removed under pressure), counted towards `bytes_to_free`. `other_holders`: holders of layers
    that are not images (a shared build cache record holds its image's layer): a layer they hold
    is not freed by removing images.
    """
    high, low = settings.high_threshold_percent, settings.low_threshold_percent
    inode_high = settings.inode_high_threshold_percent
    inode_low = settings.inode_low_threshold_percent
    asked = targets.wanted(fs, settings)
    wanted, inodes_wanted = asked.bytes, asked.inodes
    users = users_of(containers, leaving_containers)
    history_covers_max_age = bool(settings.maximum_age) and (
        now - history.since >= settings.maximum_age
    )
    records: dict[str, ImageRecord] = {}
    for image in images:
        # An image the history has not recorded yet is as young as it gets.
        records[image.id] = history.images.get(image.id) or ImageRecord(first_seen=now)
    ordered = sorted(images, key=lambda i: lru_key(i, records[i.id]))
    by_id = {i.id: i for i in ordered}
    children: dict[str, list[Image]] = defaultdict(list)
    for image in ordered:
        if image.parent_id and image.parent_id in by_id and image.parent_id != image.id:
            children[image.parent_id].append(image)

    ledger = Ledger(image_holdings(ordered, layers or {}))
    for holder, held in (other_holders or {}).items():
        ledger.add(holder, held)
    unique = {i.id: ledger.frees(i.id).bytes for i in ordered}

    keeps: dict[str, tuple[Reason, Sequence[str]]] = {}
    old: set[str] = set()
    for image in ordered:
        record = records[image.id]
        if is_pinned(image, settings.pinned):
            keeps[image.id] = (Reason.PINNED, ())
        elif image.id in users:
            keeps[image.id] = (Reason.IN_USE, users[image.id])
        elif now - record.first_seen < settings.minimum_age:
            keeps[image.id] = (Reason.TOO_YOUNG, ())
        elif history_covers_max_age and (
            now - (record.last_used or record.first_seen) > settings.maximum_age
        ):
            old.add(image.id)
    # A parent goes only after every image built on it: one that must stay keeps its ancestors.
    for image in ordered:
        if image.id not in keeps or keeps[image.id][0] not in _HARD_KEEPS:
            continue
        seen = {image.id}
        parent = by_id.get(image.parent_id)
        while parent is not None and parent.id not in seen:
            seen.add(parent.id)
            if parent.id not in keeps:
                keeps[parent.id] = (Reason.PARENT_OF_IN_USE, ())
            parent = by_id.get(parent.parent_id)
    # Superseded releases (images.keep_per_repository), whatever the disk, right after the age
    # removals: policy/superseded.py.
    gone = superseded(ordered, records, settings.keep_per_repository, keeps, familiar_forms)
    # For age, an old parent goes only when everything built on it is old too.
    old_tree: dict[str, bool] = {}

    def all_old(image_id: str) -> bool:
        if image_id not in old_tree:
            old_tree[image_id] = False  # guards a (malformed) cycle of parents
            old_tree[image_id] = image_id in old and all(all_old(c.id) for c in children[image_id])
        return old_tree[image_id]

    decisions: list[ImageDecision] = []
    taken: set[str] = set()
    planned = Freed(0, 0)

    def take(image: Image, reason: Reason, remove: bool) -> None:
        """Plan `image` (children first) as a removal, or as a candidate kept for now."""
        taken.add(image.id)
        for child in children[image.id]:
            if child.id not in taken and child.id not in keeps:
                take(child, reason, remove)
        nonlocal planned
        if remove:
            freed = ledger.remove(image.id)
            planned = planned + freed
            action, frees, inodes = Action.REMOVE, freed.bytes, freed.inodes
        else:
            reason = Reason.TARGET_REACHED if wanted or inodes_wanted else Reason.BELOW_THRESHOLD
            action, frees, inodes = Action.KEEP, 0, 0
        decisions.append(
            ImageDecision(
                image,
                records[image.id],
                action,
                reason,
                unique_size_bytes=unique[image.id],
                frees_bytes=frees,
                frees_inodes=inodes,
            )
        )

    # Like the kubelet: old images go first (whatever the disk), then the space walk needs only
    # what they did not already free.
    for image in ordered:
        if image.id not in taken and image.id not in keeps and all_old(image.id):
            take(image, Reason.AGE, True)
    for image in ordered:
        if image.id in gone and image.id not in taken:
            take(image, Reason.SUPERSEDED, True)
    for image in ordered:
        if image.id in taken or image.id in keeps:
            continue
        bytes_short = freed_before + planned.bytes < wanted
        inodes_short = inodes_wanted > 0 and (
            planned.inodes is None or planned.inodes < inodes_wanted
        )
        if bytes_short or inodes_short:
            take(image, Reason.SPACE if bytes_short else Reason.INODES, True)
        else:
            take(image, Reason.TARGET_REACHED, False)
    for image in ordered:
        if image.id in keeps:
            reason, used_by = keeps[image.id]
            decisions.append(
                ImageDecision(
                    image,
                    records[image.id],
                    Action.KEEP,
                    reason,
                    tuple(used_by),
                    unique_size_bytes=unique[image.id],
                )
            )
    return ImagePlan(
        high_threshold_percent=high,
        low_threshold_percent=low,
        usage_percent=fs.usage_percent,
        bytes_to_free=wanted,
        decisions=tuple(decisions),
        inode_high_threshold_percent=inode_high,
        inode_low_threshold_percent=inode_low,
        inode_usage_percent=fs.inode_usage_percent,
        inodes_to_free=inodes_wanted,
        freed_before=freed_before,
        trigger=asked.trigger,
        target_free_bytes=asked.target_free_bytes,
    )
