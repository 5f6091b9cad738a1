"""Image GC policy: the kubelet's least-recently-used eviction down to the low threshold.

Pure: a snapshot, history, settings and the time in; a decision for every image out.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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


def is_pinned(
    image: Image, patterns: Sequence[str], matches: Callable[[str], bool] | None = None
) -> bool:
    """Pinned by the runtime, by the nodegc.io/pinned=true label, or by a glob in `pinned`
    (matching any of the forms of any of its references; `matches`: `pin_matcher(patterns)`,
    made once for many images)."""
    if image.runtime_pinned or image.labels.get(LABEL_PINNED, "").lower() == "true":
        return True
    match = matches or pin_matcher(patterns)
    return any(match(form) for ref in image.references for form in familiar_forms(ref))


def pin_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """Whether a name matches one of the globs (`fnmatch.fnmatchcase`'s rules): the globs made
    into one expression, once."""
    if not patterns:
        return lambda _name: False
    either = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda name: either.match(name) is not None


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


@dataclass(frozen=True, slots=True)
class Counted:
    """What an image plan counts on besides the images: their `layers` (image id -> layers with
    sizes; none: one private layer of the listed size each), the containers this cycle removes
    first (`leaving_containers`: they keep no image in use), what the plan frees before images
    (`freed_before`: the build cache, dead containers removed under pressure), and holders of
    layers that are not images (`other_holders`: a shared build cache record holds its image's
    layer, which removing the image alone does not free)."""

    layers: Mapping[str, Sequence[Layer]] = field(default_factory=dict)
    leaving_containers: Collection[str] = frozenset()
    freed_before: int = 0
    other_holders: Mapping[str, Sequence[Layer]] = field(default_factory=dict)


def plan_images(
    fs: FilesystemStats,
    images: Sequence[Image],
    containers: Iterable[Container],
    history: History,
    settings: ImageSettings,
    now: datetime,
    *,
    counted: Counted | None = None,
) -> ImagePlan:
    """Decide every image's fate.

    Kept: `pinned`; `in-use` by any container not leaving (`counted.leaving_containers`:
    dependents go first, so an image whose last containers this cycle removes may go in the same
    cycle); `too-young` when first seen less than `minimum_age` ago;
    `parent-of-in-use` when an image built on it (classic builder: `parent_id`) is kept for one of
    those reasons. Removed for `age`: not used for longer than `maximum_age`, once history covers
    that long (with every image built on it). Removed for `space` (or `inodes` once the bytes
    are covered and only inodes are still wanted): least recently used first, an image's children
    just before it, until what the removals really free (the layers they leave without a holder,
    `counted.layers`) covers `bytes_to_free` and `inodes_to_free`; the other candidates are kept
    as `target-reached` (or `below-threshold` when the disk asks for nothing).

    The decisions come in the order the removals are to be carried out: age removals, space and
    inode removals, then the candidates a closed loop may still take in that order when the disk
    has not come down as planned (`target-reached`), then the images that must stay.
    `counted.freed_before` counts towards `bytes_to_free`.
    """
    counted = counted or Counted()
    asked = targets.wanted(fs, settings)
    walk = _ImageWalk(images, containers, history, settings, now, counted, asked)
    walk.plan()
    return ImagePlan(
        high_threshold_percent=settings.high_threshold_percent,
        low_threshold_percent=settings.low_threshold_percent,
        usage_percent=fs.usage_percent,
        bytes_to_free=asked.bytes,
        decisions=tuple(walk.decisions),
        inode_high_threshold_percent=settings.inode_high_threshold_percent,
        inode_low_threshold_percent=settings.inode_low_threshold_percent,
        inode_usage_percent=fs.inode_usage_percent,
        inodes_to_free=asked.inodes,
        freed_before=counted.freed_before,
        trigger=asked.trigger,
        target_free_bytes=asked.target_free_bytes,
    )


class _ImageWalk:
    """One image plan being made: the images in eviction order, what keeps each, and the
    decisions so far (`plan_images`)."""

    def __init__(
        self,
        images: Sequence[Image],
        containers: Iterable[Container],
        history: History,
        settings: ImageSettings,
        now: datetime,
        counted: Counted,
        asked: targets.Wanted,
    ) -> None:
        self.settings, self.now, self.asked = settings, now, asked
        self.freed_before = counted.freed_before
        self.users = users_of(containers, counted.leaving_containers)
        # An image the history has not recorded yet is as young as it gets.
        self.records = {
            i.id: history.images.get(i.id) or ImageRecord(first_seen=now) for i in images
        }
        self.ordered = sorted(images, key=lambda i: lru_key(i, self.records[i.id]))
        self.by_id = {i.id: i for i in self.ordered}
        self.children: dict[str, list[Image]] = defaultdict(list)
        for image in self.ordered:
            if image.parent_id and image.parent_id in self.by_id and image.parent_id != image.id:
                self.children[image.parent_id].append(image)
        self.ledger = Ledger(image_holdings(self.ordered, counted.layers))
        for holder, held in counted.other_holders.items():
            self.ledger.add(holder, held)
        self.unique = {i.id: self.ledger.frees(i.id).bytes for i in self.ordered}
        self.history_covers_max_age = bool(settings.maximum_age) and (
            now - history.since >= settings.maximum_age
        )
        self.keeps: dict[str, tuple[Reason, Sequence[str]]] = {}
        self.old: set[str] = set()
        self.old_tree: dict[str, bool] = {}
        self.decisions: list[ImageDecision] = []
        self.taken: set[str] = set()
        self.planned = Freed(0, 0)

    def plan(self) -> None:
        """Like the kubelet: old images go first (whatever the disk), then superseded releases
        (`policy.superseded`), then the space walk needs only what they did not already free;
        the images that must stay last."""
        self.judge()
        self.keep_ancestors()
        gone = superseded(
            self.ordered,
            self.records,
            self.settings.keep_per_repository,
            self.keeps,
            familiar_forms,
        )
        free = [i for i in self.ordered if i.id not in self.keeps]
        for image in free:
            if image.id not in self.taken and self.all_old(image.id):
                self.take(image, Reason.AGE, True)
        for image in self.ordered:
            if image.id in gone and image.id not in self.taken:
                self.take(image, Reason.SUPERSEDED, True)
        for image in free:
            if image.id not in self.taken:
                short = self.short()
                self.take(image, short or Reason.TARGET_REACHED, short is not None)
        for image in self.ordered:
            if image.id in self.keeps:
                self.keep(image)

    def judge(self) -> None:
        """What keeps each image whatever the disk, and which are old."""
        settings, now = self.settings, self.now
        pinned = pin_matcher(settings.pinned)
        for image in self.ordered:
            record = self.records[image.id]
            if is_pinned(image, settings.pinned, pinned):
                self.keeps[image.id] = (Reason.PINNED, ())
            elif image.id in self.users:
                self.keeps[image.id] = (Reason.IN_USE, self.users[image.id])
            elif now - record.first_seen < settings.minimum_age:
                self.keeps[image.id] = (Reason.TOO_YOUNG, ())
            elif self.history_covers_max_age and (
                now - (record.last_used or record.first_seen) > settings.maximum_age
            ):
                self.old.add(image.id)

    def keep_ancestors(self) -> None:
        """A parent goes only after every image built on it: one that must stay keeps its
        ancestors."""
        for image in self.ordered:
            if image.id not in self.keeps or self.keeps[image.id][0] not in _HARD_KEEPS:
                continue
            seen = {image.id}
            parent = self.by_id.get(image.parent_id)
            while parent is not None and parent.id not in seen:
                seen.add(parent.id)
                if parent.id not in self.keeps:
                    self.keeps[parent.id] = (Reason.PARENT_OF_IN_USE, ())
                parent = self.by_id.get(parent.parent_id)

    def all_old(self, image_id: str) -> bool:
        """For age, an old parent goes only when everything built on it is old too."""
        tree = self.old_tree
        if image_id not in tree:
            tree[image_id] = False  # guards a (malformed) cycle of parents
            tree[image_id] = image_id in self.old and all(
                self.all_old(c.id) for c in self.children[image_id]
            )
        return tree[image_id]

    def short(self) -> Reason | None:
        """What the disk still asks for with the removals planned so far: `space` while bytes
        are short, `inodes` while only inodes are; None when covered."""
        bytes_short = self.freed_before + self.planned.bytes < self.asked.bytes
        inodes = self.planned.inodes
        if bytes_short:
            return Reason.SPACE
        if self.asked.inodes > 0 and (inodes is None or inodes < self.asked.inodes):
            return Reason.INODES
        return None

    def take(self, image: Image, reason: Reason, remove: bool) -> None:
        """Plan `image` (children first) as a removal, or as a candidate kept for now."""
        self.taken.add(image.id)
        for child in self.children[image.id]:
            if child.id not in self.taken and child.id not in self.keeps:
                self.take(child, reason, remove)
        if remove:
            freed = self.ledger.remove(image.id)
            self.planned = self.planned + freed
            action, frees, inodes = Action.REMOVE, freed.bytes, freed.inodes
        else:
            pressure = self.asked.bytes or self.asked.inodes
            reason = Reason.TARGET_REACHED if pressure else Reason.BELOW_THRESHOLD
            action, frees, inodes = Action.KEEP, 0, 0
        self.decisions.append(
            ImageDecision(
                image,
                self.records[image.id],
                action,
                reason,
                unique_size_bytes=self.unique[image.id],
                frees_bytes=frees,
                frees_inodes=inodes,
            )
        )

    def keep(self, image: Image) -> None:
        reason, used_by = self.keeps[image.id]
        self.decisions.append(
            ImageDecision(
                image,
                self.records[image.id],
                Action.KEEP,
                reason,
                tuple(used_by),
                unique_size_bytes=self.unique[image.id],
            )
        )
