"""Tag walks that survive a kill: journal first, settle after, replay what an earlier run left.

The collector removes images through `Walks` here: the intents (every tag and digest each image
has) are written to the journal before the runtime takes off the first name; an entry is
cleared when the image is gone, or when it has every tag back after a refusal or a failure.
What a kill (of nodegc or of the engine) leaves is put right by `replay`, which every non-dry
cycle runs first: an object found gone is recorded as nodegc's removal only when nodegc's own
record (`Journal.mark_sent`, written right before the deleting request) says it had asked for
it, else as `gone` (someone else removed it meanwhile); an image still there gets each missing
tag back and the cycle then
plans on the node as it was, so an image still planned is removed (finished) in that same
cycle, and one now in use or no longer planned keeps every tag. `nodegc report` only shows
`pending` entries.

A tag that names another image by now (re-pulled, or moved by `docker tag`) is not taken back:
it was not lost, it moved; whether a tag is free is asked right before it is put back, never
from an earlier listing. Digests (`repo@sha256:...`) cannot be given back by a tag call; the
engine brings a repository's digest back with its next pull.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from nodegc.model import Container, Image, Snapshot, short_id
from nodegc.runtime import NotFound, Runtime, RuntimeError_, RuntimeUnavailable
from nodegc.state.journal import ACTION_REMOVE, KIND_CONTAINER, KIND_IMAGE, Intent, Journal
from nodegc.state.store import StateDir, StateError

log = logging.getLogger(__name__)

# Who holds a tag now: an image id, or None when no image has it.
Holder = Callable[[str], str | None]


def journal_for(runtime: Runtime, state: StateDir) -> Journal:
    """The state directory's journal (every runtime: tags are put back only where the runtime
    walks them, but every runtime's removals must leave a record)."""
    return Journal(state.path)


def image_intent(image: Image, reason: str, now: datetime) -> Intent:
    return Intent(
        object_id=image.id,
        tags=image.tags,
        digests=image.digests,
        action=ACTION_REMOVE,
        reason=reason,
        started_at=now,
        pid=os.getpid(),
        kind=KIND_IMAGE,
        name=image.describe(),
        size_bytes=image.size_bytes,
    )


def container_intent(container: Container, reason: str, now: datetime) -> Intent:
    return Intent(
        object_id=container.id,
        tags=(),
        digests=(),
        action=ACTION_REMOVE,
        reason=reason,
        started_at=now,
        pid=os.getpid(),
        kind=KIND_CONTAINER,
        name=container.name,
        pod=container.pod,
    )


class Walks:
    """The removals of one batch (a pool of them), journaled together.

    Every intent of the batch is written in one go before the first removal starts; an entry is
    cleared when its outcome is final (an image gone or whole again; a container's removal
    answered either way), in one write when the batch is over (`close`), together with the
    entries of objects never started (a closed loop stops at its target before the candidates
    it did not need). A kill in between leaves entries of objects removed (replay finds them
    gone and records them) or not yet touched (replay finds nothing owed): either clears at no
    cost.
    """

    def __init__(self, runtime: Runtime, journal: Journal | None, batch: Sequence[Intent]) -> None:
        self.runtime = runtime
        self.journal = journal
        self.error: str | None = None
        self._final: set[str] = set()
        self._started: set[str] = set()
        self._lock = threading.Lock()
        self._intents: dict[str, Intent] = {}
        if journal is None or not batch:
            return
        try:
            self._intents = {i.object_id: i for i in journal.record_many(batch)}
        except StateError as exc:
            self.error = str(exc)

    def check(self, what: str, object_id: str) -> None:
        """Raise RuntimeError_ (a failure, nothing touched) when `object_id`'s intent could not
        be written: nothing is removed without its record. Marks `object_id` started."""
        with self._lock:
            self._started.add(object_id)
        if self.journal is not None and object_id not in self._intents:
            raise RuntimeError_(
                f"{what}: not attempted, the intent journal could not be written "
                f"({self.error}); nothing was touched"
            )

    def mark_sent(self, what: str, object_id: str) -> None:
        """Record, right before the request that deletes `object_id`, that nodegc asked for it
        (what tells its removals from someone else's after a kill). Raises RuntimeError_ (not
        sent) when that record cannot be written."""
        intent = self._intents.get(object_id)
        if self.journal is None or intent is None:
            return  # no intent (no journal): `check` refused the removal already
        try:
            self.journal.mark_sent(intent)
        except StateError as exc:
            raise RuntimeError_(f"{what}: not attempted: {exc}") from None

    def remove_image(self, image: Image) -> str | None:
        """`runtime.remove_image(image)`, settled: on any engine error the image is given back
        every tag it had that no other image holds now (else its entry stays for the next
        replay). Returns the runtime's note for the audit. Raises what the runtime raises;
        RuntimeError_ (nothing touched) when the intent could not be written."""
        what = f"remove image {short_id(image.id)} ({image.describe()})"
        self.check(what, image.id)
        try:
            note = self.runtime.remove_image(
                image, before_delete=lambda: self.mark_sent(what, image.id)
            )
        except RuntimeError_:
            # Refused, failed, gone part-way: the image keeps (or gets back) every name it had.
            intent = self._intents.get(image.id)
            if intent is not None and settle(
                self.runtime, intent, lambda ref: _holder_by_inspect(self.runtime, ref)
            ):
                self.finish(image.id)
            raise
        self.finish(image.id)
        return note

    def finish(self, object_id: str) -> None:
        """The outcome for `object_id` is final (and about to be recorded)."""
        with self._lock:
            self._final.add(object_id)

    def close(self) -> None:
        """Clear the entries whose outcome is final and those never started (one write); the
        rest (started, outcome unknown) stay for replay."""
        if self.journal is None:
            return
        with self._lock:
            done = self._final | (set(self._intents) - self._started)
        if done:
            _clear(self.journal, done)


