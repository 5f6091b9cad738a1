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
    try:
        top = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(top.st_mode):
        return top.st_blocks * 512
    device, total = top.st_dev, 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue  # gone meanwhile, or not ours to read: what is left is counted
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
    return total


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


def overlay2_writable_bytes(
    data_root: str, container_ids: Iterable[str], mounts: dict[str, str] | None = None
) -> dict[str, int] | None:
    """Container id -> allocated bytes of its writable layer (overlay2's `diff` directory), for
    the containers whose layer nodegc finds; None where nodegc does not see the driver's
    directories under `data_root` (another driver, or the data root not mounted here).
    `mounts`: the mount ids known already (a container's never changes: learnt once, kept by
    `collect.usage.Prefetch`), where those read now are added; one whose layer is not there is
    read again."""
    where = os.path.join(data_root, "image", "overlay2", "layerdb", "mounts")
    layers = os.path.join(data_root, "overlay2")
    if not (os.path.isdir(where) and os.path.isdir(layers)):
        return None
    known = mounts if mounts is not None else {}
    out: dict[str, int] = {}
    for cid in container_ids:
        if not _ID.match(cid):
            continue
        mount_id = known.get(cid)
        size = tree_bytes(f"{layers}/{mount_id}/diff") if mount_id else None
        if size is None:
            mount_id = _read_small(f"{where}/{cid}/mount-id")  # (paths of hex ids: no join)
            if mount_id is None or not _ID.match(mount_id):
                known.pop(cid, None)
                continue  # removed meanwhile, or not a layer of this driver
            known[cid] = mount_id
            size = tree_bytes(f"{layers}/{mount_id}/diff")
        if size is not None:
            out[cid] = size
    return out


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
    try:
        names = os.listdir(directory)
    except OSError:
        return 0, ""
    total, main = _logs_in(directory, names, f"{cid}-json.log")
    if "local-logs" in names:
        where = os.path.join(directory, "local-logs")
        try:
            local = os.listdir(where)
        except OSError:
            local = []
        more, other = _logs_in(where, local, "container.log")
        total, main = total + more, main or other
    return total, main


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
class Walked:
    """What nodegc measured of each container directory it found under the data root: its
    log files (`log_bytes`) and, with overlay2, its writable layer (None: not measurable here),
    and the mount id of each walked container's layer (to keep: it never changes)."""

    logs: Mapping[str, tuple[int, str]]
    writable: Mapping[str, int] | None
    mounts: Mapping[str, str] = field(default_factory=dict)


def walk_containers(
    data_root: str,
    overlay2: bool,
    ids: Iterable[str] | None = None,
    mounts: Mapping[str, str] | None = None,
) -> Walked:
    """Measure the containers `ids`, or every container directory under `data_root` (a walk
    started before the engine has listed them: `collect.usage.prefetch`); `mounts`: the mount
    ids known already (`overlay2_writable_bytes`)."""
    if ids is None:
        try:
            ids = [n for n in os.listdir(os.path.join(data_root, "containers")) if _ID.match(n)]
        except OSError:
            ids = []
    ids = [cid for cid in ids if _ID.match(cid)]  # an engine's odd id names no path of ours
    where = os.path.join(data_root, "containers")
    logs = {cid: log_bytes(f"{where}/{cid}", cid) for cid in ids}
    known = dict(mounts or {})
    writable = overlay2_writable_bytes(data_root, ids, known) if overlay2 else None
    return Walked(logs, writable, {cid: known[cid] for cid in ids if cid in known})


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
