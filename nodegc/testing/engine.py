"""A private, disposable dockerd on its own small loop-mounted ext4 filesystem.

`IsolatedEngine` owns everything under one short temp dir (`/tmp/ngc-<hex>`): a sparse disk image,
its loop device and mount, the daemon's data-root, exec-root, socket, pidfile and log, plus a
containerd namespace and a cgroup parent of the same name. It never talks to the system's docker.
Teardown is robust to failures half-way and also runs from a `weakref.finalize` fallback at exit.

    with IsolatedEngine(size_mb=512) as engine:
        api = engine.api()

`python -m nodegc.testing.engine start --size-mb N --state-file F` leaves an engine running after
the command exits (prints `DOCKER_HOST=unix://...`); `stop --state-file F` tears it down.
Needs root, dockerd, containerd, runc, losetup, mkfs.ext4 and mount/umount.

The pieces live beside it, public: the dockerd's resources, command line, start, stop and
teardown in `dockerd.py`, the loop filesystem and its filling in `loopfs.py`, running a
container in `containers.py`, processes, mounts and loop devices in `processes.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import docker

from nodegc.testing import dockerd, processes
from nodegc.testing.containers import ContainerSpec, run_container, run_dead_containers
from nodegc.testing.dockerd import DEFAULT_SIZE_MB, START_TIMEOUT, STOP_TIMEOUT, DockerdResources
from nodegc.testing.images import load_image, load_images
from nodegc.testing.loopfs import FillableFilesystem
from nodegc.testing.processes import KILL_TIMEOUT, EngineError

__all__ = ["DEFAULT_SIZE_MB", "EngineError", "IsolatedEngine", "main", "missing_requirements"]

REQUIRED_TOOLS = ("dockerd", "containerd", "runc", "losetup", "mkfs.ext4", "mount", "umount")


def missing_requirements() -> list[str]:
    """Why an IsolatedEngine cannot run here (empty when it can): not root, or missing tools."""
    problems = [] if os.geteuid() == 0 else ["needs root (loop devices, mounts, dockerd)"]
    path = processes.tool_path()
    problems += [
        f"{tool} not found" for tool in REQUIRED_TOOLS if not shutil.which(tool, path=path)
    ]
    return problems


class IsolatedEngine(FillableFilesystem):
    """A dockerd of our own on a `size_mb` ext4 loop filesystem; a context manager.

    `start()` prepares the filesystem on first use and (re)starts the daemon on the same
    data-root; `stop()` stops the daemon and leaves the data; `close()` removes everything.
    """

    def __init__(
        self,
        size_mb: int = DEFAULT_SIZE_MB,
        *,
        inodes: int = 0,
        base_dir: str | os.PathLike[str] = "/tmp",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        """`inodes`: how many the filesystem has (`mkfs.ext4 -N`, for inode pressure); 0 for
        mkfs's default."""
        res = dockerd.new_resources(Path(base_dir), size_mb)
        res.inodes = inodes
        self._adopt(res, start_timeout)

    def _adopt(self, res: DockerdResources, start_timeout: float) -> None:
        """Own `res` (released by close() or, failing that, by a finalizer at exit)."""
        self._res = res
        self._finalizer = weakref.finalize(self, dockerd.teardown_at_exit, res)
        self.start_timeout = start_timeout
        self._helper_api: docker.APIClient | None = None
        self._fill_count = len(list(res.mountpoint.glob("filler-*")))

    # -- identity and paths -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`ngc-<hex>`: the temp dir's name, containerd namespace and cgroup parent."""
        return self._res.name

    @property
    def root(self) -> Path:
        return self._res.root

    @property
    def endpoint(self) -> str:
        return f"unix://{self._res.socket_path}"

    @property
    def socket_path(self) -> Path:
        return self._res.socket_path

    @property
    def data_root(self) -> Path:
        return self._res.data_root

    @property
    def mountpoint(self) -> Path:
        return self._res.mountpoint

    @property
    def log_path(self) -> Path:
        return self._res.log_path

    @property
    def exec_root(self) -> Path:
        return self._res.exec_root

    @property
    def image_path(self) -> Path:
        """The sparse file behind the loop device."""
        return self._res.image

    @property
    def pid(self) -> int | None:
        """The daemon's pid while it runs."""
        return dockerd.daemon_pid(self._res)

    @property
    def running(self) -> bool:
        return self.pid is not None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<IsolatedEngine {self.name} {state} {self.endpoint}>"

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        with _closing_on_error(self):
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the daemon (preparing the filesystem first time); a no-op while it runs."""
        if not self._finalizer.alive:
            raise EngineError(f"{self.name} is closed")
        if self.running:
            return
        if not self._res.mounted:
            self._prepare_storage()
        self._start_daemon()
        dockerd.wait_ready(self._res, self.start_timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the daemon (SIGTERM, SIGKILL after `timeout`), keeping the data for `start()`.

        Running containers are stopped by dockerd with their own stop timeout (10 s unless set).
        """
        self._close_helper_api()
        problems = dockerd.stop_daemon(self._res, timeout)
        problems += processes.unmount_under(self._res.root, keep=self._res.kept_mounts)
        if problems:
            raise EngineError(f"{self.name}: " + "; ".join(problems))

    def kill(self) -> None:
        """SIGKILL the daemon (no shutdown at all, as a crash), and what it ran with it (its
        containerd, shims, containers), keeping the data: `start()` brings it back on it."""
        self._close_helper_api()
        pid = dockerd.daemon_pid(self._res)
        if pid is not None:
            processes.signal_pid(pid, signal.SIGKILL)
            processes.wait_gone({pid}, KILL_TIMEOUT)
        if self._res.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._res.process.wait(timeout=KILL_TIMEOUT)  # reap our child
        self._res.process = None
        self._res.pid = None
        problems = dockerd.kill_leftovers(self._res)
        if not problems:
            dockerd.remove_stale_pidfiles(self._res)
        problems += processes.unmount_under(self._res.root, keep=self._res.kept_mounts)
        if problems:
            raise EngineError(f"{self.name}: " + "; ".join(problems))

    def close(self) -> None:
        """Stop the daemon and remove mount, loop device and temp dir; safe to call twice."""
        self._close_helper_api()
        if self._finalizer.detach() is None:
            return
        problems = dockerd.teardown(self._res)
        if problems:
            raise EngineError(f"cleanup of {self.name} incomplete: " + "; ".join(problems))

    def detach(self) -> dict[str, Any]:
        """Leave the engine running past this process; returns the state `attach()` takes."""
        self._close_helper_api()
        self._finalizer.detach()
        res = self._res
        return {
            "name": res.name,
            "root": str(res.root),
            "size_mb": res.size_mb,
            "pid": dockerd.daemon_pid(res),
            "endpoint": self.endpoint,
            "socket_path": str(res.socket_path),
            "data_root": str(res.data_root),
            "mountpoint": str(res.mountpoint),
            "log_path": str(res.log_path),
            "image_path": str(res.image),
            "loop_devices": processes.loop_devices(res.image),
        }

    @classmethod
    def attach(cls, state: Mapping[str, Any]) -> IsolatedEngine:
        """Take over an engine a `detach()` left behind (possibly in another process)."""
        root = Path(state["root"])
        res = DockerdResources(
            root=root,
            name=state["name"],
            size_mb=int(state.get("size_mb", DEFAULT_SIZE_MB)),
            pid=state.get("pid"),
            mounted=processes.is_mountpoint(root / "fs"),
        )
        engine = cls.__new__(cls)
        engine._adopt(res, START_TIMEOUT)
        return engine

    # -- clients and containers ---------------------------------------------------------------

    def api(self, timeout: int = 30) -> docker.APIClient:
        """A new low-level client for this engine; clients made before a restart are stale."""
        return docker.APIClient(base_url=self.endpoint, version="auto", timeout=timeout)

    def load(self, tar_bytes: bytes) -> str:
        """Load a tarball from `nodegc.testing.images`; returns the image id."""
        return load_image(self._api(), tar_bytes)

    def load_many(self, tars: Iterable[bytes]) -> list[str]:
        """Load many tarballs in one request (faster); returns the image ids in order."""
        return load_images(self._api(), tars)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the dockerd log, for failure reports."""
        return processes.log_tail(self._res.log_path, lines)

    def run_container(
        self,
        image: str,
        cmd: Sequence[str] | str,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        detach: bool = True,
        wait: bool = True,
        stop_timeout: int | None = 1,
    ) -> str:
        """Create and start a container with no network; wait for it to exit unless `wait=False`.

        `stop_timeout` (seconds before SIGKILL on stop) defaults to 1 because busybox as pid 1
        ignores SIGTERM, which would make every stop of the engine take 10 s.
        """
        spec = ContainerSpec(
            image, cmd, name=name, labels=dict(labels or {}), detach=detach, wait=wait,
            stop_timeout=stop_timeout,
        )  # fmt: skip
        return run_container(self._api(), spec)

    def create_dead_containers(
        self,
        image: str,
        n: int,
        labels_fn: Callable[[int], Mapping[str, str]] | None = None,
        *,
        cmd: Sequence[str] | str = ("true",),
        workers: int = 4,
    ) -> list[str]:
        """Make `n` exited containers (create, start, wait; a few threads); ids in index order."""
        specs = [
            ContainerSpec(image, cmd, labels=dict(labels_fn(i)) if labels_fn else {})
            for i in range(n)
        ]
        return run_dead_containers(self.api, specs, workers=workers, thread_name_prefix=self.name)

    # -- internals ----------------------------------------------------------------------------

    def _prepare_storage(self) -> None:
        """Make and mount the loop filesystem(s), before the daemon's first start."""
        dockerd.prepare_filesystem(self._res)

    def _start_daemon(self) -> None:
        """Start dockerd (not waiting for it)."""
        dockerd.launch(self._res)

    def _api(self) -> docker.APIClient:
        """The client the helpers share (closed on stop)."""
        if self._helper_api is None:
            self._helper_api = self.api()
        return self._helper_api

    def _close_helper_api(self) -> None:
        if self._helper_api is not None:
            self._helper_api.close()
            self._helper_api = None


