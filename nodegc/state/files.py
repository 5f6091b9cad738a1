"""Opening what is in the state directory safely: no link followed, nothing but regular files of
a sane size, never a hang.

The state directory is root's (0700). Anyone who could write it could plant `audit.jsonl` or the
lock file as a symbolic link to a root-owned file (which root's nodegc would then truncate), a
FIFO in place of `layers.json` (a read that never returns) or a link to /dev/zero (a read that
never ends). So the directory is created 0700 whatever the umask; a directory or file that is a
link, not root's (when nodegc runs as root) or writable by group or others is refused
(`UnsafeState`, exit 2, the message names the path and the fix); files are opened with
O_NOFOLLOW and O_NONBLOCK, checked with fstat to be regular and at most `MAX_STATE_BYTES`, and
replaced atomically through a temporary file in the same directory.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

# A state file larger than this is not one nodegc wrote (history of 100k images: ~15 MB).
MAX_STATE_BYTES = 256 * 1024 * 1024
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
}


class StateError(Exception):
    """The state directory cannot be used; the message says which path and why."""


class UnsafeState(StateError):
    """The state directory or a file in it is not one nodegc may trust (a link, a FIFO or
    device, too big, another user's, writable by others). Never worked around: exit 2."""


def kind_of(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def state_path(directory: str | os.PathLike[str]) -> Path:
    """The state directory as a Path; an empty one (which Path would read as the current
    directory) is refused."""
    if not os.fspath(directory).strip():
        raise UnsafeState(
            "state directory is empty (the state files would land in the current directory): "
            "set state.directory (--state-dir) to a path such as /var/lib/nodegc"
        )
    return Path(directory)


def ensure_directory(path: Path) -> None:
    """Create `path` 0700 (its missing parents 0755) whatever the umask, then `check_directory`.
    Raises StateError (cannot create) or UnsafeState."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        _create(path)
    except OSError:
        pass  # said precisely by check_directory
    check_directory(path)


def _create(path: Path) -> None:
    old = os.umask(0o022)  # the parents: traversable, writable by their owner only
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            return  # created meanwhile; checked next
        os.chmod(path, 0o700, follow_symlinks=False)
    except OSError as exc:
        raise StateError(f"state directory {path}: cannot create ({exc.strerror})") from exc
    finally:
        os.umask(old)


def check_directory(path: Path) -> None:
    """Refuse a state directory that is a link, not a directory, or not private enough."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise StateError(f"state directory {path}: {exc.strerror}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeState(
            f"state directory {path} is a symbolic link (to {os.readlink(path)}); nodegc follows "
            "no link in its state: set state.directory (--state-dir) to the real directory"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"state directory {path}: Not a directory ({kind_of(st.st_mode)})")
    _check_owner_and_mode(path, st, "state directory", "chmod 700")


def _check_owner_and_mode(path: Path, st: os.stat_result, what: str, fix: str) -> None:
    if os.geteuid() == 0 and st.st_uid != 0:
        raise UnsafeState(
            f"{what} {path} belongs to uid {st.st_uid}, not root: another user could replace "
            f"what nodegc (root) writes there; `chown root:root {path}` or move it away"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeState(
            f"{what} {path} is writable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): anyone could plant links there; `{fix} {path}`"
        )


def check_file(path: Path) -> bool:
    """Whether a state file exists (False: missing) that nodegc may use. Raises UnsafeState for
    a link, a FIFO, a device, a socket, one too big or not private enough, and StateError for a
    directory in its place (history then starts fresh for a dry run: not a danger)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StateError(f"state file {path}: {exc.strerror}") from exc
    _check_stat(path, st)
    return True


def _check_stat(path: Path, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise StateError(
            f"state directory {path.parent}: {path.name} is not a regular file (a directory is "
            f"in its place), so {path.name} cannot be saved; move it away"
        )
    if not stat.S_ISREG(st.st_mode):
        target = f" to {os.readlink(path)}" if stat.S_ISLNK(st.st_mode) else ""
        raise UnsafeState(
            f"state file {path} is {kind_of(st.st_mode)}{target}, not a regular file; nodegc "
            "opens only regular files in its state directory (no link is followed): remove it "
            "and nodegc makes a new one"
        )
    if st.st_size > MAX_STATE_BYTES:
        raise UnsafeState(
            f"state file {path} is {st.st_size} bytes, more than nodegc ever writes "
            f"({MAX_STATE_BYTES}); move it away and nodegc starts it again"
        )
    _check_owner_and_mode(path, st, "state file", "chmod 600")


def open_file(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open without following a link or blocking on a FIFO; the descriptor is checked to be
    a regular, sane file before it is returned (then blocking as usual). Raises UnsafeState,
    StateError (a directory in the way) or OSError (FileNotFoundError without O_CREAT)."""
    flags |= os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            check_file(path)  # says what is in the way
        raise
    try:
        _check_stat(path, os.fstat(fd))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: Path) -> bytes | None:
    """The whole of a state file; None when it does not exist. Raises UnsafeState, StateError
    (a directory in its place) or OSError (unreadable)."""
    try:
        fd = open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > MAX_STATE_BYTES:  # grew while read
                raise UnsafeState(f"state file {path} grew past {MAX_STATE_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
