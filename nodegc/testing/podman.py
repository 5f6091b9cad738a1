"""A private, disposable Podman service (`podman system service`) on its own loop-mounted ext4.

`IsolatedPodman` is the Podman counterpart of `nodegc.testing.engine.IsolatedEngine`, with the
same interface (it is a subclass), so that a test written for the dockerd harness runs unchanged
against Podman's Docker-compatible API. Everything lives under one short temp dir
(`/tmp/ngc-<hex>`): the sparse disk image, its loop device and mount (graphroot `fs/storage`), the
runroot, tmp dir, file locks, events log, socket, log, and the containers.conf / storage.conf the
service reads (`CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF`; never /etc/containers). The
filesystem and teardown helpers are the dockerd harness's.

Settings this machine kind needs: `cgroup_manager = "cgroupfs"` (no systemd), `events_logger =
"file"` (no journald), `netns = "none"`, and, because root here lacks CAP_SYS_RESOURCE and the
hard nofile limit is 20000, `default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]`
(without them every container fails to start: "error setting rlimit type 7"). `lock_type =
"file"` keeps the locks out of the shared /dev/shm/libpod_lock.

Podman's containers outlive its service (each has a `conmon`): teardown kills them by the
containers' own cgroups (`/libpod_parent/libpod-<id>`) and every conmon, podman or runtime
process whose command line names the temp dir, then unmounts, detaches and removes as the
dockerd harness does. Needs root, podman, conmon, runc (or crun), losetup, mkfs.ext4, mount.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodegc.testing import dockerd
from nodegc.testing.dockerd import DEFAULT_SIZE_MB, START_TIMEOUT, STOP_TIMEOUT, DockerdResources
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.processes import KILL_TIMEOUT, EngineError
from nodegc.testing.processes import alive as _alive
from nodegc.testing.processes import cgroup_dirs as _cgroup_dirs
from nodegc.testing.processes import detach_loops as _detach_loops
from nodegc.testing.processes import engine_pids as _engine_pids
from nodegc.testing.processes import is_ours as _is_ours
from nodegc.testing.processes import kill_all as _kill_all
from nodegc.testing.processes import remove_root as _remove_root
from nodegc.testing.processes import retry as _retry
from nodegc.testing.processes import run_teardown as _run_teardown
from nodegc.testing.processes import signal_pid as _signal
from nodegc.testing.processes import tool_path as _tool_path
from nodegc.testing.processes import try_rmdir as _try_rmdir
from nodegc.testing.processes import unmount_under as _unmount_under
from nodegc.testing.processes import wait_gone as _wait_gone

__all__ = ["IsolatedPodman", "missing_podman_requirements"]

REQUIRED_TOOLS = ("podman", "conmon", "losetup", "mkfs.ext4", "mount", "umount")
# /proc/<pid>/comm of the processes a Podman service and its containers' monitors run.
PODMAN_COMMS = frozenset({"podman", "conmon", "runc", "crun", "catatonit"})
# Where Podman's cgroupfs manager puts containers (`libpod-<id>`) by default.
LIBPOD_PARENT = "libpod_parent"


def missing_podman_requirements() -> list[str]:
    """Why an IsolatedPodman cannot run here (empty when it can)."""
    problems = [] if os.geteuid() == 0 else ["needs root (loop devices, mounts, podman)"]
    path = _tool_path()
    problems += [
        f"{tool} not found" for tool in REQUIRED_TOOLS if not shutil.which(tool, path=path)
    ]
    if not (shutil.which("runc", path=path) or shutil.which("crun", path=path)):
        problems.append("no OCI runtime (runc or crun) found")
    return problems


@dataclass
class _PodmanResources(DockerdResources):
    """The dockerd harness's resources, with Podman's paths."""

    @property
    def data_root(self) -> Path:  # the graphroot: on the loop filesystem
        return self.mountpoint / "storage"

    @property
    def runroot(self) -> Path:
        return self.root / "run"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def socket_path(self) -> Path:
        return self.root / "podman.sock"

    @property
    def log_path(self) -> Path:
        return self.root / "podman.log"

    @property
    def containers_conf(self) -> Path:
        return self.root / "containers.conf"

    @property
    def storage_conf(self) -> Path:
        return self.root / "storage.conf"

    @property
    def events_log(self) -> Path:
        return self.root / "events.log"


class IsolatedPodman(IsolatedEngine):
    """A Podman service of our own on a `size_mb` ext4 loop filesystem; a context manager.

    `start()` prepares the filesystem on first use and (re)starts the service on the same
    storage; `stop()` stops the service (containers keep running under their conmon, as on a
    real host) and leaves the data; `close()` removes everything.
    """

    def __init__(
        self,
        size_mb: int = DEFAULT_SIZE_MB,
        *,
        base_dir: str | os.PathLike[str] = "/tmp",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        plain = dockerd.new_resources(Path(base_dir), size_mb)
        res = _PodmanResources(root=plain.root, name=plain.name, size_mb=plain.size_mb)
        self._res = res
        self._finalizer = weakref.finalize(self, _teardown_at_exit, res)
        self.start_timeout = start_timeout
        self._helper_api = None
        self._fill_count = 0

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<IsolatedPodman {self.name} {state} {self.endpoint}>"

    @property
    def pid(self) -> int | None:
        """The service's pid while it runs."""
        return _service_pid(self._res)

    @property
    def events_log(self) -> Path:
        """Podman's event log (events_logger = "file")."""
        return self._res.events_log

    def start(self) -> None:
        """Start the service (preparing the filesystem first time); a no-op while it runs."""
        if not self._finalizer.alive:
            raise EngineError(f"{self.name} is closed")
        if self.running:
            return
        res = self._res
        if not res.mounted:
            dockerd.prepare_filesystem(res)
            _write_configs(res, self._runtime())
        _launch(res, self._wrap)
        dockerd.wait_ready(res, self.start_timeout, "podman service")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the service (SIGTERM, SIGKILL after `timeout`), keeping the data for `start()`."""
        self._close_helper_api()
        problems = _stop_service(self._res, timeout)
        if problems:
            raise EngineError(f"{self.name}: " + "; ".join(problems))

    def close(self) -> None:
        """Stop everything and remove mounts, loop device and temp dir; safe to call twice."""
        self._close_helper_api()
        if self._finalizer.detach() is None:
            return
        problems = _teardown(self._res)
        if problems:
            raise EngineError(f"cleanup of {self.name} incomplete: " + "; ".join(problems))

    def cli(self, *args: str) -> tuple[list[str], dict[str, str]]:
        """argv and environment of the `podman` command line on this service's storage (local
        mode, as people run `podman image prune` on a host: not through the service)."""
        res = self._res
        argv = [
            shutil.which("podman", path=_tool_path()) or "podman",
            f"--root={res.data_root}",
            f"--runroot={res.runroot}",
            *args,
        ]
        return argv, _podman_env(res)

    def _wrap(self, argv: list[str]) -> list[str]:
        """The command line that runs `argv` (a podman command); a subclass may wrap it."""
        return argv

    def _runtime(self) -> str | None:
        """The OCI runtime containers.conf names (None: Podman's default)."""
        return None

    def detach(self) -> dict[str, Any]:
        raise NotImplementedError("IsolatedPodman cannot outlive its process")

    @classmethod
    def attach(cls, state: Any) -> IsolatedEngine:
        raise NotImplementedError("IsolatedPodman cannot outlive its process")


# -- setup ------------------------------------------------------------------------------------


def _write_configs(res: _PodmanResources, runtime: str | None = None) -> None:
    """containers.conf and storage.conf of our own: every path under the temp dir."""
    runtime_line = f'runtime = "{runtime}"\n' if runtime else ""
    for directory in (res.data_root, res.runroot, res.tmp_dir, res.root / "networks"):
        directory.mkdir(parents=True, exist_ok=True)
    res.containers_conf.write_text(
        f"""[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[network]
network_config_dir = "{res.root}/networks"

[engine]
{runtime_line}cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{res.events_log}"
lock_type = "file"
tmp_dir = "{res.tmp_dir}"
image_copy_tmp_dir = "{res.tmp_dir}"
static_dir = "{res.data_root}/libpod"
volume_path = "{res.data_root}/volumes"
"""
    )
    res.storage_conf.write_text(
        f"""[storage]
driver = "overlay"
graphroot = "{res.data_root}"
runroot = "{res.runroot}"
"""
    )


def _podman_env(res: _PodmanResources) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOCKER_", "CONTAINER_", "CONTAINERS_", "XDG_RUNTIME_DIR"))
    }
    env.update(
        PATH=_tool_path(),
        CONTAINERS_CONF=str(res.containers_conf),
        CONTAINERS_STORAGE_CONF=str(res.storage_conf),
        CONTAINERS_REGISTRIES_CONF=str(res.root / "registries.conf"),
        TMPDIR=str(res.tmp_dir),  # uploads (`/images/load`) are spooled here, not in /var/tmp
    )
    return env


