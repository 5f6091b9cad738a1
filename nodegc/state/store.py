"""The state directory: history persisted crash-safely, loaded forgivingly.

Writes go to a temporary file that is fsynced and renamed over the old one, so a crash leaves
either the old history or the new, never half of one. A missing or unreadable history means
"start fresh and be conservative" (every image counts as just seen) — never a crash, never a
mass deletion.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from nodegc.model import History, ImageRecord, Layer
from nodegc.state.files import (
    StateError,
    UnsafeState,
    check_directory,
    check_file,
    ensure_directory,
    read_file,
    state_path,
)

log = logging.getLogger(__name__)

HISTORY_FILE = "history.json"
FINISH_TIMES_FILE = "finish-times.json"
LAYERS_FILE = "layers.json"
WALK_FILE = "walk.json"
PROBE_FILE = ".write-probe"
# Files a cycle writes in the state directory (the audit record's name is audit.AUDIT_FILE).
STATE_FILES = (
    HISTORY_FILE,
    FINISH_TIMES_FILE,
    LAYERS_FILE,
    WALK_FILE,
    "audit.jsonl",
    "nodegc.state.lock",
    "intents.json",
)
PROBE_MARGIN = 64 * 1024
# A temp file of ours older than this belongs to a write that never finished (kill -9).
STALE_TEMP_SECONDS = 600
FORMAT_VERSION = 1


__all__ = ["StateDir", "StateError", "UnsafeState", "write_atomically"]


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return parsed


def encode(history: History) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "since": _iso(history.since),
        "images": {
            image_id: {"first_seen": _iso(r.first_seen), "last_used": _iso(r.last_used)}
            for image_id, r in sorted(history.images.items())
        },
    }


# (mount id, ctime ns of the container's directory, its log files' names, ctime ns of its empty
# layer): `load_walk`. Checked as a shape here; what names a path is checked where it is used
# (`runtime.docker_sizes`), as everything read from disk.
WalkRecord = tuple[str, int, tuple[str, ...], int]
_WALK = msgspec.json.Decoder(dict[str, tuple[str, int, tuple[str, ...], int]])


_ENCODE = json.JSONEncoder(separators=(", ", ": ")).encode


def history_text(data: dict[str, Any]) -> str:
    """The history file's text: its fields a line each, each image's record on one line (as
    readable as `indent`, which the C encoder does not do: `json.dumps(indent=1)` took 0.05 s of
    a `report` at 5,000 images, this 0.01 s). `json.loads` reads it back equal."""
    enc = _ENCODE
    lines = [f" {enc(k)}: {enc(v)}" for k, v in data.items() if k != "images"]
    images = ",\n".join(f"  {enc(k)}: {enc(v)}" for k, v in data["images"].items())
    lines.append(' "images": {' + (f"\n{images}\n }}" if images else "}"))
    return "{\n" + ",\n".join(lines) + "\n}"


def decode(data: Any) -> History:
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise ValueError("not a nodegc history of a known version")
    since = _parse(data["since"])
    if since is None:
        raise ValueError("no 'since'")
    images: dict[str, ImageRecord] = {}
    for image_id, rec in data["images"].items():
        first_seen = _parse(rec["first_seen"])
        if first_seen is None:
            raise ValueError(f"image {image_id}: no first_seen")
        images[str(image_id)] = ImageRecord(
            first_seen=first_seen, last_used=_parse(rec["last_used"])
        )
    return History(since=since, images=images)


class StateDir:
    """The state directory (0700) and the files in it (0600)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = state_path(directory)
        # What was wrong with history at the last load ("missing", "empty", "truncated ..."),
        # None when it loaded whole.
        self.history_lost: str | None = None
        # File name -> digest of the bytes last written there by this StateDir (`_save`).
        self._written: dict[str, bytes] = {}

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY_FILE

    def ensure(self) -> None:
        """Create the directory (0700 whatever the umask) if needed, refuse one that is not safe
        (`files.UnsafeState`) and prove it is writable; raise StateError."""
        ensure_directory(self.path)
        if not os.access(self.path, os.W_OK | os.X_OK):
            if _read_only(self.path):
                raise StateError(
                    f"state directory {self.path}: on a read-only filesystem; mount it "
                    "read-write or set state.directory (--state-dir)"
                )
            raise StateError(
                f"state directory {self.path}: not writable; fix its permissions or set "
                "state.directory (--state-dir)"
            )

    def check_writable(self) -> None:
        """ensure(), then prove it by writing a small file (a full disk passes the permission
        check but loses every save). Raises StateError naming the path and the cause."""
        self.ensure()
        self.check_files()
        probe = self.path / PROBE_FILE
        try:
            # As big as the history it must hold (a full disk may still take a few bytes).
            write_atomically(probe, b"\0" * (self._history_size() + PROBE_MARGIN))
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def check_files(self) -> None:
        """Refuse a hostile directory or file in it (UnsafeState: a link, FIFO, device, too big,
        not private); a directory in place of a file is a StateError. Read-only: for `report`."""
        if self.path.exists() or self.path.is_symlink():
            check_directory(self.path)
            for name in STATE_FILES:
                check_file(self.path / name)

    def _history_size(self) -> int:
        try:
            return self.history_path.stat().st_size
        except OSError:
            return 0

    def writable(self) -> bool:
        try:
            self.check_writable()
        except StateError:
            return False
        return True

    def load_history(self, now: datetime) -> History:
        """The saved history; a fresh one when it is missing or unusable, and then
        `history_lost` says what was wrong (for the log line of the rebuild that follows)."""
        self.remove_stale_temp_files()
        path = self.history_path
        self.history_lost = None
        try:
            raw = read_file(path)
        except UnsafeState:
            raise
        except (OSError, StateError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self.history_lost = f"unreadable ({reason})"
            log.warning(
                "history unreadable: rebuilding it from what the engine shows",
                extra={"path": str(path), "error": reason},
            )
            return History.empty(now)
        if raw is None:
            self.history_lost = "missing"
            log.info(
                "no history yet: building it from what the engine shows", extra={"path": str(path)}
            )
            return History.empty(now)
        try:
            history = decode(json.loads(raw))
            self._remember(path, raw)
            return history
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.history_lost = what_is_wrong(raw, exc)
            aside = path.with_name(f"{HISTORY_FILE}.corrupt-{now.strftime('%Y%m%dT%H%M%SZ')}")
            try:
                path.replace(aside)
            except OSError:
                aside = path
            log.warning(
                "history corrupt: set aside, rebuilding it from what the engine shows",
                extra={"path": str(path), "kept_as": str(aside), "problem": self.history_lost},
            )
            return History.empty(now)

    def remove_stale_temp_files(self) -> None:
        """Remove temp files that a process killed mid-write (between mkstemp and rename) left
        behind; they would pile up, one history's size each. A live writer's are seconds old."""
        cutoff = time.time() - STALE_TEMP_SECONDS
        for name in (HISTORY_FILE, FINISH_TIMES_FILE, LAYERS_FILE, WALK_FILE, PROBE_FILE):
            for leftover in self.path.glob(f".{name}.*"):
                with contextlib.suppress(OSError):
                    if leftover.stat().st_mtime < cutoff:
                        leftover.unlink()

    def save_history(self, history: History) -> None:
        """Write history atomically (temp file, fsync, rename, fsync dir). Raises StateError."""
        self._save(self.history_path, history_text(encode(history)).encode())

    def load_finish_times(self) -> dict[str, datetime]:
        """Cached finish times of dead containers; empty when missing or unreadable (a cache)."""
        path = self.path / FINISH_TIMES_FILE
        try:
            raw = read_file(path)
            data = json.loads(raw or b"{}")
            times = {str(k): v for k, v in ((k, _parse(v)) for k, v in data.items()) if v}
            if raw is not None:
                self._remember(path, raw)
            return times
        except UnsafeState:
            raise
        except (OSError, StateError, ValueError, TypeError, AttributeError):
            return {}

    def load_layers(self) -> dict[str, tuple[Layer, ...]]:
        """The layers learnt of each image id (they never change); empty when missing or
        unreadable: a cache, learnt again at the cost of two requests per image."""
        try:
            raw = read_file(self.path / LAYERS_FILE)
            return decode_layers(json.loads(raw)) if raw is not None else {}
        except UnsafeState:
            raise
        except (OSError, StateError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def save_layers(self, layers: Mapping[str, tuple[Layer, ...]]) -> None:
        data = json.dumps(encode_layers(layers), separators=(",", ":")).encode()
        self._save(self.path / LAYERS_FILE, data)

    def load_walk(self) -> dict[str, WalkRecord]:
        """What the last walk of a big node's container directories learnt, per container id
        (`collect.usage.Prefetch`, `runtime.docker_sizes.Seen`): (its writable layer's mount
        id, the ctime of its directory when its log files were listed, their names, the ctime of
        its layer when empty). Empty when missing, unreadable or not of that shape: a cache, the
        directories walked again in full."""
        try:
            raw = read_file(self.path / WALK_FILE)
            return _WALK.decode(raw) if raw is not None else {}
        except UnsafeState:
            raise
        except (OSError, StateError, msgspec.DecodeError):
            return {}

    def save_walk(self, records: Mapping[str, WalkRecord]) -> None:
        self._save(self.path / WALK_FILE, msgspec.json.encode(records))

    def save_finish_times(self, times: Mapping[str, datetime]) -> None:
        data = {k: _iso(v) for k, v in sorted(times.items())}
        self._save(self.path / FINISH_TIMES_FILE, json.dumps(data).encode())

    def _save(self, path: Path, data: bytes) -> None:
        """One atomic write of `data` to `path`, skipped when this StateDir wrote (or read)
        these very bytes there last: a warm cycle on a big node left finish-times and often
        history as they were, and each write costs two fsyncs."""
        digest = _digest(data)
        if self._written.get(path.name) == digest and path.exists():
            return
        self.ensure()
        write_atomically(path, data)
        self._written[path.name] = digest

    def _remember(self, path: Path, raw: bytes) -> None:
        """`raw` was read whole from `path`: saving the same bytes again can be skipped."""
        self._written[path.name] = _digest(raw)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def what_is_wrong(raw: bytes, exc: Exception) -> str:
    """What a history file that does not decode looks like, in a few words."""
    if not raw.strip():
        return "empty"
    if isinstance(exc, UnicodeDecodeError):
        return "garbage (not UTF-8 text)"
    if isinstance(exc, json.JSONDecodeError):
        text = raw.strip()
        if text[:1] == b"{" and text[-1:] != b"}":
            return f"truncated (the JSON ends early, after {len(raw)} bytes)"
        return f"garbage (not JSON: {exc.msg} at byte {exc.pos})"
    return f"the wrong shape (not a nodegc history: {exc})"


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def write_atomically(path: Path, data: bytes) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from exc


def encode_layers(layers: Mapping[str, tuple[Layer, ...]]) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "images": {
            image_id: [[layer.key, layer.size_bytes, layer.inodes] for layer in stack]
            for image_id, stack in sorted(layers.items())
        },
    }


def decode_layers(data: Any) -> dict[str, tuple[Layer, ...]]:
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise ValueError("not a nodegc layer cache of a known version")
    out: dict[str, tuple[Layer, ...]] = {}
    for image_id, stack in data["images"].items():
        layers = []
        for key, size, inodes in stack:
            if not isinstance(key, str) or not key:
                raise ValueError(f"image {image_id}: a layer without a key")
            for value in (size, inodes):
                if value is not None and (not isinstance(value, int) or value < 0):
                    raise ValueError(f"image {image_id}: layer {key}: bad size {value!r}")
            layers.append(Layer(key=key, size_bytes=size, inodes=inodes))
        out[str(image_id)] = tuple(layers)
    return out
