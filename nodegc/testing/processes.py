"""Process, mount, loop-device and cgroup helpers shared by the test harnesses (dockerd, Podman,
containerd, and the engines run from a Debian root): find an engine's processes by the temp dir
their command lines name, kill them by pid, unmount what lies under a dir, detach the loop devices
behind a disk image, and run teardown steps carrying on past failures.

Nothing here guesses by process name alone: a process is ours when its command line names a path
under our own temp dir (other engines run on the same machine at the same time).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "KILL_TIMEOUT",
    "POLL_INTERVAL",
    "EngineError",
    "alive",
    "cgroup_dirs",
    "cgroup_pids",
    "detach_loops",
    "engine_pids",
    "file_size",
    "is_mountpoint",
    "is_ours",
    "kill_all",
    "log_tail",
    "loop_devices",
    "mounts_under",
    "read_from",
    "read_pidfile",
    "remove_cgroups",
    "remove_root",
    "remove_shim_socket",
    "retry",
    "run",
    "run_teardown",
    "signal_pid",
    "tool_path",
    "try_rmdir",
    "try_run",
    "unmount",
    "unmount_under",
    "wait_gone",
]

KILL_TIMEOUT = 5.0
POLL_INTERVAL = 0.02
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# /proc/<pid>/comm of the processes an engine runs (comm is cut at 15 characters).
ENGINE_COMMS = frozenset({"dockerd", "containerd", "containerd-shim", "runc"})
SHIM_SOCKET_DIR = Path("/run/containerd/s")


class EngineError(RuntimeError):
    """The private engine could not be set up, started, stopped or cleaned up."""


def engine_pids(root: Path) -> dict[int, bytes]:
    """Engine processes (by comm) whose command line mentions a path under `root`: pid -> argv."""
    needle = f"{root}/".encode()
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            name = Path(entry.path, "comm").read_text().strip()
            cmdline = Path(entry.path, "cmdline").read_bytes() if name in ENGINE_COMMS else b""
        except OSError:
            continue
        if needle in cmdline:
            found[int(entry.name)] = cmdline
    return found


def is_ours(pid: int, root: Path, comm: str) -> bool:
    """True when `pid` is a live `comm` process whose command line mentions `root`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return name == comm and f"{root}/".encode() in cmdline and bool(alive({pid}))


def alive(pids: Iterable[int]) -> set[int]:
    """The pids that exist and are not zombies."""
    alive = set()
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
            alive.add(pid)
    return alive


def wait_gone(pids: set[int], timeout: float) -> bool:
    """Poll until none of `pids` is alive; False on timeout."""
    deadline = time.monotonic() + timeout
    while alive(pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def signal_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def read_pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def remove_shim_socket(cmdline: bytes) -> None:
    """Remove a killed shim's socket (/run/containerd/s/<sha256(address/ns/id)>) if left."""
    args = cmdline.decode(errors="replace").split("\0")
    opts = {k: v for k, v in itertools.pairwise(args) if k.startswith("-")}
    if not {"-address", "-namespace", "-id"} <= opts.keys():
        return
    key = os.path.join(opts["-address"], opts["-namespace"], opts["-id"])
    (SHIM_SOCKET_DIR / hashlib.sha256(key.encode()).hexdigest()).unlink(missing_ok=True)


def kill_all(pids: set[int]) -> list[str]:
    """SIGKILL `pids` and wait for them to go."""
    for pid in pids:
        signal_pid(pid, signal.SIGKILL)
    if wait_gone(pids, KILL_TIMEOUT):
        return []
    return [f"processes {sorted(alive(pids))} survived SIGKILL"]


def cgroup_dirs(name: str) -> list[Path]:
    """`<hierarchy>/<name>` in every mounted cgroup hierarchy where it exists."""
    dirs = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] in ("cgroup", "cgroup2") and Path(fields[1], name).is_dir():
            dirs.append(Path(fields[1], name))
    return dirs


def cgroup_pids(name: str) -> set[int]:
    """Every process in the engine's cgroup parent: the containers' processes."""
    pids = set()
    for top in cgroup_dirs(name):
        for dirpath, _, _ in os.walk(top):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
    return pids


def remove_cgroups(name: str) -> list[str]:
    """Remove the engine's (empty by now) cgroup parent from every hierarchy."""
    problems = []
    for top in cgroup_dirs(name):
        for dirpath, _, _ in os.walk(top, topdown=False):
            if not retry(lambda d=dirpath: try_rmdir(d)):
                problems.append(f"cannot remove cgroup {dirpath}")
    return problems