def _launch(res: _PodmanResources, wrap: Callable[[list[str]], list[str]] = list) -> None:
    """`podman system service` on our socket, in a session of its own, logging to the log."""
    registries = res.root / "registries.conf"
    if not registries.exists():
        registries.write_text("unqualified-search-registries = []\n")
    argv = [
        shutil.which("podman", path=_tool_path()) or "podman",
        f"--root={res.data_root}",
        f"--runroot={res.runroot}",
        "system",
        "service",
        "--time=0",
        f"unix://{res.socket_path}",
    ]
    with open(res.log_path, "ab") as log:
        res.process = subprocess.Popen(
            wrap(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=_podman_env(res), start_new_session=True,
        )  # fmt: skip
    res.pid = res.process.pid


# -- processes --------------------------------------------------------------------------------


def _service_pid(res: DockerdResources) -> int | None:
    if res.process is not None and res.process.poll() is not None:
        res.process = None
    pid = res.pid
    if pid and _is_ours(pid, res.root, "podman"):
        return pid
    return None


def _podman_pids(root: Path) -> dict[int, list[str]]:
    """podman, conmon and runtime processes whose command line names a path under `root`."""
    return {
        pid: cmdline.decode(errors="replace").split("\0")
        for pid, cmdline in _engine_pids(root, PODMAN_COMMS).items()
    }


def _container_ids(root: Path) -> set[str]:
    """Ids of our containers that have a monitor (`conmon -c <id>`), i.e. that may be running."""
    ids = set()
    for argv in _podman_pids(root).values():
        if Path(argv[0]).name == "conmon" and "-c" in argv:
            index = argv.index("-c") + 1
            if index < len(argv):
                ids.add(argv[index])
    return ids


def _container_cgroups(container_ids: set[str]) -> list[str]:
    """The cgroups (relative to a hierarchy) Podman's cgroupfs manager made for these ids."""
    return [f"{LIBPOD_PARENT}/libpod-{cid}" for cid in sorted(container_ids)]


def _cgroup_tree_pids(relative: str) -> set[int]:
    pids: set[int] = set()
    for top in _cgroup_dirs(relative):
        for dirpath, _, _ in os.walk(top):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
    return pids


def _kill_containers(res: _PodmanResources) -> tuple[list[str], set[str]]:
    """SIGKILL our containers' processes (by their cgroups) and their monitors."""
    ids = _container_ids(res.root)
    pids: set[int] = set()
    for relative in _container_cgroups(ids):
        pids |= _cgroup_tree_pids(relative)
    pids |= {pid for pid, argv in _podman_pids(res.root).items() if "conmon" in argv[0]}
    return _kill_all(pids), ids


def _stop_service(res: _PodmanResources, timeout: float) -> list[str]:
    """SIGTERM the service by pid, SIGKILL after `timeout`, and reap it."""
    pid = _service_pid(res)
    if pid is not None:
        _signal(pid, signal.SIGTERM)
        if not _wait_gone({pid}, timeout):
            _signal(pid, signal.SIGKILL)
            _wait_gone({pid}, KILL_TIMEOUT)
    if res.process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            res.process.wait(timeout=KILL_TIMEOUT)
    res.process = None
    res.pid = None
    if pid is not None and _alive({pid}):
        return [f"podman service {pid} survived SIGKILL"]
    return []


def _remove_container_cgroups(container_ids: set[str]) -> list[str]:
    problems = []
    for relative in _container_cgroups(container_ids):
        for top in _cgroup_dirs(relative):
            for dirpath, _, _ in os.walk(top, topdown=False):
                if not _retry(lambda d=dirpath: _try_rmdir(d)):
                    problems.append(f"cannot remove cgroup {dirpath}")
    return problems


def _teardown(res: _PodmanResources) -> list[str]:
    """Undo everything, carrying on past failures; returns what could not be undone."""
    problems: list[str] = []
    container_ids: set[str] = set()

    def kill_containers() -> list[str]:
        found, ids = _kill_containers(res)
        container_ids.update(ids)
        return found

    steps: list[Callable[[], list[str]]] = [
        kill_containers,
        lambda: _stop_service(res, STOP_TIMEOUT),
        lambda: _kill_all(set(_podman_pids(res.root))),  # cleanup processes, late runtimes
        lambda: _unmount_under(res.root),
        lambda: _remove_container_cgroups(container_ids),
        lambda: _detach_loops(res.image),
        lambda: _remove_root(res.root),
    ]
    return problems + _run_teardown(res, steps)


def _teardown_at_exit(res: _PodmanResources) -> None:
    for problem in _teardown(res):
        print(f"nodegc.testing.podman: {res.name}: {problem}", file=sys.stderr)
