"""History: what each observation teaches about images' first sighting and last use. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from nodegc.model import History, Image, ImageRecord, RuntimeEvent, Snapshot
from nodegc.policy.images import familiar_forms

# Container actions that mean "its image was in use at that moment" (a destroy may come long
# after: clean-up, not use).
USE_ACTIONS = frozenset({"create", "start", "die"})
# Image actions that mean "it arrived (again) at that moment": its first-seen/last-use clock.
ARRIVAL_ACTIONS = frozenset({"pull", "load", "tag", "import"})


def observe(
    history: History,
    snapshot: Snapshot,
    now: datetime,
    tagged_at: Mapping[str, datetime] | None = None,
) -> History:
    """Fold one complete snapshot into history.

    - A new image's first sighting is now, or earlier where the runtime vouches for it: the time it
      was last tagged (a pull) or the creation of a container made from it.
    - An image is used now while a live container references it; a dead container's finish time
      (else its creation) is when it was last used — real evidence, not the time of the scan, so
      long-dead containers do not make an image look fresh (`Container.stopped_at`: where only a
      window is known, the cycle has asked for every time that could be the latest). Last use
      never moves backwards.
    - Images gone from the runtime are forgotten (a re-pull is a new image).
    """
    tagged_at = tagged_at or {}
    evidence_used: dict[str, datetime] = {}
    earliest_container: dict[str, datetime] = {}
    for c in snapshot.containers:
        used = now if not c.state.is_dead else c.stopped_at
        if c.image_id not in evidence_used or used > evidence_used[c.image_id]:
            evidence_used[c.image_id] = min(used, now)
        if c.image_id not in earliest_container or c.created < earliest_container[c.image_id]:
            earliest_container[c.image_id] = c.created

    records: dict[str, ImageRecord] = {}
    for image in snapshot.images:
        old = history.images.get(image.id)
        if old is not None:
            first_seen = old.first_seen
        else:
            candidates = [now]
            if image.id in tagged_at:
                candidates.append(tagged_at[image.id])
            if image.id in earliest_container:
                candidates.append(earliest_container[image.id])
            first_seen = min(candidates)
        last_used = old.last_used if old is not None else None
        seen_used = evidence_used.get(image.id)
        if seen_used is not None and (last_used is None or seen_used > last_used):
            last_used = seen_used
        records[image.id] = ImageRecord(first_seen=first_seen, last_used=last_used)
    return History(since=history.since, images=records)


def record_events(
    history: History,
    used: Mapping[str, datetime],
    arrived: Mapping[str, datetime] | None = None,
) -> History:
    """Fold what the event stream told between observations: images used (a container made from
    it was created, started or stopped) and images that arrived (pulled, loaded, tagged)."""
    images = dict(history.images)
    for image_id, when in (arrived or {}).items():
        if image_id not in images:
            images[image_id] = ImageRecord(first_seen=when)
    for image_id, when in used.items():
        old = images.get(image_id) or ImageRecord(first_seen=when)
        if old.last_used is None or when > old.last_used:
            old = ImageRecord(first_seen=min(old.first_seen, when), last_used=when)
        images[image_id] = old
    return History(since=history.since, images=images)


def rebuild(history: History, snapshot: Snapshot, past: Iterable[RuntimeEvent]) -> History:
    """History after it was lost: `observe` has taken what the listing shows (containers'
    creation and finish times, live containers, tag times); this adds the use the engine's
    remembered events show of containers that are gone (`uses_from_events`), so an image used
    recently is not taken for one never used (which go first)."""
    used = uses_from_events(past, snapshot.images)
    used = {i: min(t, snapshot.taken_at) for i, t in used.items()}
    return record_events(history, used)


def uses_from_events(
    events: Iterable[RuntimeEvent], images: Sequence[Image]
) -> dict[str, datetime]:
    """Image id -> the latest container create, start or die of it among `events`. A container
    event names its image by id when the container was listed, else as it was created from it
    (`image_ref`: a reference, resolved through the images' references in every form, or an id
    or its prefix). An event naming no listed image is left out."""
    ids = {i.id for i in images}
    by_reference = {
        form: i.id for i in images for ref in i.references for form in familiar_forms(ref)
    }
    used: dict[str, datetime] = {}
    for event in events:
        if event.kind != "container" or event.action not in USE_ACTIONS:
            continue
        image_id = event.image_id if event.image_id in ids else None
        image_id = image_id or _resolve(event.image_ref, by_reference, ids)
        if image_id is not None and (image_id not in used or event.time > used[image_id]):
            used[image_id] = event.time
    return used


def _resolve(reference: str, by_reference: Mapping[str, str], ids: set[str]) -> str | None:
    if not reference:
        return None
    hex_part = reference.removeprefix("sha256:")
    if len(hex_part) >= 12 and all(c in "0123456789abcdef" for c in hex_part):
        matches = [i for i in ids if i.removeprefix("sha256:").startswith(hex_part)]
        if len(matches) == 1:
            return matches[0]
    last = reference.rsplit("/", 1)[-1]
    if "@" not in reference and ":" not in last:
        reference += ":latest"  # as the engine read it at create
    return next((by_reference[f] for f in familiar_forms(reference) if f in by_reference), None)
