"""The dockerd and Podman harnesses with their engine taken from a Debian root (`engine_root`).

`RootedEngine` is an `IsolatedEngine` whose dockerd comes from an `EngineRoot` (Debian forky's
docker.io 28, trixie's 26...), started in a private mount namespace with the harness's temp dir at
the same path inside (see `nodegc.testing.engine_root`). It can use either image store:

- `store="overlay2"`: the graph driver, image and container bytes under the data-root;
- `store="containerd"` (`features.containerd-snapshotter`, the default from Docker 29): image and
  container bytes under containerd's root: the managed containerd's, DATA_ROOT/containerd, or,
  with `containerd_size_mb=N`, a containerd of its own (as a node's system containerd, whose
  /var/lib/containerd is a separate disk) started beside dockerd (`--containerd=SOCKET`) with
  its root on a loop ext4 of N MB; `containerd_fs` then fills and measures it. (A loop fs
  mounted at DATA_ROOT/containerd would not do: dockerd bind-mounts its data-root onto itself,
  non-recursively, and its containerd would write under the mount, on the data-root's fs.)

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
from typing import Any, Literal

from nodegc.testing import dockerd
from nodegc.testing.dockerd import DEFAULT_SIZE_MB, DockerdResources
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.engine_root import EngineRoot
from nodegc.testing.loopfs import MountedFilesystem, make_loop_filesystem
from nodegc.testing.podman import IsolatedPodman

__all__ = ["MountedFilesystem", "RootedEngine", "RootedPodman", "Store"]

Store = Literal["overlay2", "containerd"]
ROOTED_START_TIMEOUT = 90.0


@dataclass
class _RootedResources(DockerdResources):
    """The dockerd harness's resources, plus an optional loop filesystem for containerd's root."""

    containerd_size_mb: int = 0

    @property
    def containerd_image(self) -> Path:
        return self.root / "containerd.img"

    @property
    def containerd_root(self) -> Path:
        """containerd's root (content store, snapshots): the managed containerd's under the
        data-root, or our own containerd's on its own filesystem."""
        if self.containerd_size_mb:
            return self.root / "containerd-fs"
        return self.data_root / "containerd"

    @property
    def containerd_socket(self) -> Path:
        """Our own containerd's socket (`containerd_size_mb`)."""
        return self.root / "ctrd.sock"

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
        plain = dockerd.new_resources(Path(base_dir), size_mb)
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
            make_loop_filesystem(res.containerd_image, res.containerd_root, res.containerd_size_mb)

    def _start_daemon(self) -> None:
        res = self._res
        argv = dockerd.dockerd_argv(res)
        features = {"containerd-snapshotter": self.store == "containerd"}
        (res.root / "daemon.json").write_text(json.dumps({"features": features}) + "\n")
        argv[0] = "dockerd"
        if self.store == "containerd":
            argv.remove("--storage-driver=overlay2")
        if res.containerd_size_mb:
            argv = [*self._own_containerd(), *argv, f"--containerd={res.containerd_socket}"]
        dockerd.launch(res, self.engine_root.wrap(argv, binds=[res.root]))

    def _own_containerd(self) -> list[str]:
        """A command prefix that starts our own containerd in the background, then execs the
        rest (dockerd, which waits for the socket); its config and log under the temp dir."""
        res = self._res
        config = res.root / "containerd.toml"
        version = 3 if self.engine_root.version("containerd") >= (2,) else 2
        config.write_text(
            f'version = {version}\nroot = "{res.containerd_root}"\n'
            f'state = "{res.root}/ctrd-state"\n'
            f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{res.containerd_socket}"\n'
            f'[ttrpc]\n  address = "{res.containerd_socket}.ttrpc"\n'
            f'[debug]\n  address = ""\n[metrics]\n  address = ""\n'
        )
        script = 'containerd --config "$1" >>"$2" 2>&1 & shift 2; exec "$@"'
        return ["sh", "-c", script, "sh", str(config), str(res.root / "containerd.log")]


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
