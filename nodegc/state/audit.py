"""The audit record: one JSON line per removal attempt, appended to `<state>/audit.jsonl`, and
one line of its own kind (`"event": "target-missed"`) when image GC could not reach its target:
the filesystem, the bytes needed and freed, and the biggest holders nodegc may not touch. Readers
of removals (`history`, the intent replay) tell them apart with `is_removal`.

Each line is written with a single `os.write` on an `O_APPEND` descriptor, so lines from several
writers (threads, or a `nodegc once` next to the daemon) never interleave and a crash leaves at
worst one torn last line, which readers skip and count instead of failing. The file rotates by
size (audit.jsonl -> audit.jsonl.1 -> ... -> audit.jsonl.N) and every file is created 0600.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from nodegc.clock import Clock, utcnow
from nodegc.config import Settings
from nodegc.model import RemovalResult
from nodegc.state.files import StateError, ensure_directory, open_file, read_file
from nodegc.units import iso

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 3
# An engine's error text can be long; the audit keeps enough of it to say what went wrong.
MAX_DETAIL_CHARS = 2000

# The `event` of a record that is not a removal: image GC missed its target (issue 22).
TARGET_MISSED = "target-missed"

HEADERS = ["TIME", "AGO", "KIND", "OUTCOME", "REASON", "ID", "NAME", "SIZE", "DETAIL"]


def audit_path(settings: Settings) -> Path:
    """Where the daemon and `nodegc once` write the audit record."""
    return Path(settings.state.directory) / AUDIT_FILE


class AuditLog:
    """Appends removal attempts to `path` as JSON lines; thread-safe; usable as a listener.

    Writing never raises: a failed write (disk full, read-only state) is logged once per
    distinct error and counted in `write_errors`, so the collector's cycle goes on.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
        clock: Clock = utcnow,
        *,
        node: str | None = None,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"audit max_bytes = {max_bytes}: must be above 0")
        if backups < 0:
            raise ValueError(f"audit backups = {backups}: must not be negative")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.clock = clock
        self.node = socket.gethostname() if node is None else node
        self.write_errors = 0
        self.last_error: str | None = None
        self.skipped_lines = 0  # torn or garbage lines met by the last `read`
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._needs_newline = False

    # -- writing ----------------------------------------------------------------------------
    def record(self, result: RemovalResult) -> None:
        """Append one line for `result`."""
        self._append(encode(result, self.clock(), self.node))

    __call__ = record

    def record_event(self, event: str, fields: Mapping[str, Any]) -> None:
        """Append one line of its own kind (`event`, e.g. TARGET_MISSED) with `fields`."""
        self._append(encode_event(event, fields, self.clock(), self.node))

    def _append(self, data: bytes) -> None:
        with self._lock:
            try:
                self._write(data)
            except (OSError, StateError) as exc:
                self.write_errors += 1
                message = f"{getattr(exc, 'strerror', None) or exc}"
                if message != self.last_error:
                    log.warning(
                        "audit record not written",
                        extra={"path": str(self.path), "error": message},
                    )
                self.last_error = message
            else:
                self.last_error = None

    def close(self) -> None:
        """Close the file; a later `record` opens it again."""
        with self._lock:
            self._close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, data: bytes) -> None:
        fd = self._current()
        if self._should_rotate(fd, len(data)):
            fd = self._rotate(fd, len(data))
        if self._needs_newline:
            data = b"\n" + data
        written = os.write(fd, data)  # the one write: a whole line or (disk full) a fragment
        self._needs_newline = False
        if written != len(data):
            # Terminate the fragment so only this line is lost, not the next one too.
            try:
                os.write(fd, b"\n")
            except OSError:
                self._needs_newline = True
            raise OSError(errno.ENOSPC, f"short write: {written} of {len(data)} bytes")

    def _current(self) -> int:
        """The open descriptor of `path`, reopened when the file was rotated or removed."""
        if self._fd is not None:
            if _same_file(self._fd, self.path):
                return self._fd
            self._close()
        ensure_directory(self.path.parent)
        # No link followed, no FIFO waited on, only a private regular file (`state.files`).
        fd = open_file(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        size = os.fstat(fd).st_size
        # A previous writer died mid-line (or the disk filled): start on a fresh line.
        self._needs_newline = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        self._fd = fd
        return fd

    def _should_rotate(self, fd: int, incoming: int) -> bool:
        size = os.fstat(fd).st_size
        return size > 0 and size + incoming > self.max_bytes

    def _rotate(self, fd: int, incoming: int) -> int:
        """Shift the backups and start a new file. An exclusive lock on the full file, and the
        check that `path` still names it, keep two writers from rotating the same file twice."""
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if _same_file(fd, self.path) and self._should_rotate(fd, incoming):
                for n in range(self.backups - 1, 0, -1):
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(_backup(self.path, n), _backup(self.path, n + 1))
                if self.backups:
                    os.replace(self.path, _backup(self.path, 1))
                else:
                    os.unlink(self.path)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._close()
        return self._current()

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    # -- reading ----------------------------------------------------------------------------
    def read(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Entries of every file, oldest first; torn or garbage lines are skipped and counted
        in `skipped_lines`. Raises OSError when a file exists but cannot be read."""
        with self._lock:
            entries, self.skipped_lines = read_audit(self.path, since)
        return entries


def encode(result: RemovalResult, when: datetime, node: str) -> bytes:
    """One audit line (ASCII JSON, newline-terminated) for `result`."""
    entry = {
        "time": iso(when),
        "kind": result.kind,
        "id": result.id,
        "name": result.name,
        "tags": list(result.tags),
        "pod": result.pod,
        "size_bytes": result.size_bytes,
        "reason": str(result.reason),
        "outcome": str(result.outcome),
        "detail": result.detail[:MAX_DETAIL_CHARS],
        "node": node,
    }
    return (json.dumps(entry, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


def encode_event(event: str, fields: Mapping[str, Any], when: datetime, node: str) -> bytes:
    """One audit line of kind `event` (never a removal: it has no `outcome`)."""
    entry = {"time": iso(when), "event": event, **fields, "node": node}
    return (json.dumps(entry, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


def is_removal(entry: Mapping[str, Any]) -> bool:
    """Whether an audit entry is a removal attempt (not an `event` such as TARGET_MISSED)."""
    return "event" not in entry


def _backup(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def audit_files(path: Path) -> list[Path]:
    """The rotated files oldest first (highest number first), then `path` itself."""
    numbered: list[tuple[int, Path]] = []
    for candidate in path.parent.glob(f"{path.name}.*"):
        suffix = candidate.name[len(path.name) + 1 :]
        if suffix.isdigit():
            numbered.append((int(suffix), candidate))
    return [p for _, p in sorted(numbered, reverse=True)] + [path]


def parse_entry(raw: bytes) -> tuple[dict[str, Any], datetime] | None:
    """A line's entry and its time; None for a line that is not a timed JSON object."""
    try:
        entry = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("time"), str):
        return None
    try:
        when = datetime.fromisoformat(entry["time"])
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return entry, when


def read_audit(path: Path, since: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
    """(entries oldest first, number of skipped torn or garbage lines).

    `since` (aware) keeps entries at or after it. A missing file is empty; any other OSError
    (permission denied, ...) propagates.
    """
    entries: list[dict[str, Any]] = []
    skipped = 0
    for file in audit_files(path):
        data = read_file(file)  # no link followed, no FIFO waited on (`state.files`)
        if data is None:
            continue
        lines = data.split(b"\n")
        if lines.pop():  # text after the last newline: a torn (or in-flight) line
            skipped += 1
        for raw in lines:
            if not raw.strip():
                continue
            parsed = parse_entry(raw)
            if parsed is None:
                skipped += 1
                continue
            entry, when = parsed
            if since is None or when >= since:
                entries.append(entry)
    return entries, skipped
