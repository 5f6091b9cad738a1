"""Observation: one complete snapshot of the node (listings and the filesystems), never partial."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from nodegc.config import ImageSettings
from nodegc.model import ALL_ROLES, FilesystemRole, FilesystemStats, Image, Snapshot, StorePath
from nodegc.policy.targets import capacity_problems
from nodegc.runtime import Runtime


class FilesystemError(Exception):
    """The image filesystem cannot be measured; the message names the path and the fix."""


class TargetBeyondCapacity(FilesystemError):
    """`images.minimum_free` or `images.target_free` at or above a measured filesystem's
    capacity: a configuration error (exit 2), found at its first measurement, before anything
    is removed."""


def check_targets(settings: ImageSettings, filesystems: Sequence[FilesystemStats]) -> None:
    """Raise TargetBeyondCapacity naming the setting when a byte target cannot be met."""
    problems = capacity_problems(settings, filesystems)
    if problems:
        raise TargetBeyondCapacity("; ".join(problems))


def measure(path: str) -> FilesystemStats:
    """Bytes and inodes of the filesystem holding `path` (statvfs; available = for unprivileged)."""
    try:
        st = os.statvfs(path)
        device = os.stat(path).st_dev
    except OSError as exc:
        raise FilesystemError(
            f"cannot measure the filesystem at {path}: {exc.strerror}; when nodegc sees "
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
        device=device,
        free_bytes=st.f_bfree * st.f_frsize,
    )


Measure = Callable[[str], FilesystemStats]
"""How a filesystem is measured: `measure` (statvfs) on a node, a model of the disk in tests."""


def store_paths(runtime: Runtime, filesystem_path: str) -> list[StorePath]:
    """Where to measure: `images.filesystem_path` when set (the one filesystem nodegc measures,
    holding everything: it is set where nodegc cannot see the runtime's own paths), else where
    the runtime says it keeps what (`Runtime.filesystems`)."""
    if filesystem_path:
        return [StorePath(filesystem_path, ALL_ROLES, "images.filesystem_path")]
    return list(runtime.filesystems())


def measure_all(
    paths: Sequence[StorePath], measure: Measure = measure
) -> tuple[FilesystemStats, ...]:
    """Each filesystem once, in the order the paths name them: paths on one device (st_dev;
    the path where a measurement does not say) are one filesystem with the roles of them all,
    measured at the first of them. The image filesystem comes first."""
    found: dict[object, FilesystemStats] = {}
    for store in paths:
        fs = measure(store.path)
        key: object = fs.device or fs.path
        if key in found:
            known = found[key]
            roles = known.roles + tuple(r for r in store.roles if r not in known.roles)
            found[key] = replace(known, roles=roles)
        else:
            found[key] = replace(fs, roles=tuple(dict.fromkeys(store.roles)))
    measured = list(found.values())
    measured.sort(key=lambda fs: FilesystemRole.IMAGES not in fs.roles)  # stable
    return tuple(measured)


def remeasure(
    filesystems: Sequence[FilesystemStats], measure: Measure = measure
) -> tuple[FilesystemStats, ...]:
    """The same filesystems measured again, keeping their roles."""
    return tuple(replace(measure(fs.path), roles=fs.roles) for fs in filesystems)


def take_snapshot(
    runtime: Runtime,
    filesystem_path: str,
    now: datetime,
    *,
    measure: Measure = measure,
    meanwhile: Callable[[Sequence[Image]], None] | None = None,
) -> Snapshot:
    """List images and containers (both in full or an error), then measure the filesystems.

    The two listings are asked at once: on a big node each takes the engine a second or more
    (20,000 containers), and the engine answers them in parallel. No order between them is
    relied on: a container created after its listing began is unseen whatever the order, and
    the engine refuses to remove an image a container uses. Where the engine keeps what (its
    `/info`, asked once per process: 1.0-1.5 s on a Podman service) is asked at the same time,
    and `meanwhile(images)`, when given, runs once both listings are in, while `/info` may
    still be on its way (the collector learns new images' layers there)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="observe") as pool:
        where = pool.submit(store_paths, runtime, filesystem_path)
        listing = pool.submit(runtime.list_containers)
        images = tuple(runtime.list_images())
        containers = tuple(listing.result())
        if meanwhile is not None:
            meanwhile(images)
        paths = where.result()
    filesystems = measure_all(paths, measure)
    return Snapshot(
        taken_at=now,
        filesystem=filesystems[0],
        images=images,
        containers=containers,
        filesystems=filesystems,
        store=runtime.layer_store,
    )
