"""Where the space is on a big Docker node, without the engine's whole `/system/df`.

`/system/df` sizes every container's writable layer and (dockerd before API 1.42) counts each
image's containers over all of them: 21 s at 5,000 images and 20,000 containers on dockerd 20.10,
where both listings take under 3 s. Past `policy.breakdown.FULL_USAGE_MAX_CONTAINERS` the
breakdown is made from cheaper answers (`docker_usage.lean_space_holders`):

- the images from the snapshot's layers (no request: `policy.breakdown.image_split`);
- each container's writable layer measured by nodegc itself where the engine keeps it in
  overlay2 and nodegc sees the data root: `image/overlay2/layerdb/mounts/<id>/mount-id` names
  the layer, `overlay2/<mount-id>/diff` holds its files, counted in allocated blocks as `du`
  counts them (dockerd's `SizeRw` counts apparent sizes); elsewhere the engine's listing with
  sizes (`/containers/json?all=1&size=1`, the same walk as `/system/df`'s, without the rest);
- volumes and the build cache from `/system/df?type=volume&type=build-cache` (API 1.42+: the
  engine computes only those); before 1.42, `/volumes` (and `dangling=true` for the ones no
  container uses) with each local volume's `_data` measured by nodegc, and the build cache
  from the snapshot where the cycle asked it, else unknown (said as such, never 0).

Every walk stays on one filesystem, follows no symbolic link (a container writes what it
likes in its layer) and counts a file with several links once.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# A container's id, and the name of its writable layer's directory (overlay2's mount id; the
# init layer's `<id>-init` is not one): 64 hex digits.
_ID = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def tree_bytes(path: str) -> int | None:
    """Allocated bytes of what the directory at `path` holds (what `du -s` says, less the
    directory's own block: an empty writable layer is 0, as the engine counts it), on `path`'s
    filesystem only, no link followed, a file with several names once; None where `path`
    cannot be read."""
    found = _tree(path)
    return found[0] if found is not None else None


def _tree(path: str) -> tuple[int, os.stat_result, bool] | None:
    """(`tree_bytes`, the stat of `path` taken before its entries were read, whether it had
    any)."""
    try:
        top = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(top.st_mode):
        return top.st_blocks * 512, top, False
    device, total, held = top.st_dev, 0, False
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue  # gone meanwhile, or not ours to read: what is left is counted
        held = held or bool(entries)
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != device:
                continue  # a mount inside (a volume's bind): not this tree's bytes
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
    return total, top, held


def _read_small(path: str) -> str | None:
    """A small file's text, opened without following a link and without waiting (a FIFO in its
    place reads as nothing, a directory fails); None where it cannot be read. What it holds is
    checked by the caller (a mount id is 64 hex digits): no `fstat` per container."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return os.read(fd, 256).decode("ascii", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def _overlay2_dirs(data_root: str) -> tuple[str, str] | None:
    """(layerdb's `mounts`, the driver's layers) under `data_root`, where nodegc sees them."""
    mounts = os.path.join(data_root, "image", "overlay2", "layerdb", "mounts")
    layers = os.path.join(data_root, "overlay2")
    return (mounts, layers) if os.path.isdir(mounts) and os.path.isdir(layers) else None


def _writable(
    dirs: tuple[str, str], cid: str, before: Seen, stable: int
) -> tuple[int | None, str, int]:
    """(bytes of the container's writable layer or None, its mount id, the ctime to keep of an
    empty layer): by the mount id kept (`before`), else (or where that names no layer) by the
    engine's `mount-id` file."""
    mounts, layers = dirs
    if before.mount and _ID.match(before.mount):  # kept on disk: checked before it names a path
        size, empty = _layer(f"{layers}/{before.mount}/diff", before.empty, stable)
        if size is not None:
            return size, before.mount, empty
    mount = _read_small(f"{mounts}/{cid}/mount-id")  # (paths of hex ids: no join)
    if mount is None or not _ID.match(mount):
        return None, "", 0  # removed meanwhile, or not a layer of this driver
    size, empty = _layer(f"{layers}/{mount}/diff", 0, stable)
    return size, mount, empty


def _layer(path: str, empty_at: int, stable: int) -> tuple[int | None, int]:
    """(`tree_bytes(path)`, its ctime when it holds nothing and has not changed for a while: 0
    otherwise). A layer kept as empty at `empty_at` whose ctime is still that holds nothing:
    no entry can be made in it without moving its ctime, which no process can set back."""
    if empty_at:
        try:
            st = os.lstat(path)
        except OSError:
            return None, 0
        if st.st_ctime_ns == empty_at and stat.S_ISDIR(st.st_mode):
            return 0, empty_at
    found = _tree(path)
    if found is None:
        return None, 0
    size, top, held = found
    settled = stat.S_ISDIR(top.st_mode) and not held and top.st_ctime_ns < stable
    return size, top.st_ctime_ns if settled else 0


def local_volume_bytes(data_root: str, rows: Sequence[Any]) -> dict[str, int]:
    """Volume name -> allocated bytes of its `_data`, for the local driver's volumes kept under
    `data_root/volumes` (a volume elsewhere, or of another driver, is not walked)."""
    out: dict[str, int] = {}
    for row in rows:
        if not isinstance(row, dict) or row.get("Driver") != "local":
            continue
        name = str(row.get("Name") or "")
        if not _NAME.match(name):
            continue
        size = tree_bytes(os.path.join(data_root, "volumes", name, "_data"))
        if size is not None:
            out[name] = size
    return out


