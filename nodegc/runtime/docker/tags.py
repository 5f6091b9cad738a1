"""Removing one planned image from a Docker-API engine without touching any other image.

The engines offer no conditional untag: `DELETE /images/<tag>` takes the tag off whatever image
it names when the request arrives, and when that was the image's last name it deletes the image
too (`noprune=1` only spares untagged parents: measured on dockerd 20.10 and 28.5). A tag that
moved to a new release B while nodegc walked the planned image A's names would take B with it.
So the walk here acts on A's id:

- An image with one name (one tag, plus digests of that tag's repository) is deleted by id in
  one request: the engine removes that image's own names, whatever happened to the planned tag.
- An image with several names keeps its last tag to the end. Every other tag is checked right
  before it goes (`GET /images/<tag>/json` must still answer A's id): a tag that names another
  image by now (moved) or none (removed) is left alone and named in the result. A tag taken off
  by name is never A's last name, so that request can only untag. Then `DELETE /images/<A id>`
  removes A with the name it kept. Digests (`repo@sha256:`) are content addresses: they cannot
  move to another image, so they go by name.
- The last step is always by id, with `noprune=1`: only A is deleted, never an untagged parent.
- If A gained a tag since it was planned, nothing is touched (Conflict: someone is using it).

Between the check of a tag and its untag there is one request's time in which a `docker tag` of
another image could still land; the engine's answer says so when that image was deleted with it
(a `Deleted` row of another id), and the result names it as an error. Nothing else can.

A refusal or failure part-way (a container uses A now) puts back the tags this walk took off,
each only when no image holds that tag now: a tag that moved meanwhile is left on the image it
names (`restore`).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodegc.model import Image, short_id
from nodegc.runtime import Conflict, NotFound, RuntimeError_, RuntimeUnavailable

log = logging.getLogger(__name__)

# inspect(reference) -> the image it names now (None: no image has that name)
Inspect = Callable[[str], Image | None]
# delete(reference, by_id) -> the engine's rows ({"Untagged": name} / {"Deleted": id})
Delete = Callable[[str, bool], Any]
# tag(image_id, reference): give the image that name (the engine moves it if another has it)
Tag = Callable[[str, str], None]
# untag(image_id, tag) -> False when that tag is not the image's (Podman's libpod call, by id:
# the check and the untag are one step in the engine)
Untag = Callable[[str, str], bool]
# tagged_since(tag, since) -> the image the engine's last `tag` event for `tag` since `since`
# (a time.time()) named, None when there was none (Docker: the check after an untag by name)
TaggedSince = Callable[[str, float], str | None]


@dataclass
class Walk:
    """What one removal did to the names of the planned image."""

    image: Image
    untagged: list[str] = field(default_factory=list)  # names this walk took off A
    moved: dict[str, str | None] = field(default_factory=dict)  # planned tag -> its holder now
    foreign: list[str] = field(default_factory=list)  # images an untag deleted (a lost race)
    given_back: dict[str, str] = field(default_factory=dict)  # tag an untag took -> its image

    def note(self) -> str:
        """The audit detail of what happened to names that were not A's any more."""
        parts = []
        for tag, holder in self.moved.items():
            where = f"now names {short_id(holder)}" if holder else "removed by someone else"
            parts.append(f"tag {tag} {where}: left where it is")
        for tag, holder in self.given_back.items():
            parts.append(
                f"tag {tag} moved to {short_id(holder)} between its check and its untag: "
                "given back to it"
            )
        if self.foreign:
            ids = ", ".join(short_id(i) for i in self.foreign)
            parts.append(f"a tag moved between its check and its untag: image {ids} deleted")
        return "; ".join(parts)


def references_to_walk(image: Image) -> list[str]:
    """The names to remove one by one: every tag, then digests of repositories no tag names
    (the engine drops a repository's digests with its last tag)."""
    tag_repos = {repository(t) for t in image.tags}
    digests = [d for d in image.digests if repository(d) not in tag_repos]
    return [*image.tags, *digests]


def repository(reference: str) -> str:
    if "@" in reference:
        return reference.split("@", 1)[0]
    name, sep, tag = reference.rpartition(":")
    return name if sep and "/" not in tag else reference


def tag_events_query(since: float, now: float) -> str:
    """The query of a bounded `GET /events` for image `tag` events from a second before `since`
    to `now` (dockerd keeps its last 256 events in memory and answers at once)."""
    filters = json.dumps({"type": ["image"], "event": ["tag"]})
    until = max(since, now)
    return urllib.parse.urlencode(
        {"since": f"{since - 1:.9f}", "until": f"{until:.9f}", "filters": filters}
    )