# -- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`start --size-mb N --state-file F` / `stop --state-file F`."""
    parser = argparse.ArgumentParser(prog="python -m nodegc.testing.engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a detached engine; print DOCKER_HOST=...")
    start.add_argument("--size-mb", type=int, default=DEFAULT_SIZE_MB)
    start.add_argument("--state-file", type=Path, required=True)
    stop = commands.add_parser("stop", help="stop the engine a state file describes, clean up")
    stop.add_argument("--state-file", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            return _cli_start(args.size_mb, args.state_file)
        return _cli_stop(args.state_file)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _cli_start(size_mb: int, state_file: Path) -> int:
    engine = IsolatedEngine(size_mb)
    with _closing_on_error(engine):
        engine.start()
        state = engine.detach()
        state_file.write_text(json.dumps(state, indent=2) + "\n")
    print(f"DOCKER_HOST={state['endpoint']}")
    return 0


def _cli_stop(state_file: Path) -> int:
    state = json.loads(state_file.read_text())
    IsolatedEngine.attach(state).close()
    state_file.unlink()
    return 0


@contextlib.contextmanager
def _closing_on_error(engine: IsolatedEngine) -> Iterator[None]:
    """Close `engine` if the block fails, keeping the block's exception as the one raised."""
    try:
        yield
    except BaseException as exc:
        try:
            engine.close()
        except EngineError as cleanup:
            exc.add_note(f"and then: {cleanup}")
        raise


if __name__ == "__main__":
    raise SystemExit(main())
