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


def under_disk_pressure(fs: FilesystemStats, high: int) -> bool:
    """The kubelet's trigger: usage at or above the high threshold (100 turns it off)."""
    return high < 100 and fs.usage_percent >= high


def bytes_to_free(fs: FilesystemStats, high: int, low: int) -> int:
    """What the disk rule asks for: 0 below `high` (or with high = 100, GC off), else down to `low`.

    The kubelet's arithmetic: trigger at usage >= high; free capacity*(100-low)/100 - available.
    """
    if not under_disk_pressure(fs, high):
        return 0
    return max(0, fs.capacity_bytes * (100 - low) // 100 - fs.available_bytes)


def bytes_above_low(fs: FilesystemStats, low: int) -> int:
    """What still stands between the filesystem and the low threshold (0: at or below it)."""
    return max(0, fs.capacity_bytes * (100 - low) // 100 - fs.available_bytes)


def familiar_forms(reference: str) -> set[str]:
    """A reference in every form people write it: as given, fully qualified, and familiar
    ("busybox:1" = "docker.io/library/busybox:1"; "docker.io/myorg/app:2" = "myorg/app:2"),
    so a pin pattern matches whichever form its author wrote and the runtime lists."""
    first, sep, rest = reference.partition("/")
    has_domain = bool(sep) and ("." in first or ":" in first or first == "localhost")
    if not has_domain:
        full = f"docker.io/library/{reference}" if not sep else f"docker.io/{reference}"
    elif first in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        full = f"docker.io/{rest}"
    else:
        return {reference}
    path = full[len("docker.io/") :]
    name = path.split("@", 1)[0].rsplit(":", 1)[0] if "@" in path or ":" in path else path
    familiar = (
        path[len("library/") :] if name.startswith("library/") and name.count("/") == 1 else path
    )
    return {reference, full, familiar}


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
    freed_before: int = 0,
) -> ImagePlan:
    """Decide every image's fate.

    Kept: `pinned`; `in-use` by any container not in `leaving_containers` (dependents go first, so
    an image whose last containers this cycle removes may go in the same cycle); `failed-this-cycle`
    for ids in `avoid`; `too-young` when first seen less than `minimum_age` ago.
    Removed for `age`: not used for longer than `maximum_age`, once history covers that long.
    Removed for `space`: least recently used first until the planned bytes cover `bytes_to_free`;
    the rest are kept as `target-reached` (or `below-threshold` when the disk asks for nothing).
    `freed_before`: what this plan frees before images (the build cache, and dead containers
    removed under pressure), counted towards `bytes_to_free`.
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
    # Like the kubelet: old images go first (whatever the disk), then the space walk needs only
    # what they did not already free.
    verdicts: dict[str, tuple[Action, Reason, Sequence[str]]] = {}
    for image in ordered:
        record = record_of(image)
        if is_pinned(image, settings.pinned):
            verdicts[image.id] = (Action.KEEP, Reason.PINNED, ())
        elif image.id in users:
            verdicts[image.id] = (Action.KEEP, Reason.IN_USE, users[image.id])
        elif image.id in avoid:
            verdicts[image.id] = (Action.KEEP, Reason.FAILED_THIS_CYCLE, ())
        elif now - record.first_seen < settings.minimum_age:
            verdicts[image.id] = (Action.KEEP, Reason.TOO_YOUNG, ())
        elif history_covers_max_age and (
            now - (record.last_used or record.first_seen) > settings.maximum_age
        ):
            verdicts[image.id] = (Action.REMOVE, Reason.AGE, ())
    planned = sum(i.size_bytes for i in ordered if verdicts.get(i.id, (None,))[0] is Action.REMOVE)
    decisions: list[ImageDecision] = []
    for image in ordered:
        verdict = verdicts.get(image.id)
        if verdict is None:
            if freed_before + planned < wanted:
                verdict = (Action.REMOVE, Reason.SPACE, ())
                planned += image.size_bytes
            else:
                reason = Reason.TARGET_REACHED if wanted else Reason.BELOW_THRESHOLD
                verdict = (Action.KEEP, reason, ())
        action, reason, used_by = verdict
        decisions.append(ImageDecision(image, record_of(image), action, reason, tuple(used_by)))
    return ImagePlan(
        high_threshold_percent=high,
        low_threshold_percent=low,
        usage_percent=fs.usage_percent,
        bytes_to_free=wanted,
        decisions=tuple(decisions),
        freed_before=freed_before,
    )