def settle(runtime: Runtime, intent: Intent, holder: Holder) -> bool:
    """Give the image of `intent` back every tag it lacks. True when nothing is owed any more
    (the image is gone, or whole again); False (the entry stays, for the next replay) when the
    engine could not be asked or did not do it."""
    try:
        current = runtime.inspect_image(intent.object_id)
        if current is None:
            return True
        return put_back(runtime, intent, current, holder)
    except RuntimeError_ as exc:
        log.warning(
            "interrupted removal left in the intent journal: the engine could not be asked",
            extra={"image": intent.object_id, "error": str(exc)},
        )
        return False


def put_back(runtime: Runtime, intent: Intent, current: Image, holder: Holder) -> bool:
    """Tag `current` with every tag of `intent` it lacks (unless another image holds it now).
    True when nothing is owed any more. RuntimeUnavailable propagates after the first."""
    missing = [t for t in intent.tags if t not in current.tags]
    if missing and not getattr(runtime, "walks_tags", False):
        log.error(
            "an image lacks tags it had, and this runtime has no call to tag it back",
            extra={"image": intent.object_id, "tags": missing},
        )
        return True  # nothing nodegc can do: do not keep it owed forever
    restored: list[str] = []
    moved: list[str] = []
    whole = True
    for tag in missing:
        try:
            other = holder(tag)
            if other is not None and other != intent.object_id:
                moved.append(tag)
                continue
            runtime.tag_image(intent.object_id, tag)
            restored.append(tag)
        except RuntimeUnavailable:
            raise
        except RuntimeError_ as exc:
            whole = False
            log.error(
                "could not put a tag back; the intent journal keeps it",
                extra={"image": intent.object_id, "tag": tag, "error": str(exc)},
            )
    if restored or moved:
        log.info(
            f"image {short_id(intent.object_id)}: tags put back after an interrupted removal",
            extra={
                "image": intent.object_id,
                "tags_restored": len(restored),
                "tags_moved_to_other_images": moved,
                "tags": restored,
            },
        )
    return whole


@dataclass(frozen=True)
class Replayed:
    """What `replay` did: objects found gone, which nodegc had asked to delete (its removal had
    finished: recorded now) or not (`gone`: someone else removed them), images given back their
    tags, tags put back, entries left (the engine refused a tag)."""

    finished: tuple[Intent, ...] = ()
    gone: tuple[Intent, ...] = ()
    restored: int = 0
    tags: int = 0
    left: int = 0


# record(finished by nodegc, gone by someone else): their audit lines
Record = Callable[[Sequence[Intent], Sequence[Intent]], None]


def replay(runtime: Runtime, journal: Journal | None, record: Record) -> Replayed:
    """Put right what interrupted removals left, before anything is planned: one listing per
    kind with entries, an inspect and a tag call per missing tag. Objects found gone are passed
    to `record` (their audit lines) before their entries are cleared: as nodegc's removals when
    nodegc's record says it asked for them after their intent was written, else as someone
    else's. Raises RuntimeUnavailable (the cycle cannot go on either)."""
    if journal is None:
        return Replayed()
    pending = journal.pending()
    if not pending:
        return Replayed()
    run = _Replay.listing(runtime, pending, journal)
    try:
        for intent in pending:
            run.settle(intent)
    finally:
        # Recorded before cleared: a kill between the two repeats a line, never loses one.
        record(run.finished, run.gone)
        _clear(journal, run.final)
    done = run.replayed()
    log.info(
        "intent journal replayed",
        extra={
            "finished": len(done.finished),
            "gone_by_someone_else": len(done.gone),
            "restored": done.restored,
            "tags_restored": done.tags,
            "left": done.left,
        },
    )
    return done


