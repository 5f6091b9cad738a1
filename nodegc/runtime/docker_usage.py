"""Where the space is, as Docker knows it: one `/system/df` (images, containers' writable layers,
volumes with their sizes, the build cache) and the containers' log files under the data root.

Asked only for `report` and when image GC cannot reach its target: `/system/df` makes the engine
size every writable layer and volume (a walk of each). The log files are `stat`ed (allocated
blocks, as `du` counts them): json-file's `<DockerRootDir>/containers/<id>/<id>-json.log` (and
its rotated `.1`, `.2`, ...) and the local driver's `local-logs/container.log*`; the directory is
read where nodegc sees the data root at the engine's own path (on the host, or the chart's mount).

Podman answers the same `/system/df` (4.3 and 5.x: images with Size and SharedSize but
`LayersSize` 0, containers' `SizeRw`, volumes with their sizes and RefCount, no build cache: the
kinds `build_cache_*` are unknown there); its log files are wherever each container's `LogPath`
(inspect, one request per container, only when the breakdown is asked) says: k8s-file's
`ctr.log`, or nothing for journald.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nodegc.holders import Holder, HolderKind, Holdings
from nodegc.model import (
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    BuildCacheRecord,
    Container,
    short_id,
)
from nodegc.runtime import NotFound, RuntimeError_
from nodegc.runtime.docker.decoding import writable_sizes
from nodegc.runtime.docker_sizes import (
    Walked,
    api_at_least,
    containers_on_disk,
    local_volume_bytes,
    log_bytes,
    walk_containers,
)

log = logging.getLogger(__name__)

_ID = re.compile(r"^[0-9a-f]{64}$")
# Docker 23+ labels the volumes it creates for a container's anonymous mounts.
LABEL_ANONYMOUS = "com.docker.volume.anonymous"
_DEAD = frozenset({"created", "exited", "dead"})


_NO_BUILD_CACHE = frozenset({HolderKind.BUILD_CACHE_IN_USE, HolderKind.BUILD_CACHE_RECLAIMABLE})


def space_holders(runtime: Any, images: Sequence[Holder] | None = None) -> Holdings | None:
    """Every holder Docker or Podman accounts for; None where the runtime is not one (CRI).
    `images`: dockerd's images as the snapshot's layers split them (`/system/df`'s own split
    counts the containers' snapshots among the images with the containerd image store)."""
    if not hasattr(runtime, "_get_json") or not hasattr(runtime, "podman"):
        return None
    podman = bool(runtime.podman)
    data = runtime._get_json("disk usage (where the space is)", "/system/df", "/system/df", {})
    if not isinstance(data, dict):
        raise RuntimeError_("disk usage: engine answered no object")
    containers = [c for c in data.get("Containers") or [] if isinstance(c, dict) and c.get("Id")]
    holders = image_holders(data, containers) if images is None or podman else list(images)
    holders += [] if podman else cache_holders(data.get("BuildCache"))
    if podman:
        logs, inside = podman_log_holders(runtime, containers)
        # Podman 5 counts a container's userdata directory, its k8s-file log there included,
        # in `SizeRw` (5.8.6: 100,272,892 for a 12-byte layer and a 100 MB log; 4.3.1: 12).
        holders += container_holders(containers, inside if podman_major(runtime) >= 5 else {})
    else:
        logs = log_holders(runtime.data_root(), containers)
        holders += container_holders(containers)
    holders += volume_holders(data.get("Volumes"), containers)
    holders += logs
    return Holdings(tuple(holders), _NO_BUILD_CACHE if podman else frozenset())


@dataclass(frozen=True, slots=True)
class Known:
    """What the observation already tells the breakdown (`lean_space_holders`): the images
    split by the policy from the snapshot's layers, the containers listed, and the build cache
    records where the cycle asked them (None: not asked)."""

    images: tuple[Holder, ...]
    containers: tuple[Container, ...]
    build_cache: tuple[BuildCacheRecord, ...] | None = None


def lean_space_holders(runtime: Any, known: Known, walked: Walked | None = None) -> Holdings | None:
    """Every holder Docker accounts for, without the whole `/system/df` (a big node: see
    `runtime.docker_sizes`); None where the runtime is not dockerd (Podman, CRI). `walked`:
    the container directories measured already (`walk_containers`), the rest measured now."""
    found = _dockerd_root(runtime)
    if found is None:
        return None
    root, overlay2 = found
    holders = list(known.images)
    unknown: frozenset[HolderKind] = frozenset()
    if api_at_least(str(getattr(runtime, "api_version", "")), (1, 42)):
        types = ["volume", "build-cache"]
        query = urllib.parse.urlencode([("type", t) for t in types])
        data = runtime._get_json(
            "disk usage (volumes, build cache)", f"/system/df?{query}", "/system/df",
            {"type": types},
        )  # fmt: skip
        if not isinstance(data, dict):
            raise RuntimeError_("disk usage: engine answered no object")
        holders += cache_holders(data.get("BuildCache"))
        holders += volume_holders(data.get("Volumes"), ())
    else:
        if known.build_cache is None:
            unknown = _NO_BUILD_CACHE
        else:
            holders += cache_holders([_cache_row(r) for r in known.build_cache])
        holders += _local_volumes(runtime, root)
    containers = known.containers
    walked = complete(walked, root, overlay2, [c.id for c in containers])
    sizes = walked.writable if walked.writable is not None else _engine_sizes(runtime)
    holders += measured_holders(containers, sizes, walked.logs)
    return Holdings(tuple(holders), unknown)


def complete(walked: Walked | None, root: str, overlay2: bool, ids: list[str]) -> Walked:
    """`walked` with the containers it missed (created after it began) measured now."""
    if walked is None:
        return walk_containers(root, overlay2, ids)
    missing = [cid for cid in ids if cid not in walked.logs]
    if not missing:
        return walked
    more = walk_containers(root, overlay2, missing)
    writable = None
    if walked.writable is not None and more.writable is not None:
        writable = {**walked.writable, **more.writable}
    return Walked({**walked.logs, **more.logs}, writable, {**walked.seen, **more.seen})


def _cache_row(r: BuildCacheRecord) -> dict[str, Any]:
    return {"Size": r.size_bytes, "InUse": r.in_use, "Shared": r.shared}


def _engine_sizes(runtime: Any) -> Mapping[str, int]:
    """Container id -> `SizeRw`, from the engine's listing with sizes (its own walk)."""
    query = urllib.parse.urlencode({"all": "1", "size": "1"})
    answer = runtime._get_json(
        "list containers with sizes", f"/containers/json?{query}", "/containers/json",
        {"all": 1, "size": 1},
    )  # fmt: skip
    return writable_sizes(answer) or {}


def measured_holders(
    containers: Sequence[Container],
    sizes: Mapping[str, int],
    logs: Mapping[str, tuple[int, str]],
) -> list[Holder]:
    """Each listed container's writable layer (`sizes`) and log files (`logs`: bytes and the
    current log's path), as `container_holders` and `log_holders` make them from rows."""
    out = []
    for c in containers:
        dead = c.state.is_dead
        kind = HolderKind.CONTAINERS_DEAD if dead else HolderKind.CONTAINERS_RUNNING
        pod = c.pod
        out.append(Holder(kind, c.name, sizes.get(c.id, 0), dead, pod=pod))
        size, main = logs.get(c.id, (0, ""))
        if main:
            out.append(Holder(HolderKind.LOGS, c.name, size, dead, path=main, pod=pod))
    return out


def _local_volumes(runtime: Any, root: str) -> list[Holder]:
    """Volumes before API 1.42 (no `type=` for `/system/df`): `/volumes`, the ones no container
    uses (`dangling`), and each local volume's `_data` measured by nodegc."""
    listed = runtime._get_json("list volumes", "/volumes", "/volumes", {})
    dangling_filter = json.dumps({"dangling": ["true"]})
    query = urllib.parse.urlencode({"filters": dangling_filter})
    dangling = runtime._get_json(
        "list volumes no container uses", f"/volumes?{query}", "/volumes",
        {"filters": dangling_filter},
    )  # fmt: skip
    rows, free_rows = _volume_rows(listed), _volume_rows(dangling)
    free = {str(r.get("Name")) for r in free_rows}
    sizes = local_volume_bytes(root, rows)
    usage = [
        {
            **r,
            "UsageData": {
                "Size": sizes.get(str(r.get("Name")), 0),
                "RefCount": 0 if str(r.get("Name")) in free else 1,
            },
        }
        for r in rows
    ]
    return volume_holders(usage, ())


def _volume_rows(answer: Any) -> list[dict[str, Any]]:
    """A `/volumes` answer's rows (none where the engine answered something else)."""
    rows = answer.get("Volumes") if isinstance(answer, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def prefetchable(runtime: Any) -> tuple[str, bool, int] | None:
    """(data root, overlay2, container directories on disk) for a walk begun before the
    listings (`collect.usage.prefetch`); None where the runtime is not dockerd."""
    found = _dockerd_root(runtime)
    return None if found is None else (*found, containers_on_disk(found[0]))


def _dockerd_root(runtime: Any) -> tuple[str, bool] | None:
    """(dockerd's data root, whether its layers are overlay2's); None where the runtime is not
    dockerd (Podman, CRI)."""
    if not hasattr(runtime, "_get_json") or getattr(runtime, "podman", True):
        return None
    return runtime.data_root(), runtime.layer_store_driver() == "overlay2"


def podman_major(runtime: Any) -> int:
    """Podman's major version (`version()`; 0 where it says none)."""
    data = runtime.version()
    match = re.match(r"(\d+)\.", str(data.get("Version") or ""))
    return int(match.group(1)) if match else 0


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
    layers = int(data.get("LayersSize") or 0)
    if not layers:  # Podman: 0; every image's own bytes, and the biggest shared part once
        rows = [r for r in data.get("Images") or [] if isinstance(r, dict)]
        shared = [max(0, int(r.get("SharedSize") or 0)) for r in rows]
        own = sum(max(0, int(r.get("Size") or 0) - s) for r, s in zip(rows, shared, strict=True))
        layers = own + max(shared, default=0)
    total = max(unused, layers)
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


def container_holders(
    containers: Sequence[Mapping[str, Any]], counted_elsewhere: Mapping[str, int] | None = None
) -> list[Holder]:
    """Each container's writable layer (`SizeRw`), running or dead; less the bytes the engine
    counts in it that are listed as another holder (`counted_elsewhere`, by container id: the
    log Podman 5 counts)."""
    elsewhere = counted_elsewhere or {}
    out = []
    for row in containers:
        dead = str(row.get("State") or "") in _DEAD
        kind = HolderKind.CONTAINERS_DEAD if dead else HolderKind.CONTAINERS_RUNNING
        size = max(0, int(row.get("SizeRw") or 0) - elsewhere.get(str(row["Id"]), 0))
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
        size, main = log_bytes(os.path.join(data_root, "containers", cid), cid)
        if main:
            dead = str(row.get("State") or "") in _DEAD
            out.append(Holder(HolderKind.LOGS, _name(row), size, dead, path=main, pod=_pod(row)))
    return out


def podman_log_holders(
    runtime: Any, containers: Sequence[Mapping[str, Any]]
) -> tuple[list[Holder], dict[str, int]]:
    """Each Podman container's log file at its `LogPath` (inspect), in allocated bytes, on the
    filesystem it is found on; a container gone meanwhile, or logging elsewhere (journald:
    no path), has none listed. And, by container id, the apparent size of each log kept in the
    container's own `userdata` directory (what Podman 5 counts in `SizeRw`)."""
    out, inside = [], {}
    for row in containers:
        cid = str(row["Id"])
        if not _ID.match(cid):
            continue
        try:
            info = runtime._get_json(
                f"inspect container {cid} (its log path)",
                f"/containers/{cid}/json",
                f"/containers/{cid}/json",
                {},
            )
        except NotFound:
            continue
        path = str(info.get("LogPath") or "") if isinstance(info, dict) else ""
        if not path or not os.path.isabs(path):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if f"/{cid}/userdata/" in path:
            inside[cid] = st.st_size
        dead = str(row.get("State") or "") in _DEAD
        out.append(
            Holder(
                HolderKind.LOGS,
                _name(row),
                st.st_blocks * 512,
                dead,
                path=path,
                pod=_pod(row),
                device=st.st_dev,
            )
        )
    return out, inside
