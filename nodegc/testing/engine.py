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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import docker

from nodegc.testing.images import load_image, load_images
from nodegc.testing.processes import (
    KILL_TIMEOUT,
    POLL_INTERVAL,
    EngineError,
)
from nodegc.testing.processes import (
    alive as _alive,
)
from nodegc.testing.processes import (
    cgroup_pids as _cgroup_pids,
)
from nodegc.testing.processes import (
    detach_loops as _detach_loops,
)
from nodegc.testing.processes import (
    engine_pids as _engine_pids,
)
from nodegc.testing.processes import (
    file_size as _file_size,
)
from nodegc.testing.processes import (
    is_mountpoint as _is_mountpoint,
)
from nodegc.testing.processes import (
    is_ours as _is_ours,
)
from nodegc.testing.processes import (
    kill_all as _kill_all,
)
from nodegc.testing.processes import (
    log_tail as _log_tail,
)
from nodegc.testing.processes import (
    loop_devices as _loop_devices,
)
from nodegc.testing.processes import (
    read_from as _read_from,
)
from nodegc.testing.processes import (
    read_pidfile as _read_pidfile,
)
from nodegc.testing.processes import (
    remove_cgroups as _remove_cgroups,
)
from nodegc.testing.processes import (
    remove_root as _remove_root,
)
from nodegc.testing.processes import (
    remove_shim_socket as _remove_shim_socket,
)
from nodegc.testing.processes import (
    run as _run,
)
from nodegc.testing.processes import (
    run_teardown as _run_teardown,
)
from nodegc.testing.processes import (
    signal_pid as _signal,
)
from nodegc.testing.processes import (
    tool_path as _tool_path,
)
from nodegc.testing.processes import (
    unmount_under as _unmount_under,
)
from nodegc.testing.processes import (
    wait_gone as _wait_gone,
)

__all__ = ["DEFAULT_SIZE_MB", "EngineError", "IsolatedEngine", "main", "missing_requirements"]

DEFAULT_SIZE_MB = 512
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
MAX_SOCKET_PATH = 100
REQUIRED_TOOLS = ("dockerd", "containerd", "runc", "losetup", "mkfs.ext4", "mount", "umount")
SHUTDOWN_COMPLETE = b"Daemon shutdown complete"


def missing_requirements() -> list[str]:
    """Why an IsolatedEngine cannot run here (empty when it can): not root, or missing tools."""
    problems = [] if os.geteuid() == 0 else ["needs root (loop devices, mounts, dockerd)"]
    path = _tool_path()
    problems += [
        f"{tool} not found" for tool in REQUIRED_TOOLS if not shutil.which(tool, path=path)
    ]
    return problems


@dataclass
class _Resources:
    """What an engine holds, kept apart from the engine object so a finalizer can release it."""

    root: Path
    name: str
    size_mb: int
    # Inodes of the filesystem (`mkfs.ext4 -N`); 0: mkfs's default for the size.
    inodes: int = 0
    process: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    mounted: bool = False

    @property
    def image(self) -> Path:
        return self.root / "disk.img"

    @property
    def images(self) -> tuple[Path, ...]:
        """Every disk image behind a loop device of ours (a subclass may add some)."""
        return (self.image,)

    @property
    def kept_mounts(self) -> tuple[Path, ...]:
        """Our loop filesystems: kept mounted over a daemon restart."""
        return (self.mountpoint,)

    @property
    def mountpoint(self) -> Path:
        return self.root / "fs"

    @property
    def data_root(self) -> Path:
        return self.mountpoint / "docker"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def socket_path(self) -> Path:
        return self.root / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"


