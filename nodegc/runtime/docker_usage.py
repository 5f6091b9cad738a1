"""Where the space is, as Docker knows it: one `/system/df` (images, containers' writable layers,
volumes with their sizes, the build cache) and the containers' log files under the data root.

Asked only for `report` and when image GC cannot reach its target: `/system/df` makes the engine
size every writable layer and volume (a walk of each). The log files are `stat`ed (allocated
blocks, as `du` counts them): json-file's `<DockerRootDir>/containers/<id>/<id>-json.log` (and
its rotated `.1`, `.2`, ...) and the local driver's `local-logs/container.log*`; the directory is
read where nodegc sees the data root at the engine's own path (on the host, or the chart's mount).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from nodegc.holders import Holder, HolderKind
from nodegc.model import LABEL_POD_NAME, LABEL_POD_NAMESPACE, short_id
from nodegc.runtime import RuntimeError_

log = logging.getLogger(__name__)

_ID = re.compile(r"^[0-9a-f]{64}$")
# Docker 23+ labels the volumes it creates for a container's anonymous mounts.
LABEL_ANONYMOUS = "com.docker.volume.anonymous"
_DEAD = frozenset({"created", "exited", "dead"})


def space_holders(runtime: Any) -> list[Holder] | None:
    """Every holder Docker accounts for; None where the runtime cannot say (Podman, CRI)."""
    if getattr(runtime, "podman", True) or not hasattr(runtime, "_get_json"):
        return None
    data = runtime._get_json("disk usage (where the space is)", "/system/df", "/system/df", {})
    if not isinstance(data, dict):
        raise RuntimeError_("disk usage: engine answered no object")
    containers = [c for c in data.get("Containers") or [] if isinstance(c, dict) and c.get("Id")]
    holders = image_holders(data, containers)
    holders += cache_holders(data.get("BuildCache"))
    holders += container_holders(containers)
    holders += volume_holders(data.get("Volumes"), containers)
    holders += log_holders(runtime.data_root(), containers)
    return holders


def image_holders(data: Mapping[str, Any], containers: Sequence[Mapping[str, Any]]) -> list[Holder]:
    """Images as two totals: `LayersSize` (every layer once) split into the unused images'
    own bytes (Size - SharedSize) and the rest (in use, and layers unused images share)."""
    used_ids = {str(c.get("ImageID") or "") for c in containers}
    unused = 0
    for row in data.get("Images") or []:
        if not isinstance(row, dict):
            continue
        count = int(row.get("Containers") or 0)
        in_use = count > 0 or str(row.get("Id") or "") in used_ids
        if not in_use:
            size, shared = int(row.get("Size") or 0), max(0, int(row.get("SharedSize") or 0))
            unused += max(0, size - shared)
    total = max(unused, int(data.get("LayersSize") or 0))
    return [
        Holder(HolderKind.IMAGES_IN_USE, "images in use", total - unused, False),
        Holder(HolderKind.IMAGES_UNUSED, "unused images", unused, True),
    ]


def cache_holders(rows: Any) -> list[Holder]:
    """The build cache as two totals: in use by a build now, and the rest (reclaimable);
    records that back an image layer (Shared) are counted with the images."""
    in_use = reclaimable = 0
    for row in rows or []:
        if not isinstance(row, dict) or row.get("Shared"):
            continue
        size = max(0, int(row.get("Size") or 0))
        if row.get("InUse"):
            in_use += size
        else:
            reclaimable += size
    return [
        Holder(HolderKind.BUILD_CACHE_IN_USE, "build cache in use", in_use, False),
        Holder(HolderKind.BUILD_CACHE_RECLAIMABLE, "reclaimable build cache", reclaimable, True),
    ]


def _name(row: Mapping[str, Any]) -> str:
    names = row.get("Names") or []
    return str(names[0]).lstrip("/") if names else short_id(str(row["Id"]))


def _pod(row: Mapping[str, Any]) -> str | None:
    labels = row.get("Labels") or {}
    name = labels.get(LABEL_POD_NAME)
    if not name:
        return None
    namespace = labels.get(LABEL_POD_NAMESPACE, "")
    return f"{namespace}/{name}" if namespace else str(name)


def container_holders(containers: Sequence[Mapping[str, Any]]) -> list[Holder]:
    """Each container's writable layer (`SizeRw`), running or dead."""
    out = []
    for row in containers:
        dead = str(row.get("State") or "") in _DEAD
        kind = HolderKind.CONTAINERS_DEAD if dead else HolderKind.CONTAINERS_RUNNING
        size = max(0, int(row.get("SizeRw") or 0))
        out.append(Holder(kind, _name(row), size, dead, pod=_pod(row)))
    return out


def volume_holders(rows: Any, containers: Sequence[Mapping[str, Any]]) -> list[Holder]:
    """Each volume with its size (`UsageData.Size`; -1, not computed, counts 0): anonymous ones
    no container uses apart from the rest. nodegc never removes a volume by itself."""
    used = {
        str(m.get("Name"))
        for c in containers
        for m in c.get("Mounts") or []
        if isinstance(m, dict) and m.get("Type") == "volume"
    }
    out = []
    for row in rows or []:
        if not isinstance(row, dict) or not row.get("Name"):
            continue
        name = str(row["Name"])
        usage = row.get("UsageData") or {}
        size = max(0, int(usage.get("Size") or 0))
        refs = int(usage.get("RefCount") or 0)
        anonymous = LABEL_ANONYMOUS in (row.get("Labels") or {}) or bool(_ID.match(name))
        unused = name not in used and refs <= 0
        kind = (
            HolderKind.VOLUMES_ANONYMOUS_UNUSED
            if anonymous and unused
            else HolderKind.VOLUMES_NAMED
        )
        out.append(Holder(kind, name, size, False))
    return out


def log_holders(data_root: str, containers: Sequence[Mapping[str, Any]]) -> list[Holder]:
    """Each container's log files (json-file and local drivers) under `data_root`, in allocated
    bytes; a container whose directory nodegc cannot read has none listed."""
    out = []
    for row in containers:
        cid = str(row["Id"])
        if not _ID.match(cid):
            continue
        size, main = _log_bytes(os.path.join(data_root, "containers", cid), cid)
        if main:
            dead = str(row.get("State") or "") in _DEAD
            out.append(Holder(HolderKind.LOGS, _name(row), size, dead, path=main, pod=_pod(row)))
    return out


def _log_bytes(directory: str, cid: str) -> tuple[int, str]:
    """(allocated bytes of the log files in `directory`, the current log's path; "" for none)."""
    total, main = 0, ""
    candidates = [(directory, f"{cid}-json.log"), (os.path.join(directory, "local-logs"), "")]
    for where, prefix in candidates:
        try:
            names = os.listdir(where)
        except OSError:
            continue
        for name in names:
            current = name == prefix or (not prefix and name == "container.log")
            rotated = name.startswith(f"{prefix or 'container.log'}.")
            if not (current or rotated):
                continue
            try:
                st = os.lstat(os.path.join(where, name))
            except OSError:
                continue
            total += st.st_blocks * 512
            if current:
                main = os.path.join(where, name)
    return total, main