@dataclass
class _Replay:
    """One replay under way: what the engine listed, and what each entry came to."""

    runtime: Runtime
    images: dict[str, Image]
    containers: set[str]
    sent: Collection[tuple[str, datetime]]
    holders: dict[str, str | None] = field(default_factory=dict)
    finished: list[Intent] = field(default_factory=list)
    gone: list[Intent] = field(default_factory=list)
    final: list[str] = field(default_factory=list)  # entries to clear
    restored: int = 0
    tags: int = 0
    left: int = 0

    @classmethod
    def listing(cls, runtime: Runtime, pending: Sequence[Intent], journal: Journal) -> _Replay:
        """One listing per kind that has entries, then the journal's record of removals asked."""
        kinds = {i.kind for i in pending}
        images = {i.id: i for i in runtime.list_images()} if KIND_IMAGE in kinds else {}
        containers = {c.id for c in runtime.list_containers()} if KIND_CONTAINER in kinds else set()
        holders: dict[str, str | None] = {tag: i.id for i in images.values() for tag in i.tags}
        return cls(runtime, images, containers, journal.sent(), holders)

    def fresh(self, tag: str) -> str | None:
        # Asked right before the tag call: a listing's answer may be stale by then.
        holder = _holder_by_inspect(self.runtime, tag)
        self.holders[tag] = holder
        return holder

    def found_gone(self, intent: Intent) -> None:
        mine = (intent.object_id, intent.started_at) in self.sent
        (self.finished if mine else self.gone).append(intent)

    def settle(self, intent: Intent) -> None:
        """Put one entry right: a container there is planned afresh like any other; an image
        there gets its tags back; one gone is recorded."""
        if intent.kind == KIND_CONTAINER:
            if intent.object_id not in self.containers:
                self.found_gone(intent)
            self.final.append(intent.object_id)
            return
        current = self.images.get(intent.object_id)
        if current is None:
            self.found_gone(intent)
            self.final.append(intent.object_id)
            return
        owed = [t for t in intent.tags if t not in current.tags]
        if put_back(self.runtime, intent, current, self.fresh):
            self.final.append(intent.object_id)
            self.restored += 1 if owed else 0
            self.tags += sum(1 for t in owed if self.holders.get(t) in (None, intent.object_id))
        else:
            self.left += 1

    def replayed(self) -> Replayed:
        return Replayed(
            finished=tuple(self.finished), gone=tuple(self.gone), restored=self.restored,
            tags=self.tags, left=self.left,
        )  # fmt: skip


@dataclass(frozen=True)
class Pending:
    """An interrupted removal not yet put right, as `nodegc report` shows it."""

    intent: Intent
    present: bool | None  # the object is still there (None: not listed since)
    missing_tags: tuple[str, ...] | None  # tags it had and lacks now (None: not listed since)
    in_progress: bool = False  # the process that wrote it still runs (a cycle beside `report`)


def pending(journal: Journal | None, snapshot: Snapshot | None) -> list[Pending]:
    """The journal's entries that owe something against what `snapshot` listed (no engine
    call): an image short of tags, an object gone whose removal is not recorded yet. With no
    snapshot (nothing listed since the removals) every entry, presence unknown (None)."""
    if journal is None:
        return []
    images: Mapping[str, Image] = {i.id: i for i in snapshot.images} if snapshot else {}
    containers = {c.id for c in snapshot.containers} if snapshot else set()
    found = []
    for intent in journal.pending():
        running = intent.pid != os.getpid() and _alive(intent.pid)
        if snapshot is None:
            found.append(Pending(intent, None, None, running))
        elif intent.kind == KIND_CONTAINER:
            if intent.object_id not in containers:  # still there: nothing owed, planned afresh
                found.append(Pending(intent, False, (), running))
        else:
            current = images.get(intent.object_id)
            if current is None:
                found.append(Pending(intent, False, (), running))
                continue
            missing = tuple(t for t in intent.tags if t not in current.tags)
            if missing:  # whole: nothing owed (a batch entry not yet touched)
                found.append(Pending(intent, True, missing, running))
    return found


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
