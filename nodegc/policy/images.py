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
    Reason,
)


def bytes_to_free(fs: FilesystemStats, high: int, low: int) -> int:
    """What the disk rule asks for: 0 below `high` (or with high = 100, GC off), else down to `low`.

    The kubelet's arithmetic: trigger at usage >= high; free capacity*(100-low)/100 - available.
    """
    if high >= 100 or fs.usage_percent < high:
        return 0
    return max(0, fs.capacity_bytes * (100 - low) // 100 - fs.available_bytes)


def familiar_forms(reference: str) -> set[str]:
    """A reference as the engine prints it and fully qualified ("busybox:1" and
    "docker.io/library/busybox:1"), so a pin pattern matches whichever form its author wrote."""
    forms = {reference}
    first, sep, rest = reference.partition("/")
    if not sep:
        forms.add(f"docker.io/library/{reference}")
    elif "." not in first and ":" not in first and first != "localhost":
        forms.add(f"docker.io/{reference}")
    elif first in ("docker.io", "index.docker.io") and "/" not in rest:
        forms.add(rest)
    return forms


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
    """Image id -> ids of the containers (any state) that reference it, except those `leaving`."""
    users: dict[str, list[str]] = defaultdict(list)
    for c in containers:
        if c.id not in leaving:
            users[c.image_id].append(c.id)
    return users


def plan_images(
    fs: FilesystemStats,
    images: Sequence[Image],
    containers: Iterable[Container],
    history: History,
    settings: ImageSettings,
    now: datetime,
    *,
    leaving_containers: Collection[str] = (),
    avoid: Collection[str] = (),
) -> ImagePlan:
    """Decide every image's fate.

    Kept: `pinned`; `in-use` by any container not in `leaving_containers` (dependents go first, so
    an image whose last containers this cycle removes may go in the same cycle); `failed-this-cycle`
    for ids in `avoid`; `too-young` when first seen less than `minimum_age` ago.
    Removed for `age`: not used for longer than `maximum_age`, once history covers that long.
    Removed for `space`: least recently used first until the planned bytes cover `bytes_to_free`;
    the rest are kept as `target-reached` (or `below-threshold` when the disk asks for nothing).
    """
    high, low = settings.high_threshold_percent, settings.low_threshold_percent
    wanted = bytes_to_free(fs, high, low)
    users = users_of(containers, leaving_containers)
    history_covers_max_age = bool(settings.maximum_age) and (
        now - history.since >= settings.maximum_age
    )

    def record_of(image: Image) -> ImageRecord:
        # An image the history has not recorded yet is as young as it gets.
        return history.images.get(image.id) or ImageRecord(first_seen=now)

    ordered = sorted(images, key=lambda i: lru_key(i, record_of(i)))
    decisions: list[ImageDecision] = []
    planned = 0
    for image in ordered:
        record = record_of(image)
        used_by: Sequence[str] = ()
        if is_pinned(image, settings.pinned):
            action, reason = Action.KEEP, Reason.PINNED
        elif image.id in users:
            action, reason, used_by = Action.KEEP, Reason.IN_USE, users[image.id]
        elif image.id in avoid:
            action, reason = Action.KEEP, Reason.FAILED_THIS_CYCLE
        elif now - record.first_seen < settings.minimum_age:
            action, reason = Action.KEEP, Reason.TOO_YOUNG
        elif history_covers_max_age and (
            now - (record.last_used or record.first_seen) > settings.maximum_age
        ):
            action, reason = Action.REMOVE, Reason.AGE
        elif planned < wanted:
            action, reason = Action.REMOVE, Reason.SPACE
        else:
            action = Action.KEEP
            reason = Reason.TARGET_REACHED if wanted else Reason.BELOW_THRESHOLD
        if action is Action.REMOVE:
            planned += image.size_bytes
        decisions.append(ImageDecision(image, record, action, reason, tuple(used_by)))
    return ImagePlan(
        high_threshold_percent=high,
        low_threshold_percent=low,
        usage_percent=fs.usage_percent,
        bytes_to_free=wanted,
        decisions=tuple(decisions),
    )
