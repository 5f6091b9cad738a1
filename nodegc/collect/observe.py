"""Observation: one complete snapshot of the node (listings and the filesystem), never partial."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from nodegc.model import FilesystemStats, Snapshot
from nodegc.runtime import Runtime


class FilesystemError(Exception):
    """The image filesystem cannot be measured; the message names the path and the fix."""


def measure(path: str) -> FilesystemStats:
    """Bytes and inodes of the filesystem holding `path` (statvfs; available = for unprivileged)."""
    try:
        st = os.statvfs(path)
    except OSError as exc:
        raise FilesystemError(
            f"cannot measure the image filesystem at {path}: {exc.strerror}; when nodegc sees "
            "the host under another path, set images.filesystem_path"
        ) from exc
    if st.f_blocks == 0:
        raise FilesystemError(f"filesystem at {path} reports a capacity of 0 bytes")
    return FilesystemStats(
        path=path,
        capacity_bytes=st.f_blocks * st.f_frsize,
        available_bytes=st.f_bavail * st.f_frsize,
        inodes_total=st.f_files,
        inodes_free=st.f_favail,
    )


Measure = Callable[[str], FilesystemStats]
"""How a filesystem is measured: `measure` (statvfs) on a node, a model of the disk in tests."""


def take_snapshot(
    runtime: Runtime, filesystem_path: str, now: datetime, *, measure: Measure = measure
) -> Snapshot:
    """List images and containers (both in full or an error), then measure the filesystem.

    The two listings are asked at once: on a big node each takes the engine a second or more
    (20,000 containers), and the engine answers them in parallel. No order between them is
    relied on: a container created after its listing began is unseen whatever the order, and
    the engine refuses to remove an image a container uses."""
    path = filesystem_path or runtime.data_root()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="list-containers") as pool:
        listing = pool.submit(runtime.list_containers)
        images = tuple(runtime.list_images())
        containers = tuple(listing.result())
    return Snapshot(taken_at=now, filesystem=measure(path), images=images, containers=containers)