def last_tagged(body: bytes, reference: str) -> str | None:
    """The image id of the last `tag` event naming `reference` in an events answer."""
    found = None
    for line in body.splitlines():
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        actor = (raw.get("Actor") or {}) if isinstance(raw, dict) else {}
        name = str((actor.get("Attributes") or {}).get("name") or "")
        if name == reference and actor.get("ID"):
            found = str(actor["ID"])
    return found


def untag_query(reference: str) -> str:
    """`repo=...&tag=...` of Podman's untag call for `reference`."""
    repo = repository(reference)
    return urllib.parse.urlencode({"repo": repo, "tag": reference[len(repo) + 1 :] or "latest"})


def deleted_ids(rows: Any) -> list[str]:
    return [str(r["Deleted"]) for r in rows or [] if isinstance(r, dict) and "Deleted" in r]


def untagged_names(rows: Any) -> set[str]:
    return {str(r["Untagged"]) for r in rows or [] if isinstance(r, dict) and "Untagged" in r}


def remove(
    image: Image,
    *,
    inspect: Inspect,
    delete: Delete,
    tag: Tag,
    untag: Untag | None = None,
    tagged_since: TaggedSince | None = None,
    before_delete: Callable[[], None] | None = None,
) -> Walk:
    """Remove `image` by its id (see the module's text). Returns what happened to its names;
    raises Conflict (refused: A keeps every tag it had that no other image took meanwhile),
    NotFound (A is gone: someone else removed it), RuntimeError_ (failed, tags put back)."""
    what = f"remove image {short_id(image.id)} ({image.describe()})"
    walk = Walk(image)
    deleting = False
    try:
        several = len(references_to_walk(image)) > 1
        engine = _Engine(inspect, delete, tag, untag, tagged_since)
        if several and _untag_all_but_one(walk, what, engine):
            return walk  # an untag deleted A (its kept name was removed meanwhile)
        if before_delete is not None:
            before_delete()
        deleting = True
        rows = delete(image.id, True)
    except RuntimeError_ as exc:
        if isinstance(exc, NotFound):
            raise
        if deleting and isinstance(exc, RuntimeUnavailable) and _gone(image.id, inspect):
            return _answer_lost(walk, inspect)  # carried out: never sent again
        owed = [t for t in walk.untagged if "@" not in t]
        if deleting:  # the DELETE by id may have taken A's names before it failed or was refused
            owed += [t for t in image.tags if t not in owed and t not in walk.moved]
        if owed:
            kept = restore(image.id, owed, inspect, tag)
            raise type(exc)(f"{exc}{_restore_text(walk, kept)}") from None
        raise
    gone = untagged_names(rows)
    for name in image.tags:
        if name not in walk.untagged and name not in gone and name not in walk.moved:
            walk.moved[name] = _holder(inspect, name)
    return walk


def _gone(image_id: str, inspect: Inspect) -> bool:
    """After the DELETE of A by id lost its answer (a connection reset, cut short): whether the
    engine says A no longer exists. One inspect, a read (the adapter retries it); False when
    the engine cannot say, and the removal then counts as failed."""
    try:
        return inspect(image_id) is None
    except NotFound:
        return True
    except RuntimeError_:
        return False


def _answer_lost(walk: Walk, inspect: Inspect) -> Walk:
    """A is gone though the answer to its DELETE was lost: its names went with it, but for those
    another image holds now (a tag moved meanwhile: left there, and said in the note)."""
    image = walk.image
    for name in image.tags:
        if name in walk.untagged or name in walk.moved:
            continue
        try:
            holder = _holder(inspect, name)
        except RuntimeError_:
            continue  # A is gone either way; the tag's holder is only for the note
        if holder is not None and holder != image.id:
            walk.moved[name] = holder
    log.info(
        f"image {short_id(image.id)}: the answer to its removal was lost; the image is gone",
        extra={"image": image.id},
    )
    return walk


@dataclass(frozen=True)
class _Engine:
    inspect: Inspect
    delete: Delete
    tag: Tag
    untag: Untag | None
    tagged_since: TaggedSince | None