def try_rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below `root`, most recent first (so children come before parents)."""
    prefix = f"{root}/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = unescape(line.split()[4])
        if point == str(root) or point.startswith(prefix):
            points.append(Path(point))
    return points[::-1]


def is_mountpoint(path: Path) -> bool:
    return path in mounts_under(path)


def unescape(field: str) -> str:
    """Undo /proc/self/mountinfo's octal escapes (\\040 for a space...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def loop_devices(image: Path) -> list[str]:
    """Loop devices backed by `image` (`losetup -j`)."""
    if not image.exists():
        return []
    out = run(["losetup", "--list", "--noheadings", "--output", "NAME", "-j", str(image)])
    return out.split()


def unmount_under(root: Path, keep: Iterable[Path] = ()) -> list[str]:
    """Unmount every mount at or below `root` (latest first), except those in `keep`."""
    problems = []
    kept = set(keep)
    for point in mounts_under(root):
        if point not in kept:
            problems += unmount(point)
    return problems


def unmount(point: Path) -> list[str]:
    """`umount`, retried briefly while busy, then `umount -l`."""
    for attempt in range(5):
        if point not in mounts_under(point) or try_run(["umount", str(point)]):
            return []
        time.sleep(POLL_INTERVAL * (attempt + 1))
    if try_run(["umount", "-l", str(point)]):
        return []
    return [f"cannot unmount {point}"]


LOOP_RELEASE_TIMEOUT = 30.0


def detach_loops(image: Path) -> list[str]:
    """Detach every loop device backed by `image`, and wait until the kernel has let go of it.

    `losetup -d` on a device that is still mounted somewhere (a mount namespace whose last thread
    is still exiting: a killed Go engine's leader shows as a zombie before its other threads are
    gone) only marks it autoclear; the device is freed when that mount goes. Waiting here, on the
    device itself, means nothing outlives the teardown, whatever the machine's load."""
    problems = []
    devices = loop_devices(image)
    for device in devices:
        if not retry(lambda device=device: try_run(["losetup", "-d", device])):
            problems.append(f"cannot detach {device}")
    deadline = time.monotonic() + LOOP_RELEASE_TIMEOUT
    while busy := [d for d in devices if _backed_by(d, image)]:
        if time.monotonic() >= deadline:
            return [*problems, f"loop device(s) {busy} still backed by {image}"]
        time.sleep(POLL_INTERVAL)
    return problems


def _backed_by(device: str, image: Path) -> bool:
    """Whether loop `device` (/dev/loopN) is still bound to `image` (sysfs, deleted files too)."""
    backing = Path("/sys/block", Path(device).name, "loop", "backing_file")
    try:
        return backing.read_text().strip().removesuffix(" (deleted)") == str(image)
    except OSError:
        return False


def remove_root(root: Path) -> list[str]:
    """Remove the temp tree, unless something is still mounted in it."""
    if not root.exists():
        return []
    if mounts_under(root):
        return [f"left {root} in place: still mounted"]
    shutil.rmtree(root)
    return []


def tool_path() -> str:
    """PATH plus the sbin dirs, where Debian installs dockerd, losetup and mkfs."""
    return f"{os.environ.get('PATH', '')}:{SBIN_PATH}"


def run(argv: Sequence[str]) -> str:
    """Run a setup command; raise EngineError with its stderr on failure."""
    env = {**os.environ, "PATH": tool_path()}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise EngineError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def try_run(argv: Sequence[str]) -> bool:
    """Run a cleanup command; True on success."""
    env = {**os.environ, "PATH": tool_path()}
    return subprocess.run(argv, capture_output=True, env=env, check=False).returncode == 0


def retry(attempt: Callable[[], bool], tries: int = 5) -> bool:
    """Call `attempt` until it succeeds, with short growing pauses; False if it never does."""
    for n in range(tries):
        if attempt():
            return True
        time.sleep(POLL_INTERVAL * (n + 1))
    return False


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return b""


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def run_teardown(res: Any, steps: Sequence[Callable[[], list[str]]]) -> list[str]:
    """Run every teardown step in order, whatever an earlier one raised (later steps may still
    release something); the problems, one line each. Shared by the dockerd, Podman and
    containerd harnesses."""
    problems: list[str] = []
    for step in steps:
        try:
            problems += step()
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
    res.mounted = False
    return problems
