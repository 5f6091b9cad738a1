"""The dockerd and Podman harnesses with their engine taken from a Debian root (`engine_root`).

`RootedEngine` is an `IsolatedEngine` whose dockerd comes from an `EngineRoot` (Debian forky's
docker.io 28, trixie's 26...), started in a private mount namespace with the harness's temp dir at
the same path inside (see `nodegc.testing.engine_root`). It can use either image store:

- `store="overlay2"`: the graph driver, image and container bytes under the data-root;
- `store="containerd"` (`features.containerd-snapshotter`, the default from Docker 29): image and
  container bytes under the managed containerd's root, DATA_ROOT/containerd. With
  `containerd_size_mb=N` that directory is a loop ext4 of its own (N MB), as on a node whose
  /var/lib/containerd is a separate disk; `containerd_fs` then fills and measures it.

`RootedPodman` is an `IsolatedPodman` whose `podman system service` (and `cli()`) come from the
root, with runc as the OCI runtime (crun refuses this machine kind's hybrid cgroups).

Teardown is the base harnesses': the processes are found by pid, pidfile and temp dir (the same
paths inside and outside the root), the namespace's mounts go with its last process.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from nodegc.testing import engine as _engine
from nodegc.testing.engine import DEFAULT_SIZE_MB, FillableFilesystem, IsolatedEngine
from nodegc.testing.engine_root import EngineRoot
from nodegc.testing.podman import IsolatedPodman

__all__ = ["MountedFilesystem", "RootedEngine", "RootedPodman", "Store"]

Store = Literal["overlay2", "containerd"]
ROOTED_START_TIMEOUT = 90.0


class MountedFilesystem(FillableFilesystem):
    """The fill/usage helpers of the harnesses for any mounted filesystem (filler files go in
    its top directory)."""

    def __init__(self, mountpoint: Path) -> None:
        self._res = SimpleNamespace(mountpoint=mountpoint)
        self._fill_count = len(list(mountpoint.glob("filler-*")))

    @property
    def mountpoint(self) -> Path:
        return Path(self._res.mountpoint)


@dataclass
class _RootedResources(_engine._Resources):
    """The dockerd harness's resources, plus an optional loop filesystem for containerd's root."""

    containerd_size_mb: int = 0

    @property
    def containerd_image(self) -> Path:
        return self.root / "containerd.img"

    @property
    def containerd_root(self) -> Path:
        """dockerd's managed containerd keeps its root here (content store, snapshots)."""
        return self.data_root / "containerd"

    @property
    def images(self) -> tuple[Path, ...]:
        return (self.image, self.containerd_image) if self.containerd_size_mb else (self.image,)

    @property
    def kept_mounts(self) -> tuple[Path, ...]:
        if self.containerd_size_mb:
            return (self.mountpoint, self.containerd_root)
        return (self.mountpoint,)


class RootedEngine(IsolatedEngine):
    """A dockerd from `root` on a `size_mb` ext4 loop filesystem, in the image store `store`;
    a context manager like IsolatedEngine."""

    def __init__(
        self,
        size_mb: int = DEFAULT_SIZE_MB,
        *,
        root: EngineRoot,
        store: Store = "overlay2",
        containerd_size_mb: int = 0,
        inodes: int = 0,
        base_dir: str | os.PathLike[str] = "/tmp",
    ) -> None:
        if store not in ("overlay2", "containerd"):
            raise ValueError(f"store must be overlay2 or containerd, got {store!r}")
        if containerd_size_mb and containerd_size_mb < 64:
            raise ValueError(f"containerd_size_mb must be 0 or at least 64: {containerd_size_mb}")
        plain = _engine._new_resources(Path(base_dir), size_mb)
        res = _RootedResources(
            root=plain.root, name=plain.name, size_mb=size_mb, inodes=inodes,
            containerd_size_mb=containerd_size_mb,
        )  # fmt: skip
        self.engine_root = root
        self.store: Store = store
        self._adopt(res, ROOTED_START_TIMEOUT)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RootedEngine {self.name} {self.engine_root.suite} {self.store} {state}>"

    @property
    def containerd_root(self) -> Path:
        """The managed containerd's root (image bytes with the containerd store)."""
        return Path(self._res.containerd_root)

    @property
    def containerd_fs(self) -> MountedFilesystem:
        """The filesystem holding containerd's root (its own loop fs, or the data-root's)."""
        own = bool(self._res.containerd_size_mb)
        return MountedFilesystem(self.containerd_root if own else self.mountpoint)

    @property
    def images_fs(self) -> MountedFilesystem:
        """The filesystem where image bytes live in this store."""
        if self.store == "containerd":
            return self.containerd_fs
        return MountedFilesystem(self.mountpoint)

    def docker(
        self, *args: str, cwd: os.PathLike[str] | str | None = None, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the root's `docker` CLI against this engine (raises on failure); `cwd` must be
        under the engine's temp dir (`root`), the only host path visible inside."""
        return self.engine_root.run(
            ["docker", "-H", self.endpoint, *args], binds=[self.root], cwd=cwd, timeout=timeout,
            env={"DOCKER_BUILDKIT": "1", "DOCKER_CLI_HINTS": "false"},
        )  # fmt: skip

    def detach(self) -> dict[str, Any]:
        raise NotImplementedError("RootedEngine cannot outlive its process")

    def _prepare_storage(self) -> None:
        super()._prepare_storage()
        res = self._res
        if res.containerd_size_mb:
            _mount_loop(res.containerd_image, res.containerd_root, res.containerd_size_mb)

    def _start_daemon(self) -> None:
        res = self._res
        argv = _engine._dockerd_argv(res)
        features = {"containerd-snapshotter": self.store == "containerd"}
        (res.root / "daemon.json").write_text(json.dumps({"features": features}) + "\n")
        argv[0] = "dockerd"
        if self.store == "containerd":
            argv.remove("--storage-driver=overlay2")
        _engine._launch(res, self.engine_root.wrap(argv, binds=[res.root]))


def _mount_loop(image: Path, mountpoint: Path, size_mb: int) -> None:
    """A sparse `size_mb` ext4 image, on a loop device, mounted on `mountpoint`."""
    with open(image, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    _engine._run(["mkfs.ext4", "-q", "-m", "0", "-F", str(image)])
    device = _engine._run(["losetup", "--find", "--show", str(image)]).strip()
    mountpoint.mkdir(parents=True, exist_ok=True)
    _engine._run(["mount", device, str(mountpoint)])


class RootedPodman(IsolatedPodman):
    """A Podman service from `root` (runc as the runtime); a context manager like
    IsolatedPodman."""

    def __init__(
        self,
        size_mb: int = DEFAULT_SIZE_MB,
        *,
        root: EngineRoot,
        base_dir: str | os.PathLike[str] = "/tmp",
    ) -> None:
        super().__init__(size_mb, base_dir=base_dir, start_timeout=ROOTED_START_TIMEOUT)
        self.engine_root = root

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RootedPodman {self.name} {self.engine_root.suite} {state}>"

    def _wrap(self, argv: list[str]) -> list[str]:
        argv = ["podman", *argv[1:]]
        return self.engine_root.wrap(argv, binds=[self._res.root])

    def _runtime(self) -> str | None:
        return "runc"

    def cli(self, *args: str) -> tuple[list[str], dict[str, str]]:
        argv, env = super().cli(*args)
        env["PATH"] = self.engine_root.env()["PATH"]
        return self._wrap(argv), env
