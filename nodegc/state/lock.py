"""One collector per state directory: an advisory file lock that names its holder.

`nodegc run` holds it for its whole life and `nodegc once` for its cycle, so two collectors
never act on one node's state at once (a timer beside the daemon is refused, not run twice)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from nodegc.state.files import open_file

LOCK_FILE = "nodegc.state.lock"


class AlreadyRunning(Exception):
    """Another process holds the state directory's lock; the message names its pid."""


class StateLock:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning; UnsafeState when the lock file is a link (to a
        file root's truncation would destroy), a FIFO or device, or not private."""
        fd = open_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another nodegc (pid {holder}) is collecting with state directory "
                f"{self.path.parent} (it holds {self.path}); one cycle at a time per state "
                "directory: a `nodegc run` there collects already, so stop it, wait for it, or "
                "use another state.directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the lock
            self._fd = None