def _untag_all_but_one(walk: Walk, what: str, engine: _Engine) -> bool:
    """Take off every planned name of A but its last tag, each checked right before it goes
    (or, where the engine can, untagged by A's id). True when A itself was deleted on the way."""
    inspect, delete, untag = engine.inspect, engine.delete, engine.untag
    image = walk.image
    current = inspect(image.id)
    if current is None:
        raise NotFound(f"{what}: no such image")
    added = [t for t in current.tags if t not in image.tags]
    if added:
        raise Conflict(f"{what}: tagged {', '.join(added)} since it was planned; nothing touched")
    tags = [t for t in image.tags if t in current.tags]
    for name in image.tags:
        if name not in current.tags:
            walk.moved[name] = _holder(inspect, name)
    kept_repo = repository(tags[-1]) if tags else None
    digests = [d for d in current.digests if repository(d) != kept_repo]
    if not tags and digests:  # no tag left: keep one repository's digests for the last step
        digests = [d for d in digests if repository(d) != repository(digests[-1])]
    for name in [*tags[:-1], *digests]:
        if "@" not in name and untag is not None:
            walk.untagged.append(name)  # in flight: put back if the answer is lost
            if not untag(image.id, name):
                walk.untagged.pop()
                walk.moved[name] = _holder(inspect, name)
            continue
        checked = time.time()
        if "@" not in name:
            holder = _holder(inspect, name)
            if holder != image.id:
                walk.moved[name] = holder
                continue
        walk.untagged.append(name)  # in flight: put back if the answer is lost
        try:
            rows = delete(name, False)
        except NotFound:
            walk.untagged.pop()
            continue  # gone meanwhile (a digest goes with its repository's last tag)
        deleted = deleted_ids(rows)
        if deleted and deleted[0] == image.id:
            return True
        if deleted:
            walk.foreign.append(deleted[0])
            log.error(
                f"image {short_id(deleted[0])}: deleted by the untag of {name}, which moved to "
                "it between nodegc's check and the untag",
                extra={"image": deleted[0], "tag": name, "planned_image": image.id},
            )
        elif "@" not in name:
            _give_back_if_taken(walk, name, checked, engine)
    return False


def _give_back_if_taken(walk: Walk, name: str, checked: float, engine: _Engine) -> None:
    """After an untag by name: if the engine tagged another image `name` since the check, the
    untag took it from that image; it gets it back when no image holds it now."""
    if engine.tagged_since is None:
        return
    try:
        other = engine.tagged_since(name, checked)
        if other is None or other == walk.image.id or _holder(engine.inspect, name) is not None:
            return
        engine.tag(other, name)
    except RuntimeUnavailable:
        raise
    except RuntimeError_ as exc:
        log.error(
            f"tag {name}: could not check or give back after a race with its untag",
            extra={"tag": name, "planned_image": walk.image.id, "error": str(exc)},
        )
        return
    walk.given_back[name] = other
    walk.untagged.remove(name)
    log.warning(
        f"image {short_id(other)}: tag {name} moved to it between nodegc's check and the "
        "untag, which took it: given back",
        extra={"image": other, "tag": name, "planned_image": walk.image.id},
    )


def restore(
    image_id: str, tags: Sequence[str], inspect: Inspect, tag: Tag
) -> dict[str, str | None]:
    """Put each of `tags` back on `image_id` when no image holds it now. Returns the tags left
    where they are: tag -> the image holding it (None: could not be put back)."""
    left: dict[str, str | None] = {}
    for name in tags:
        try:
            holder = _holder(inspect, name)
            if holder is not None and holder != image_id:
                left[name] = holder
                log.warning(
                    f"image {short_id(image_id)}: tag {name} not put back, it names "
                    f"{short_id(holder)} now",
                    extra={"image": image_id, "tag": name, "holder": holder},
                )
                continue
            if holder is None:
                tag(image_id, name)
                log.info(
                    f"image {short_id(image_id)}: tag {name} put back after a refused or "
                    "failed removal",
                    extra={"image": image_id, "tag": name},
                )
        except RuntimeUnavailable:
            raise
        except RuntimeError_ as exc:
            left[name] = None
            log.error(
                "could not put a tag back after a refused or failed removal; the intent "
                "journal has it",
                extra={"image": image_id, "tag": name, "error": str(exc)},
            )
    return left


def _holder(inspect: Inspect, name: str) -> str | None:
    try:
        found = inspect(name)
    except NotFound:
        return None
    return found.id if found is not None else None


def _restore_text(walk: Walk, left: dict[str, str | None]) -> str:
    back = [t for t in walk.untagged if "@" not in t and t not in left]
    parts = []
    if back:
        parts.append(f"tags put back: {', '.join(back)}")
    for name, holder in walk.moved.items():
        where = f"now names {short_id(holder)}" if holder else "removed by someone else"
        parts.append(f"tag {name} {where}: left where it is")
    for name, holder in left.items():
        if holder:
            parts.append(f"tag {name} now names {short_id(holder)}: not put back, left there")
        else:
            parts.append(f"tag {name} could not be put back: the intent journal keeps it")
    return f" ({'; '.join(parts)})" if parts else ""
