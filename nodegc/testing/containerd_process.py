"""The containerd of the containerd harness: its resources under the temp dir (`/tmp/ngcc-<hex>`),
the paths its config names, and teardown by pid (containers, containerd, shims), carrying on past
failures. `IsolatedContainerd` (`nodegc.testing.containerd`) is the object tests hold.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nodegc.testing import processes
from nodegc.testing.containerd_config import ContainerdPaths
from nodegc.testing.dockerd import MAX_SOCKET_PATH

__all__ = [
    "ContainerdError",
    "ContainerdResources",
    "containerd_paths",
    "new_resources",
    "teardown",
    "teardown_at_exit",
]

STOP_TIMEOUT = 10.0
NAME_PREFIX = "ngcc-"
# /proc/<pid>/comm of containerd and its shims (comm is cut at 15 characters).
CONTAINERD_COMMS = frozenset({"containerd", "containerd-shim", "runc"})


class ContainerdError(RuntimeError):
    """The private containerd could not be set up, started, stopped or cleaned up."""


@dataclass
class ContainerdResources:
    """What an instance holds, kept apart from it so that a finalizer can release it."""

    root: Path
    name: str
    size_mb: int
    process: subprocess.Popen[bytes] | None = None
    mounted: bool = False
    pids: set[int] = field(default_factory=set)

    @property
    def image(self) -> Path:
        return self.root / "disk.img"

    @property
    def mountpoint(self) -> Path:
        return self.root / "fs"

    @property
    def containerd_root(self) -> Path:
        return self.mountpoint / "containerd"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def socket_path(self) -> Path:
        return self.root / "c.sock"

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def log_path(self) -> Path:
        return self.root / "containerd.log"


# -- setup ------------------------------------------------------------------------------------


def new_resources(base_dir: Path, size_mb: int) -> ContainerdResources:
    """Create `<base_dir>/ngcc-<hex>` (mode 0700); refuse dirs too long for the socket paths."""
    if size_mb < 64:
        raise ValueError(f"size_mb must be at least 64, got {size_mb}")
    while True:
        name = f"{NAME_PREFIX}{secrets.token_hex(4)}"
        root = base_dir / name
        if len(str(root / "c.sock.ttrpc")) >= MAX_SOCKET_PATH:
            raise ContainerdError(f"{base_dir} is too long for unix socket paths under it")
        with contextlib.suppress(FileExistsError):
            root.mkdir(mode=0o700)
            return ContainerdResources(root=root, name=name, size_mb=size_mb)


def containerd_paths(res: ContainerdResources) -> ContainerdPaths:
    return ContainerdPaths(
        root=res.containerd_root, state=res.state, socket=res.socket_path, opt=res.root / "opt",
        cni_bin=res.root / "cni" / "bin", cni_conf=res.root / "cni" / "conf",
    )  # fmt: skip


# -- teardown ---------------------------------------------------------------------------------


def teardown(res: ContainerdResources) -> list[str]:
    """Undo everything, carrying on past failures; returns what could not be undone."""
    problems: list[str] = []
    steps = [
        lambda: processes.kill_all(processes.cgroup_pids(res.name)),  # containers, pause included
        lambda: _stop_containerd(res),
        lambda: _kill_shims(res),
        lambda: processes.unmount_under(res.root),
        lambda: processes.remove_cgroups(res.name),
        lambda: processes.detach_loops(res.image),
        lambda: processes.remove_root(res.root),
    ]
    return problems + processes.run_teardown(res, steps)


def teardown_at_exit(res: ContainerdResources) -> None:
    """Finalizer fallback: tear down and report on stderr (nobody is left to raise to)."""
    for problem in teardown(res):
        print(f"nodegc.testing.containerd: {res.name}: {problem}", file=sys.stderr)


def _stop_containerd(res: ContainerdResources) -> list[str]:
    """SIGTERM our containerd by pid, SIGKILL after STOP_TIMEOUT; reap it."""
    process = res.process
    if process is not None and process.poll() is None:
        processes.signal_pid(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            processes.signal_pid(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=processes.KILL_TIMEOUT)
    res.process = None
    return []


def _kill_shims(res: ContainerdResources) -> list[str]:
    """SIGKILL every containerd, shim or runc process whose command line names our dir (shims
    outlive containerd), and remove the sockets the shims leave in /run/containerd/s."""
    ours = {
        pid: cmdline
        for pid, cmdline in processes.engine_pids(res.root).items()
        if _comm(pid) in CONTAINERD_COMMS
    }
    problems = processes.kill_all(set(ours))
    for cmdline in ours.values():
        processes.remove_shim_socket(cmdline)
    return problems


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