class FillableFilesystem:
    """Disk-usage helpers for a harness whose small loop filesystem is mounted at
    `self._res.mountpoint` (filler files live outside the engine's own directories)."""

    _res: Any
    _fill_count: int

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
        res = _new_resources(Path(base_dir), size_mb)
        res.inodes = inodes
        self._adopt(res, start_timeout)

    def _adopt(self, res: _Resources, start_timeout: float) -> None:
        """Own `res` (released by close() or, failing that, by a finalizer at exit)."""
        self._res = res
        self._finalizer = weakref.finalize(self, _teardown_at_exit, res)
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
        return _daemon_pid(self._res)

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
        _wait_ready(self._res, self.start_timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the daemon (SIGTERM, SIGKILL after `timeout`), keeping the data for `start()`.

        Running containers are stopped by dockerd with their own stop timeout (10 s unless set).
        """
        self._close_helper_api()
        problems = _stop_daemon(self._res, timeout)
        problems += _unmount_under(self._res.root, keep=self._res.kept_mounts)
        if problems:
            raise EngineError(f"{self.name}: " + "; ".join(problems))

    def kill(self) -> None:
        """SIGKILL the daemon (no shutdown at all, as a crash), and what it ran with it (its
        containerd, shims, containers), keeping the data: `start()` brings it back on it."""
        self._close_helper_api()
        pid = _daemon_pid(self._res)
        if pid is not None:
            _signal(pid, signal.SIGKILL)
            _wait_gone({pid}, KILL_TIMEOUT)
        if self._res.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._res.process.wait(timeout=KILL_TIMEOUT)  # reap our child
        self._res.process = None
        self._res.pid = None
        problems = _kill_leftovers(self._res)
        if not problems:
            _remove_stale_pidfiles(self._res)
        problems += _unmount_under(self._res.root, keep=self._res.kept_mounts)
        if problems:
            raise EngineError(f"{self.name}: " + "; ".join(problems))

    def close(self) -> None:
        """Stop the daemon and remove mount, loop device and temp dir; safe to call twice."""
        self._close_helper_api()
        if self._finalizer.detach() is None:
            return
        problems = _teardown(self._res)
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
            "pid": _daemon_pid(res),
            "endpoint": self.endpoint,
            "socket_path": str(res.socket_path),
            "data_root": str(res.data_root),
            "mountpoint": str(res.mountpoint),
            "log_path": str(res.log_path),
            "image_path": str(res.image),
            "loop_devices": _loop_devices(res.image),
        }

    @classmethod
    def attach(cls, state: Mapping[str, Any]) -> IsolatedEngine:
        """Take over an engine a `detach()` left behind (possibly in another process)."""
        root = Path(state["root"])
        res = _Resources(
            root=root,
            name=state["name"],
            size_mb=int(state.get("size_mb", DEFAULT_SIZE_MB)),
            pid=state.get("pid"),
            mounted=_is_mountpoint(root / "fs"),
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
        return _log_tail(self._res.log_path, lines)

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
        return _run_container(
            self._api(), image, cmd, name=name, labels=labels, detach=detach, wait=wait,
            stop_timeout=stop_timeout,
        )  # fmt: skip

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
        workers = max(1, min(workers, n))

        def batch(indices: range) -> list[tuple[int, str]]:
            with self.api() as api:
                return [
                    (i, _run_container(api, image, cmd, labels=labels_fn(i) if labels_fn else None))
                    for i in indices
                ]

        ids = [""] * n
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=self.name) as pool:
            for results in pool.map(batch, [range(k, n, workers) for k in range(workers)]):
                for i, container_id in results:
                    ids[i] = container_id
        return ids

    # -- internals ----------------------------------------------------------------------------

    def _prepare_storage(self) -> None:
        """Make and mount the loop filesystem(s), before the daemon's first start."""
        _prepare_filesystem(self._res)

    def _start_daemon(self) -> None:
        """Start dockerd (not waiting for it)."""
        _launch(self._res)

    def _api(self) -> docker.APIClient:
        """The client the helpers share (closed on stop)."""
        if self._helper_api is None:
            self._helper_api = self.api()
        return self._helper_api

    def _close_helper_api(self) -> None:
        if self._helper_api is not None:
            self._helper_api.close()
            self._helper_api = None


# -- setup ------------------------------------------------------------------------------------


def _new_resources(base_dir: Path, size_mb: int) -> _Resources:
    """Create `<base_dir>/ngc-<hex>` (mode 0700); refuse dirs too long for the socket paths."""
    if size_mb < 64:
        raise ValueError(f"size_mb must be at least 64, got {size_mb}")
    while True:
        name = f"ngc-{secrets.token_hex(4)}"
        root = base_dir / name
        socket_path = root / "exec" / "containerd" / "containerd-debug.sock"
        if len(str(socket_path)) >= MAX_SOCKET_PATH:
            raise EngineError(f"{base_dir} is too long for unix socket paths under it")
        with contextlib.suppress(FileExistsError):
            root.mkdir(mode=0o700)
            return _Resources(root=root, name=name, size_mb=size_mb)


def _prepare_filesystem(res: _Resources) -> None:
    """Sparse image -> mkfs.ext4 -> loop device -> mount on `res.mountpoint`."""
    with open(res.image, "wb") as image:
        image.truncate(res.size_mb * 1024 * 1024)
    inodes = ["-N", str(res.inodes)] if res.inodes else []
    _run(["mkfs.ext4", "-q", "-m", "0", *inodes, "-F", str(res.image)])
    device = _run(["losetup", "--find", "--show", str(res.image)]).strip()
    res.mountpoint.mkdir(exist_ok=True)
    _run(["mount", device, str(res.mountpoint)])
    res.mounted = True


def _dockerd_argv(res: _Resources) -> list[str]:
    """dockerd with every path, namespace and cgroup of its own, and no networking."""
    config = res.root / "daemon.json"
    config.write_text("{}\n")  # never read the host's /etc/docker/daemon.json
    return [
        shutil.which("dockerd", path=_tool_path()) or "dockerd",
        f"--config-file={config}",
        f"--data-root={res.data_root}",
        f"--exec-root={res.exec_root}",
        f"--pidfile={res.pidfile}",
        f"--host=unix://{res.socket_path}",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--storage-driver=overlay2",
        f"--containerd-namespace={res.name}",
        f"--containerd-plugins-namespace={res.name}-plugins",
        "--exec-opt=native.cgroupdriver=cgroupfs",
        f"--cgroup-parent=/{res.name}",
    ]


def _launch(res: _Resources, argv: Sequence[str] | None = None) -> None:
    """Start dockerd (`argv`, by default `_dockerd_argv`) in a session of its own, logging to
    `res.log_path` (appended)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["PATH"] = _tool_path()
    argv = list(argv or _dockerd_argv(res))
    with open(res.log_path, "ab") as log:
        res.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip
    res.pid = res.process.pid


def _wait_ready(res: _Resources, timeout: float, what: str = "dockerd") -> None:
    """Poll `/_ping` until it answers; raise with the log tail if the daemon (`what`) dies or
    times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ping(res.socket_path):
            return
        if res.process is not None and res.process.poll() is not None:
            raise EngineError(
                f"{what} exited with {res.process.returncode}:\n{_log_tail(res.log_path)}"
            )
        time.sleep(POLL_INTERVAL)
    raise EngineError(f"{what} not ready after {timeout:.0f} s:\n{_log_tail(res.log_path)}")


def _ping(socket_path: Path) -> bool:
    """True when the daemon answers `GET /_ping` with 200 on its socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(socket_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status = sock.recv(32)
    except OSError:
        return False
    return status.startswith(b"HTTP/1.") and status[9:12] == b"200"


# -- stopping ---------------------------------------------------------------------------------


def _daemon_pid(res: _Resources) -> int | None:
    """The live dockerd's pid: from the pidfile, else the one we started; None if not running."""
    if res.process is not None and res.process.poll() is not None:
        res.process = None
    candidates = [_read_pidfile(res.pidfile), res.pid]
    return next((pid for pid in candidates if pid and _is_ours(pid, res.root, "dockerd")), None)


def _stop_daemon(res: _Resources, timeout: float, *, hurry: bool = False) -> list[str]:
    """SIGTERM dockerd by pid, SIGKILL after `timeout`; then kill whatever it left running."""
    pid = _daemon_pid(res)
    if pid is not None:
        log_offset = _file_size(res.log_path)
        _signal(pid, signal.SIGTERM)
        if not _wait_daemon_exit(res, pid, timeout, log_offset, hurry=hurry):
            _signal(pid, signal.SIGKILL)
            _wait_gone({pid}, KILL_TIMEOUT)
    if res.process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            res.process.wait(timeout=KILL_TIMEOUT)  # reap our child
    res.process = None
    res.pid = None
    problems = _kill_leftovers(res)
    if not problems:
        _remove_stale_pidfiles(res)
    return problems


def _remove_stale_pidfiles(res: _Resources) -> None:
    """Remove dockerd's and containerd's pidfiles once both are dead.

    Killed processes can linger as zombies (this machine's pid 1 reaps slowly) and dockerd
    takes a zombie in a pidfile for a live process: a restart would then refuse to start, or
    wait 15 s for a containerd that is not there.
    """
    for pidfile in (res.pidfile, res.exec_root / "containerd" / "containerd.pid"):
        pidfile.unlink(missing_ok=True)


def _wait_daemon_exit(
    res: _Resources, pid: int, timeout: float, log_offset: int, *, hurry: bool
) -> bool:
    """Wait for dockerd to exit after SIGTERM; False on timeout.

    With `hurry` (teardown: the data is about to go), dockerd is SIGKILLed as soon as it logs
    "Daemon shutdown complete": all that is left then is stopping its containerd, which dockerd
    polls once a second (its containerd dies with it; leftovers are killed after).
    """
    deadline = time.monotonic() + timeout
    while _alive({pid}):
        if time.monotonic() >= deadline:
            return False
        if hurry and SHUTDOWN_COMPLETE in _read_from(res.log_path, log_offset):
            _signal(pid, signal.SIGKILL)
        time.sleep(POLL_INTERVAL)
    return True


def _kill_leftovers(res: _Resources) -> list[str]:
    """SIGKILL container processes (our cgroup) and any dockerd/containerd/shim under our root."""
    engine = _engine_pids(res.root)
    problems = _kill_all(_cgroup_pids(res.name) | set(engine))
    for cmdline in engine.values():
        _remove_shim_socket(cmdline)
    return problems


def _kill_containers(res: _Resources) -> list[str]:
    """SIGKILL the containers' processes (our cgroup parent), so that dockerd stops at once."""
    return _kill_all(_cgroup_pids(res.name))


def _teardown(res: _Resources) -> list[str]:
    """Undo everything, carrying on past failures; returns what could not be undone."""
    problems: list[str] = []
    steps: list[Callable[[], list[str]]] = [
        lambda: _kill_containers(res),  # so that dockerd stops at once
        lambda: _stop_daemon(res, STOP_TIMEOUT, hurry=True),
        lambda: _unmount_under(res.root),
        lambda: _remove_cgroups(res.name),
        lambda: [p for image in res.images for p in _detach_loops(image)],
        lambda: _remove_root(res.root),
    ]
    return problems + _run_teardown(res, steps)


def _teardown_at_exit(res: _Resources) -> None:
    """Finalizer fallback: tear down and report on stderr (nobody is left to raise to)."""
    for problem in _teardown(res):
        print(f"nodegc.testing.engine: {res.name}: {problem}", file=sys.stderr)


# -- processes --------------------------------------------------------------------------------


# -- cgroups, mounts, loop devices ------------------------------------------------------------


# -- small helpers ----------------------------------------------------------------------------


def _run_container(
    api: docker.APIClient,
    image: str,
    cmd: Sequence[str] | str,
    *,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    detach: bool = True,
    wait: bool = True,
    stop_timeout: int | None = 1,
) -> str:
    """Create + start a container with network "none"; wait for its exit if asked."""
    container = api.create_container(
        image,
        command=cmd if isinstance(cmd, str) else list(cmd),
        name=name,
        labels=dict(labels or {}),
        detach=detach,
        stop_timeout=stop_timeout,
        host_config=api.create_host_config(network_mode="none"),
    )
    container_id: str = container["Id"]
    api.start(container_id)
    if wait:
        api.wait(container_id)
    return container_id


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
