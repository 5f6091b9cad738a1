"""Small loop-mounted ext4 filesystems for the harnesses, and filling them.

`make_loop_filesystem` is the one recipe every harness uses (dockerd, Podman, containerd, the
own-containerd filesystem of a rooted dockerd): a sparse image, `mkfs.ext4 -m 0`, a loop device,
a mount. `FillableFilesystem` fills and measures such a filesystem the way the kubelet does
(filler files outside the engine's own directories); `MountedFilesystem` gives those helpers to
any mounted filesystem. Teardown (unmount, detach the loop device) is `nodegc.testing.processes`'s.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nodegc.testing import processes

__all__ = ["FillableFilesystem", "MountedFilesystem", "make_loop_filesystem"]


def make_loop_filesystem(image: Path, mountpoint: Path, size_mb: int, *, inodes: int = 0) -> None:
    """Sparse `size_mb` image -> mkfs.ext4 (`inodes`: `-N`, 0 for mkfs's default) -> loop
    device -> mounted on `mountpoint` (made if missing)."""
    with open(image, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    n_inodes = ["-N", str(inodes)] if inodes else []
    processes.run(["mkfs.ext4", "-q", "-m", "0", *n_inodes, "-F", str(image)])
    device = processes.run(["losetup", "--find", "--show", str(image)]).strip()
    mountpoint.mkdir(parents=True, exist_ok=True)
    processes.run(["mount", device, str(mountpoint)])


class FillableFilesystem:
    """Disk-usage helpers for a harness whose small loop filesystem is mounted at
    `self._res.mountpoint` (filler files live outside the engine's own directories)."""

    _res: Any
    _fill_count: int

    @property
    def mountpoint(self) -> Path:
        """Where the filesystem is mounted."""
        return Path(self._res.mountpoint)

    def usage_percent(self) -> int:
        """The kubelet's figure for the filesystem: 100 - floor(f_bavail * 100 / f_blocks)."""
        st = os.statvfs(self._res.mountpoint)
        return 100 - st.f_bavail * 100 // st.f_blocks

    def inode_usage_percent(self) -> int:
        """The same figure for inodes: 100 - floor(f_favail * 100 / f_files)."""
        st = os.statvfs(self._res.mountpoint)
        return 100 - st.f_favail * 100 // st.f_files

    def available_bytes(self) -> int:
        st = os.statvfs(self._res.mountpoint)
        return st.f_bavail * st.f_frsize

    def fill_inodes_to_percent(self, percent: int) -> Path:
        """Add empty files (in one directory outside the engine's) until inode usage reaches
        `percent`; returns the directory (`unfill` removes it too)."""
        self._fill_count += 1
        directory = self._res.mountpoint / f"filler-{self._fill_count}"
        directory.mkdir()
        st = os.statvfs(self._res.mountpoint)
        target_favail = int((100.5 - percent) * st.f_files / 100)
        for n in range(max(0, st.f_favail - target_favail)):
            (directory / str(n)).touch()
        return directory

    def fill(self, nbytes: int) -> Path:
        """Allocate a filler file of `nbytes` on the filesystem, outside the engine's own dirs."""
        self._fill_count += 1
        path = self._res.mountpoint / f"filler-{self._fill_count}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if nbytes > 0:
                os.posix_fallocate(fd, 0, nbytes)
        except OSError:
            path.unlink()
            raise
        finally:
            os.close(fd)
        return path

    def fill_to_percent(self, percent: int) -> list[Path]:
        """Add filler until `usage_percent()` reaches `percent` (aiming mid-way inside it)."""
        paths: list[Path] = []
        for _ in range(3):
            if self.usage_percent() >= percent:
                break
            st = os.statvfs(self._res.mountpoint)
            target_bavail = int((100.5 - percent) * st.f_blocks / 100)
            paths.append(self.fill(max(1, st.f_bavail - target_bavail) * st.f_frsize))
        return paths

    def unfill(self) -> None:
        """Remove every filler file."""
        for path in self._res.mountpoint.glob("filler-*"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


class MountedFilesystem(FillableFilesystem):
    """The fill/usage helpers of the harnesses for any mounted filesystem (filler files go in
    its top directory)."""

    def __init__(self, mountpoint: Path) -> None:
        self._res = SimpleNamespace(mountpoint=mountpoint)
        self._fill_count = len(list(mountpoint.glob("filler-*")))
