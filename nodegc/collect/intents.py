"""Tag walks that survive a kill: journal first, settle after, replay what an earlier run left.

The collector removes images through `Walks` here: the intents (every tag and digest each image
has) are written to the journal before the runtime takes off the first name; an entry is
cleared when the image is gone, or when it has every tag back after a refusal or a failure.
What a kill (of nodegc or of the engine) leaves is put right by `replay`, which every non-dry
cycle runs first: an image still there gets each missing tag back and the cycle then
plans on the node as it was, so an image still planned is removed (finished) in that same
cycle, and one now in use or no longer planned keeps every tag. `nodegc report` only shows
`pending` entries.

A tag that names another image by now (re-pulled, or moved by `docker tag`) is not taken back:
it was not lost, it moved. Digests (`repo@sha256:...`) cannot be given back by a tag call; the
engine brings a repository's digest back with its next pull.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from nodegc.model import Image, short_id
from nodegc.runtime import NotFound, Runtime, RuntimeError_, RuntimeUnavailable
from nodegc.state.journal import ACTION_REMOVE, Intent, Journal
from nodegc.state.store import StateDir, StateError

log = logging.getLogger(__name__)

# Who holds a tag now: an image id, or None when no image has it.
Holder = Callable[[str], str | None]


def journal_for(runtime: Runtime, state: StateDir) -> Journal | None:
    """The state directory's journal, where the runtime walks tags (a CRI runtime does not)."""
    return Journal(state.path) if getattr(runtime, "walks_tags", False) else None


class Walks:
    """The image removals of one batch (a pool of them), journaled together.

    Every intent of the batch is written in one go before the first removal starts; an entry is
    cleared when its image is gone or has every tag back, in one write when the batch is over
    (`close`). A kill in between leaves entries of images removed (replay finds them gone) or
    not yet touched (replay finds nothing missing): either clears at no cost.
    """

    def __init__(
        self,
        runtime: Runtime,
        journal: Journal | None,
        images: Sequence[tuple[Image, str]],
        now: datetime,
    ) -> None:
        self.runtime = runtime
        self.journal = journal
        self.error: str | None = None
        self._final: set[str] = set()
        self._lock = threading.Lock()
        self._intents: dict[str, Intent] = {}
        if journal is None or not images:
            return
        batch = [
            Intent(
                image_id=image.id,
                tags=image.tags,
                digests=image.digests,
                action=ACTION_REMOVE,
                reason=reason,
                started_at=now,
                pid=os.getpid(),
            )
            for image, reason in images
        ]
        try:
            self._intents = {i.image_id: i for i in journal.record_many(batch)}
        except StateError as exc:
            self.error = str(exc)

    def remove(self, image: Image) -> None:
        """`runtime.remove_image(image)`, settled: on any engine error the image is given back
        every tag it had (else its entry stays for the next replay). Raises what the runtime
        raises; RuntimeError_ (nothing touched) when the intent could not be written."""
        if self.journal is None:
            self.runtime.remove_image(image)
            return
        intent = self._intents.get(image.id)
        if intent is None:
            raise RuntimeError_(
                f"remove image {short_id(image.id)} ({image.describe()}): not attempted, the "
                f"intent journal could not be written ({self.error}); no tag was touched"
            )
        try:
            self.runtime.remove_image(image)
        except RuntimeError_:
            # Refused, failed, gone part-way: the image keeps (or gets back) every name it had.
            if settle(self.runtime, intent, lambda ref: _holder_by_inspect(self.runtime, ref)):
                self._done(image.id)
            raise
        self._done(image.id)

    def _done(self, image_id: str) -> None:
        with self._lock:
            self._final.add(image_id)

    def close(self) -> None:
        """Clear the entries whose outcome is final (one write); the rest stay for replay."""
        if self.journal is not None and self._final:
            _clear(self.journal, self._final)


def settle(runtime: Runtime, intent: Intent, holder: Holder) -> bool:
    """Give the image of `intent` back every tag it lacks. True when nothing is owed any more
    (the image is gone, or whole again); False (the entry stays, for the next replay) when the
    engine could not be asked or did not do it."""
    try:
        current = runtime.inspect_image(intent.image_id)
        if current is None:
            return True
        return put_back(runtime, intent, current, holder)
    except RuntimeError_ as exc:
        log.warning(
            "interrupted removal left in the intent journal: the engine could not be asked",
            extra={"image": intent.image_id, "error": str(exc)},
        )
        return False


