"""The dockerd of the harnesses: its resources, its command line, starting, stopping, teardown.

`DockerdResources` is what one private dockerd holds under its temp dir (`/tmp/ngc-<hex>`): a
sparse disk image, its loop device and mount, data-root, exec-root, socket, pidfile and log. The
functions here start a dockerd on it (`launch`, `wait_ready`), stop it by pid (`stop_daemon`) and
undo everything carrying on past failures (`teardown`). `IsolatedEngine`
(`nodegc.testing.engine`) is the object tests hold; the Podman and rooted harnesses reuse these
pieces with their own paths and command lines.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nodegc.testing import processes
from nodegc.testing.loopfs import make_loop_filesystem
from nodegc.testing.processes import EngineError

__all__ = [
    "DEFAULT_SIZE_MB",
    "MAX_SOCKET_PATH",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "DockerdResources",
    "daemon_pid",
    "dockerd_argv",
    "kill_leftovers",
    "launch",
    "new_resources",
    "prepare_filesystem",
    "remove_stale_pidfiles",
    "stop_daemon",
    "teardown",
    "teardown_at_exit",
    "wait_ready",
]

DEFAULT_SIZE_MB = 512
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
MAX_SOCKET_PATH = 100
SHUTDOWN_COMPLETE = b"Daemon shutdown complete"


@dataclass
class DockerdResources:
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


# -- setup ------------------------------------------------------------------------------------


def new_resources(base_dir: Path, size_mb: int) -> DockerdResources:
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
            return DockerdResources(root=root, name=name, size_mb=size_mb)


def prepare_filesystem(res: DockerdResources) -> None:
    """Sparse image -> mkfs.ext4 -> loop device -> mount on `res.mountpoint`."""
    make_loop_filesystem(res.image, res.mountpoint, res.size_mb, inodes=res.inodes)
    res.mounted = True


def dockerd_argv(res: DockerdResources) -> list[str]:
    """dockerd with every path, namespace and cgroup of its own, and no networking."""
    config = res.root / "daemon.json"
    config.write_text("{}\n")  # never read the host's /etc/docker/daemon.json
    return [
        shutil.which("dockerd", path=processes.tool_path()) or "dockerd",
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


def launch(res: DockerdResources, argv: Sequence[str] | None = None) -> None:
    """Start dockerd (`argv`, by default `dockerd_argv`) in a session of its own, logging to
    `res.log_path` (appended)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["PATH"] = processes.tool_path()
    argv = list(argv or dockerd_argv(res))
    with open(res.log_path, "ab") as log:
        res.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip
    res.pid = res.process.pid


def wait_ready(res: DockerdResources, timeout: float, what: str = "dockerd") -> None:
    """Poll `/_ping` until it answers; raise with the log tail if the daemon (`what`) dies or
    times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ping(res.socket_path):
            return
        if res.process is not None and res.process.poll() is not None:
            raise EngineError(
                f"{what} exited with {res.process.returncode}:\n{processes.log_tail(res.log_path)}"
            )
        time.sleep(processes.POLL_INTERVAL)
    raise EngineError(
        f"{what} not ready after {timeout:.0f} s:\n{processes.log_tail(res.log_path)}"
    )


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


def daemon_pid(res: DockerdResources) -> int | None:
    """The live dockerd's pid: from the pidfile, else the one we started; None if not running."""
    if res.process is not None and res.process.poll() is not None:
        res.process = None
    candidates = [processes.read_pidfile(res.pidfile), res.pid]
    return next(
        (pid for pid in candidates if pid and processes.is_ours(pid, res.root, "dockerd")), None
    )


def stop_daemon(res: DockerdResources, timeout: float, *, hurry: bool = False) -> list[str]:
    """SIGTERM dockerd by pid, SIGKILL after `timeout`; then kill whatever it left running."""
    pid = daemon_pid(res)
    if pid is not None:
        log_offset = processes.file_size(res.log_path)
        processes.signal_pid(pid, signal.SIGTERM)
        if not _wait_daemon_exit(res, pid, timeout, log_offset, hurry=hurry):
            processes.signal_pid(pid, signal.SIGKILL)
            processes.wait_gone({pid}, processes.KILL_TIMEOUT)
    if res.process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            res.process.wait(timeout=processes.KILL_TIMEOUT)  # reap our child
    res.process = None
    res.pid = None
    problems = kill_leftovers(res)
    if not problems:
        remove_stale_pidfiles(res)
    return problems


def remove_stale_pidfiles(res: DockerdResources) -> None:
    """Remove dockerd's and containerd's pidfiles once both are dead.

    Killed processes can linger as zombies (this machine's pid 1 reaps slowly) and dockerd
    takes a zombie in a pidfile for a live process: a restart would then refuse to start, or
    wait 15 s for a containerd that is not there.
    """
    for pidfile in (res.pidfile, res.exec_root / "containerd" / "containerd.pid"):
        pidfile.unlink(missing_ok=True)


def _wait_daemon_exit(
    res: DockerdResources, pid: int, timeout: float, log_offset: int, *, hurry: bool
) -> bool:
    """Wait for dockerd to exit after SIGTERM; False on timeout.

    With `hurry` (teardown: the data is about to go), dockerd is SIGKILLed as soon as it logs
    "Daemon shutdown complete": all that is left then is stopping its containerd, which dockerd
    polls once a second (its containerd dies with it; leftovers are killed after).
    """
    deadline = time.monotonic() + timeout
    while processes.alive({pid}):
        if time.monotonic() >= deadline:
            return False
        if hurry and SHUTDOWN_COMPLETE in processes.read_from(res.log_path, log_offset):
            processes.signal_pid(pid, signal.SIGKILL)
        time.sleep(processes.POLL_INTERVAL)
    return True


def kill_leftovers(res: DockerdResources) -> list[str]:
    """SIGKILL container processes (our cgroup) and any dockerd/containerd/shim under our root."""
    engine = processes.engine_pids(res.root)
    problems = processes.kill_all(processes.cgroup_pids(res.name) | set(engine))
    for cmdline in engine.values():
        processes.remove_shim_socket(cmdline)
    return problems


def _kill_containers(res: DockerdResources) -> list[str]:
    """SIGKILL the containers' processes (our cgroup parent), so that dockerd stops at once."""
    return processes.kill_all(processes.cgroup_pids(res.name))


def teardown(res: DockerdResources) -> list[str]:
    """Undo everything, carrying on past failures; returns what could not be undone."""
    problems: list[str] = []
    steps: list[Callable[[], list[str]]] = [
        lambda: _kill_containers(res),  # so that dockerd stops at once
        lambda: stop_daemon(res, STOP_TIMEOUT, hurry=True),
        lambda: processes.unmount_under(res.root),
        lambda: processes.remove_cgroups(res.name),
        lambda: [p for image in res.images for p in processes.detach_loops(image)],
        lambda: processes.remove_root(res.root),
    ]
    return problems + processes.run_teardown(res, steps)


def teardown_at_exit(res: DockerdResources) -> None:
    """Finalizer fallback: tear down and report on stderr (nobody is left to raise to)."""
    for problem in teardown(res):
        print(f"nodegc.testing.engine: {res.name}: {problem}", file=sys.stderr)
