"""The intent journal: what nodegc is about to do to an image's names, on disk before it acts.

An image with several tags is removed one name at a time (the engines refuse to delete by id an
image tagged in several repositories, unless forced), so a process killed part-way, or an engine
killed part-way, leaves an image that lost some of its tags. The tags to put back cannot be kept
in memory: before the first name goes, the image id, every tag and digest it had and the action
are written here (atomically: temp file, fsync, rename, fsync of the directory), and the entry is
cleared only when the outcome is final (the image is gone, or it has every tag back). A later
`nodegc once` or `nodegc run` replays what is left (`nodegc.collect.intents`); `nodegc report`
only says it is pending.

Container removals are journaled too (one request each, so nothing to put back): a removal
that finished while nodegc was being killed, before its audit line was written, is recorded by
the next cycle's replay.

One file, `<state>/intents.json`, rewritten whole on every change: a batch of removals is
recorded in one write before it starts and cleared in one write when it is over, so the cost is
two fsyncs per batch, not per object.

Who removed it: right before the request that deletes an object, its id is appended to
`<state>/intents-sent.jsonl` with its intent's start (`mark_sent`: one line, one `write` on an
`O_APPEND` descriptor, no fsync — a killed process loses nothing it wrote; only a power cut
could, and then the removal is under-claimed, never over-claimed). An object the next run finds
gone is nodegc's removal only when that record says nodegc had asked for it under the intent
still pending; otherwise someone else removed it. The engine cannot say: its `delete` events
carry no client, and dockerd keeps only its last 256 events, in memory.

Thread-safe within a process; across processes the state directory's lock
(`nodegc.state.lock`) keeps to one collector at a time.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nodegc.state.files import UnsafeState, read_file
from nodegc.state.store import StateError, write_atomically

log = logging.getLogger(__name__)

JOURNAL_FILE = "intents.json"
SENT_FILE = "intents-sent.jsonl"
FORMAT_VERSION = 1
ACTION_REMOVE = "remove"
KIND_IMAGE = "image"
KIND_CONTAINER = "container"


@dataclass(frozen=True)
class Intent:
    """What is about to be done to an object: for an image, every name it had before; for a
    container, what its audit line needs if nodegc dies before writing it."""

    object_id: str
    tags: tuple[str, ...]
    digests: tuple[str, ...]
    action: str  # "remove": for an image, untag one name at a time, then delete
    reason: str
    started_at: datetime
    pid: int
    kind: str = KIND_IMAGE  # "image" or "container"
    name: str = ""  # for the audit line: an image's first tag, a container's name
    size_bytes: int = 0
    pod: str | None = None

    def merged(self, earlier: Intent) -> Intent:
        """This intent, keeping every name `earlier` (an interrupted one) had recorded: names
        gone since are still owed back if this attempt is refused too."""
        return replace(
            self,
            tags=_union(earlier.tags, self.tags),
            digests=_union(earlier.digests, self.digests),
            started_at=earlier.started_at,
        )


def _union(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))


def encode_intent(intent: Intent) -> dict[str, Any]:
    return {
        "kind": intent.kind,
        "id": intent.object_id,
        "name": intent.name,
        "tags": list(intent.tags),
        "digests": list(intent.digests),
        "size_bytes": intent.size_bytes,
        "pod": intent.pod,
        "action": intent.action,
        "reason": intent.reason,
        "started_at": intent.started_at.astimezone(UTC).isoformat(),
        "pid": intent.pid,
    }


def decode_intent(data: Any) -> Intent:
    if not isinstance(data, dict):
        raise ValueError("an entry is not an object")
    started = datetime.fromisoformat(str(data["started_at"]))
    if started.tzinfo is None:
        raise ValueError("started_at has no time zone")
    tags, digests = data.get("tags") or [], data.get("digests") or []
    if not all(isinstance(t, str) for t in [*tags, *digests]):
        raise ValueError("tags and digests are strings")
    kind = str(data.get("kind", KIND_IMAGE))
    if kind not in (KIND_IMAGE, KIND_CONTAINER):
        raise ValueError(f"unknown kind {kind!r}")
    pod = data.get("pod")
    return Intent(
        object_id=str(data["id"]),
        tags=tuple(tags),
        digests=tuple(digests),
        action=str(data["action"]),
        reason=str(data.get("reason", "")),
        started_at=started,
        pid=int(data.get("pid", 0)),
        kind=kind,
        name=str(data.get("name", "")),
        size_bytes=int(data.get("size_bytes", 0)),
        pod=str(pod) if pod is not None else None,
    )


class Journal:
    """The intents of `<directory>/intents.json`. `record` and `clear` raise StateError when the
    file cannot be written: nothing may be untagged then."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / JOURNAL_FILE
        self.sent_path = Path(directory) / SENT_FILE
        self._lock = threading.Lock()
        self._entries: dict[str, Intent] | None = None
        self.unreadable: str | None = None  # why the file could not be read, if it could not

    # -- reading ------------------------------------------------------------------------------
    def pending(self) -> list[Intent]:
        """Every entry not yet cleared, oldest first."""
        with self._lock:
            return sorted(self._load().values(), key=_order)

    def get(self, object_id: str) -> Intent | None:
        with self._lock:
            return self._load().get(object_id)

    def _load(self) -> dict[str, Intent]:
        if self._entries is not None:
            return self._entries
        try:
            raw = read_file(self.path)  # no link followed, no FIFO waited on (`state.files`)
        except UnsafeState:
            raise
        except (OSError, StateError) as exc:
            # Not knowing what is owed is not the same as owing nothing: keep the file, say so.
            self.unreadable = f"cannot read {self.path}: {getattr(exc, 'strerror', None) or exc}"
            log.error(
                "intent journal unreadable", extra={"path": str(self.path), "error": str(exc)}
            )
            return {}
        if raw is None:
            self._entries = {}
            return self._entries
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
                raise ValueError("not a nodegc intent journal of a known version")
            entries = [decode_intent(e) for e in data["intents"]]
        except (ValueError, KeyError, TypeError) as exc:
            # Written atomically, so this is damage from outside: set it aside for a person.
            aside = self.path.with_name(f"{JOURNAL_FILE}.corrupt")
            try:
                self.path.replace(aside)
            except OSError:
                aside = self.path
            log.error(
                "intent journal corrupt: set aside; images it named may lack tags",
                extra={"path": str(self.path), "kept_as": str(aside), "error": str(exc)},
            )
            self._entries = {}
            return self._entries
        self._entries = {e.object_id: e for e in entries}
        return self._entries

    def sent(self) -> set[tuple[str, datetime]]:
        """(object id, its intent's `started_at`) of every removal nodegc asked the engine for
        (`mark_sent`); lines that cannot be read are skipped (a torn last line)."""
        try:
            raw = _read_regular(self.sent_path)
        except FileNotFoundError:
            return set()
        except OSError as exc:
            log.warning(
                "record of removals asked unreadable: finished removals count as someone else's",
                extra={"path": str(self.sent_path), "error": str(exc)},
            )
            return set()
        marks: set[tuple[str, datetime]] = set()
        for line in raw.splitlines():
            try:
                data = json.loads(line)
                marks.add((str(data["id"]), datetime.fromisoformat(str(data["intent"]))))
            except (ValueError, KeyError, TypeError):
                continue
        return marks

    # -- writing ------------------------------------------------------------------------------
    def mark_sent(self, intent: Intent) -> None:
        """Record that the request deleting `intent`'s object is about to be sent (nodegc's own
        record that a removal found done later was its, tied to that intent). Raises
        StateError: then do not send."""
        line = json.dumps(
            {
                "id": intent.object_id,
                "intent": intent.started_at.astimezone(UTC).isoformat(),
                "at": datetime.now(UTC).isoformat(),
            }
        )
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            # Never a symlink, never a FIFO or device (non-blocking open, then a regular file).
            fd = os.open(self.sent_path, flags | os.O_NONBLOCK, 0o600)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(f"{self.sent_path} is not a regular file")
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise StateError(f"cannot write {self.sent_path}: {exc.strerror or exc}") from None

    def record(self, intent: Intent) -> Intent:
        """Write `intent` durably before acting on it (merged with an earlier entry for the same
        image); returns what is recorded. Raises StateError: then do not act."""
        return self.record_many([intent])[0]

    def record_many(self, intents: Iterable[Intent]) -> list[Intent]:
        """`record` for a batch of removals, in one write (one fsync for the batch, not two per
        image: an entry for an image not yet touched costs nothing at replay)."""
        with self._lock:
            if self.unreadable is not None:
                raise StateError(f"intent journal: {self.unreadable}")
            entries = dict(self._load())
            recorded = []
            for intent in intents:
                earlier = entries.get(intent.object_id)
                entry = intent.merged(earlier) if earlier is not None else intent
                entries[intent.object_id] = entry
                recorded.append(entry)
            self._save(entries)
            return recorded

    def clear(self, object_id: str) -> None:
        """The outcome for `object_id` is final: drop its entry. Raises StateError."""
        self.clear_many([object_id])

    def clear_many(self, object_ids: Iterable[str]) -> None:
        """`clear` for several objects, in one write. Raises StateError."""
        with self._lock:
            entries = dict(self._load())
            dropped = [entries.pop(i, None) for i in set(object_ids)]
            if not any(d is not None for d in dropped):
                return
            self._save(entries)

    def _save(self, entries: dict[str, Intent]) -> None:
        if not entries:
            # Nothing owed: the record of what was asked has no use any more.
            try:
                self.sent_path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning(
                    "record of removals asked not cleared",
                    extra={"path": str(self.sent_path), "error": str(exc)},
                )
        if not entries and not self.path.exists():
            self._entries = entries
            return
        data = {
            "version": FORMAT_VERSION,
            "intents": [encode_intent(e) for e in sorted(entries.values(), key=_order)],
        }
        # Compact: the C encoder (an indent would take the pure-Python one, ~10x slower).
        write_atomically(self.path, json.dumps(data, separators=(",", ":")).encode())
        self._entries = entries


def _read_regular(path: Path) -> bytes:
    """The bytes of `path`, opened without following a symlink and only if a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _order(intent: Intent) -> tuple[datetime, str]:
    return intent.started_at, intent.object_id
