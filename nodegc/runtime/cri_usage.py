"""Where the space is, as a CRI runtime knows it: what the CRI API gives, asked only for `report`
and when image GC cannot reach its target.

- images: ListImages' sizes (the runtime's figure for each image; containerd gives the content it
  keeps, compressed; layers two images share are counted with each), in use when a container of
  any state uses or mounts it, or the runtime pins it (the sandbox image);
- containers' writable layers: ListContainerStats' `writable_layer.used_bytes` (one request; a
  container the runtime gives no stats for is listed at 0);
- container logs: each container's ContainerStatus (verbose=false) `log_path` (the kubelet's
  `<pod log dir>/<container>/<n>.log`) and the rotated files beside it, `stat`ed (allocated bytes
  as `du` counts them) where nodegc sees that path; each lands on the filesystem it is found on;
- volumes and build cache: CRI does not say (the kubelet keeps volumes; no build cache): unknown,
  null in JSON, never 0.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from nodegc.holders import Holder, HolderKind, Holdings
from nodegc.model import Container, short_id
from nodegc.runtime import NotFound, RuntimeError_, RuntimeUnavailable

log = logging.getLogger(__name__)

UNKNOWN = frozenset(
    {
        HolderKind.VOLUMES_NAMED,
        HolderKind.VOLUMES_ANONYMOUS_UNUSED,
        HolderKind.BUILD_CACHE_IN_USE,
        HolderKind.BUILD_CACHE_RECLAIMABLE,
    }
)


def space_holders(runtime: Any) -> Holdings | None:
    """Every holder the CRI runtime accounts for; None where the runtime is not a CRI one."""
    if not callable(getattr(runtime, "cri_space_hooks", None)):
        return None
    images = runtime.list_images()
    containers = runtime.list_containers()
    used = {c.image_id for c in containers} | {m for c in containers for m in c.mounted_images}
    in_use = sum(i.size_bytes for i in images if i.id in used or i.runtime_pinned)
    unused = sum(i.size_bytes for i in images if not (i.id in used or i.runtime_pinned))
    holders = [
        Holder(HolderKind.IMAGES_IN_USE, "images in use", in_use, False),
        Holder(HolderKind.IMAGES_UNUSED, "unused images", unused, True),
    ]
    sizes = writable_sizes(runtime)
    for c in containers:
        dead = c.state.is_dead
        kind = HolderKind.CONTAINERS_DEAD if dead else HolderKind.CONTAINERS_RUNNING
        holders.append(Holder(kind, _name(c), sizes.get(c.id, 0), dead, pod=c.pod))
    holders += log_holders(runtime, containers)
    return Holdings(tuple(holders), UNKNOWN)


def writable_sizes(runtime: Any) -> dict[str, int]:
    """Each container's writable layer in bytes (ListContainerStats, one request)."""
    usage = runtime.disk_usage(build_cache=False, container_sizes=True)
    return dict(usage.container_sizes or {})


def _name(c: Container) -> str:
    return c.name or short_id(c.id)


def log_holders(runtime: Any, containers: Sequence[Container]) -> list[Holder]:
    """Each container's log files: ContainerStatus' `log_path` (one request per container, in
    parallel as the runtime asks statuses) and its rotated siblings."""
    paths = runtime.cri_space_hooks().log_paths([c.id for c in containers])
    out = []
    for c in containers:
        path = paths.get(c.id, "")
        if not path or not os.path.isabs(path):
            continue
        size, device = log_bytes(path)
        if device is None:
            continue
        dead = c.state.is_dead
        out.append(
            Holder(HolderKind.LOGS, _name(c), size, dead, path=path, pod=c.pod, device=device)
        )
    return out


def log_bytes(path: str) -> tuple[int, int | None]:
    """(allocated bytes of `path` and of its rotated siblings `path.*`, its device); device None
    where nodegc cannot see the file."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0, None
    total = st.st_blocks * 512
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory)
    except OSError:
        names = []
    for name in names:
        if name.startswith(f"{base}."):
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                continue
    return total, st.st_dev


class LogPaths:
    """The hook `runtime/cri.py` gives (`CriRuntime.cri_space_hooks`): container statuses asked
    through the runtime's own call path."""

    def __init__(self, status: Any, fan_out: Any) -> None:
        self._status = status  # container id -> pb.ContainerStatus (raises NotFound)
        self._map = fan_out  # (fn, items) -> results, in parallel

    def log_paths(self, container_ids: Sequence[str]) -> dict[str, str]:
        def one(cid: str) -> tuple[str, str]:
            try:
                return cid, str(self._status(cid).log_path or "")
            except RuntimeUnavailable:
                raise
            except (NotFound, RuntimeError_) as exc:
                log.info("no log path", extra={"object": cid, "error": str(exc)})
                return cid, ""

        return dict(self._map(one, list(container_ids)))
