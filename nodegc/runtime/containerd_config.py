"""The sandbox (pause) image containerd's own config file names, for containerd 2.x.

containerd 1.6/1.7 show it in CRI `Status(verbose)` (`config.sandboxImage`); 2.x does not (its
config version 3 keeps it under `[plugins."io.containerd.cri.v1.images".pinned_images]
sandbox`). The file is found from the process serving the endpoint's unix socket: its inode in
/proc/net/unix, the process holding it, that process's `--config` (default
/etc/containerd/config.toml), read through /proc/PID/root (a containerd in a chroot or another
mount namespace reads its own file). Anything missing or unreadable: "" (nothing known).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

DEFAULT_CONFIG = "/etc/containerd/config.toml"


def sandbox_image_from_config(text: str) -> str:
    """The sandbox image a containerd config (version 2 or 3) names; "" when none."""
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return ""
    plugins = config.get("plugins")
    if not isinstance(plugins, dict):
        return ""
    v3 = plugins.get("io.containerd.cri.v1.images", {})
    pinned = v3.get("pinned_images", {}) if isinstance(v3, dict) else {}
    v2 = plugins.get("io.containerd.grpc.v1.cri", {})
    for value in (
        pinned.get("sandbox") if isinstance(pinned, dict) else None,
        v2.get("sandbox_image") if isinstance(v2, dict) else None,
    ):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def config_of_socket(socket_path: str, proc: Path = Path("/proc")) -> Path | None:
    """The config file of the process listening on `socket_path` (as that process sees it,
    through /proc/PID/root); None when it cannot be found."""
    inode = _socket_inode(socket_path, proc)
    pid = _holder(inode, proc) if inode else None
    if pid is None:
        return None
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    path = DEFAULT_CONFIG
    for i, arg in enumerate(a.decode(errors="replace") for a in argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            path = argv[i + 1].decode(errors="replace")
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
    base = "root" if path.startswith("/") else "cwd"
    return proc / str(pid) / base / path.lstrip("/")


def _socket_inode(socket_path: str, proc: Path) -> str | None:
    try:
        lines = (proc / "net" / "unix").read_text(errors="replace").splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # Num RefCount Protocol Flags Type St Inode Path; flags 00010000: listening
        if len(fields) >= 8 and fields[7] == socket_path and fields[3] == "00010000":
            return fields[6]
    return None


def _holder(inode: str, proc: Path) -> int | None:
    wanted = f"socket:[{inode}]"
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == wanted:
                    return int(entry.name)
            except OSError:
                continue
    return None


def sandbox_image_of_endpoint(socket_path: str) -> str:
    """What the config of the containerd serving `socket_path` names as its sandbox image."""
    path = config_of_socket(socket_path)
    if path is None:
        return ""
    try:
        return sandbox_image_from_config(path.read_text(errors="replace"))
    except OSError:
        return ""