def put_back(runtime: Runtime, intent: Intent, current: Image, holder: Holder) -> bool:
    """Tag `current` with every tag of `intent` it lacks (unless another image holds it now).
    True when nothing is owed any more. RuntimeUnavailable propagates after the first."""
    missing = [t for t in intent.tags if t not in current.tags]
    restored: list[str] = []
    moved: list[str] = []
    whole = True
    for tag in missing:
        try:
            other = holder(tag)
            if other is not None and other != intent.image_id:
                moved.append(tag)
                continue
            runtime.tag_image(intent.image_id, tag)
            restored.append(tag)
        except RuntimeUnavailable:
            raise
        except RuntimeError_ as exc:
            whole = False
            log.error(
                "could not put a tag back; the intent journal keeps it",
                extra={"image": intent.image_id, "tag": tag, "error": str(exc)},
            )
    if restored or moved:
        log.info(
            f"image {short_id(intent.image_id)}: tags put back after an interrupted removal",
            extra={
                "image": intent.image_id,
                "tags_restored": len(restored),
                "tags_moved_to_other_images": moved,
                "tags": restored,
            },
        )
    return whole


@dataclass(frozen=True)
class Replayed:
    """What `replay` did: images found gone (the removal had finished), images given back their
    tags, tags put back, entries left (the engine refused a tag)."""

    gone: int = 0
    restored: int = 0
    tags: int = 0
    left: int = 0


def replay(runtime: Runtime, journal: Journal | None) -> Replayed:
    """Put right what interrupted removals left (one image listing, a tag call per missing tag),
    before anything is planned. Raises RuntimeUnavailable (the cycle cannot go on either)."""
    if journal is None:
        return Replayed()
    pending = journal.pending()
    if not pending:
        return Replayed()
    images = {i.id: i for i in runtime.list_images()}
    holders = {tag: i.id for i in images.values() for tag in i.tags}
    gone = restored = tags = left = 0
    final: list[str] = []
    try:
        for intent in pending:
            current = images.get(intent.image_id)
            if current is None:
                gone += 1
                final.append(intent.image_id)
                continue
            owed = [t for t in intent.tags if t not in current.tags]
            if put_back(runtime, intent, current, holders.get):
                final.append(intent.image_id)
                restored += 1 if owed else 0
                tags += sum(1 for t in owed if holders.get(t) in (None, intent.image_id))
            else:
                left += 1
    finally:
        _clear(journal, final)
    done = Replayed(gone=gone, restored=restored, tags=tags, left=left)
    log.info(
        "intent journal replayed",
        extra={"gone": gone, "restored": restored, "tags_restored": tags, "left": left},
    )
    return done


@dataclass(frozen=True)
class Pending:
    """An interrupted removal not yet put right, as `nodegc report` shows it."""

    intent: Intent
    present: bool | None  # the image is still there (None: not listed since)
    missing_tags: tuple[str, ...] | None  # tags it had and lacks now (None: not listed since)


def pending(journal: Journal | None, images: Sequence[Image] | None) -> list[Pending]:
    """The journal's entries against the images listed now (no engine call); with `images`
    None (not listed since the removals), presence and missing tags are unknown (None)."""
    if journal is None:
        return []
    by_id: Mapping[str, Image] | None = {i.id: i for i in images} if images is not None else None
    found = []
    for intent in journal.pending():
        if by_id is None:
            found.append(Pending(intent, None, None))
            continue
        current = by_id.get(intent.image_id)
        missing = tuple(t for t in intent.tags if current is not None and t not in current.tags)
        found.append(Pending(intent, current is not None, missing))
    return found


def _holder_by_inspect(runtime: Runtime, reference: str) -> str | None:
    try:
        found = runtime.inspect_image(reference)
    except NotFound:
        return None
    return found.id if found is not None else None


def _clear(journal: Journal, image_ids: Iterable[str]) -> None:
    image_ids = list(image_ids)
    if not image_ids:
        return
    try:
        journal.clear_many(image_ids)
    except StateError as exc:
        # The entries stay: the next replay finds the outcome final and clears them then.
        log.warning(
            "intent journal entries not cleared", extra={"images": image_ids, "error": str(exc)}
        )