def log_bytes(directory: str, cid: str) -> tuple[int, str]:
    """(allocated bytes of a container's log files in its `directory`, the current log's path;
    "" for none): json-file's `<id>-json.log` and its rotated `.1`, `.2`, ..., the local
    driver's `local-logs/container.log*`. One `listdir`, a second only where `local-logs` is."""
    return _logs(directory, cid, Seen(), 0)[0]


def _logs(
    directory: str, cid: str, before: Seen, stable: int
) -> tuple[tuple[int, str], int, tuple[str, ...]]:
    """(`log_bytes`, the directory's ctime to keep and the log names found then: 0 and none
    where the directory changed lately or holds `local-logs`, whose own entries its ctime does
    not follow). The names kept (`before`) serve while the directory's ctime is the one kept:
    each log is still measured, only the `listdir` is saved."""
    try:
        home = os.lstat(directory).st_ctime_ns  # before the listing: a later change moves it
    except OSError:
        return (0, ""), 0, ()
    current = f"{cid}-json.log"
    # The names kept are read from disk: used only if every one is this container's log.
    if before.home == home and _own_logs(before.logs, current) == before.logs:
        return _logs_in(directory, before.logs, current), home, before.logs
    try:
        names = os.listdir(directory)
    except OSError:
        return (0, ""), 0, ()
    found = _own_logs(names, current)
    total, main = _logs_in(directory, found, current)
    if "local-logs" not in names:
        return (total, main), (home if home < stable else 0), found
    where = os.path.join(directory, "local-logs")
    try:
        local = os.listdir(where)
    except OSError:
        local = []
    more, other = _logs_in(where, local, "container.log")
    return (total + more, main or other), 0, ()


def _own_logs(names: Iterable[str], current: str) -> tuple[str, ...]:
    """The names of json-file's logs of the container (`current` and its rotated `current.N`),
    none with a path in it."""
    return tuple(
        n for n in names
        if (n == current or n.startswith(f"{current}.")) and "/" not in n and "\0" not in n
    )  # fmt: skip


def _logs_in(where: str, names: Iterable[str], current: str) -> tuple[int, str]:
    total, main = 0, ""
    for name in names:
        if name != current and not name.startswith(f"{current}."):
            continue
        try:
            st = os.lstat(os.path.join(where, name))
        except OSError:
            continue
        total += st.st_blocks * 512
        if name == current:
            main = os.path.join(where, name)
    return total, main


@dataclass(frozen=True, slots=True)
class Seen:
    """What a walk learnt of one container's directories, for the next to skip what has not
    changed: `mount`, its writable layer's mount id (it never changes); `home`, the ctime of the
    container's directory when `logs` (its json-file logs' names) were listed there; `empty`,
    the ctime of its layer's `diff` when that held nothing. A directory's ctime moves with every
    entry made, removed or renamed in it, and no process can set it back; one changed within
    `SETTLE_NS` of the walk is not kept (a change in the same clock tick would not move it).
    "" and 0: not known."""

    mount: str = ""
    home: int = 0
    logs: tuple[str, ...] = ()
    empty: int = 0


SETTLE_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class Walked:
    """What nodegc measured of each container directory it found under the data root: its
    log files (`log_bytes`) and, with overlay2, its writable layer (None: not measurable here),
    and what the next walk may keep of it (`Seen`)."""

    logs: Mapping[str, tuple[int, str]]
    writable: Mapping[str, int] | None
    seen: Mapping[str, Seen] = field(default_factory=dict)


def walk_containers(
    data_root: str,
    overlay2: bool,
    ids: Iterable[str] | None = None,
    seen: Mapping[str, Seen] | None = None,
    now_ns: int | None = None,
) -> Walked:
    """Measure the containers `ids`, or every container directory under `data_root` (a walk
    started before the engine has listed them: `collect.usage.prefetch`); `seen`: what an
    earlier walk learnt (`Seen`), `now_ns` the time the walk began (the clock's)."""
    if ids is None:
        try:
            ids = [n for n in os.listdir(os.path.join(data_root, "containers")) if _ID.match(n)]
        except OSError:
            ids = []
    stable = (time.time_ns() if now_ns is None else now_ns) - SETTLE_NS
    dirs = _overlay2_dirs(data_root) if overlay2 else None
    homes, known, unknown = os.path.join(data_root, "containers"), seen or {}, Seen()
    logs: dict[str, tuple[int, str]] = {}
    writable: dict[str, int] | None = {} if dirs is not None else None
    learnt: dict[str, Seen] = {}
    for cid in ids:
        if not _ID.match(cid):
            continue  # an engine's odd id names no path of ours
        before = known.get(cid, unknown)
        logs[cid], home, names = _logs(f"{homes}/{cid}", cid, before, stable)
        mount, empty = "", 0
        if dirs is not None and writable is not None:
            size, mount, empty = _writable(dirs, cid, before, stable)
            if size is not None:
                writable[cid] = size
        if not (mount or home):
            continue  # nothing that lasts
        same = (mount, home, names, empty) == (before.mount, before.home, before.logs, before.empty)
        learnt[cid] = before if same else Seen(mount, home, names, empty)
    return Walked(logs, writable, learnt)


def containers_on_disk(data_root: str) -> int:
    """How many container directories the engine keeps under `data_root` (0: none seen)."""
    try:
        return len(os.listdir(os.path.join(data_root, "containers")))
    except OSError:
        return 0


def api_at_least(version: str, want: tuple[int, int]) -> bool:
    """Whether the API version the client speaks ("1.41") is at least `want`."""
    match = re.match(r"^(\d+)\.(\d+)", version or "")
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= want
