"""containerd's config for the CRI harness (`nodegc.testing.containerd`), in the format of the
containerd it runs: `version = 2` (containerd 1.6 and 1.7) or `version = 3` (2.x, whose CRI
plugin is split into `io.containerd.cri.v1.images`, `io.containerd.cri.v1.runtime` and the
`io.containerd.grpc.v1.cri` server, with the sandbox image under
`[plugins."io.containerd.cri.v1.images".pinned_images] sandbox`).

Every path is under the harness's temp dir; CRI gets a local pause image and no CNI plugin (pods
use the node's network namespace).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ContainerdPaths", "config_toml"]

# Plugins the harness has no use for: skipped for a faster start and a quieter log.
DISABLED_PLUGINS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
)


@dataclass(frozen=True)
class ContainerdPaths:
    """Where one harness's containerd keeps everything."""

    root: Path
    state: Path
    socket: Path
    opt: Path
    cni_bin: Path
    cni_conf: Path


def config_toml(paths: ContainerdPaths, sandbox_image: str, version: int = 2) -> str:
    """The config file for a containerd taking config `version` 2 or 3."""
    if version not in (2, 3):
        raise ValueError(f"containerd config version must be 2 or 3, got {version}")
    disabled = ", ".join(f'"{p}"' for p in DISABLED_PLUGINS)
    common = f"""\
version = {version}
root = "{paths.root}"
state = "{paths.state}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{paths.socket}"

[ttrpc]
  address = "{paths.socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{paths.opt}"
"""
    cri = _cri_v3(paths, sandbox_image) if version == 3 else _cri_v2(paths, sandbox_image)
    return common + cri


def _cri_v2(paths: ContainerdPaths, sandbox_image: str) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""
[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

[{cri}.cni]
  bin_dir = "{paths.cni_bin}"
  conf_dir = "{paths.cni_conf}"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
"""


def _cri_v3(paths: ContainerdPaths, sandbox_image: str) -> str:
    images = 'plugins."io.containerd.cri.v1.images"'
    runtime = 'plugins."io.containerd.cri.v1.runtime"'
    return f"""
[{images}]
  snapshotter = "overlayfs"

[{images}.pinned_images]
  sandbox = "{sandbox_image}"

[{runtime}]
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true

[{runtime}.cni]
  bin_dirs = ["{paths.cni_bin}"]
  conf_dir = "{paths.cni_conf}"

[{runtime}.containerd]
  default_runtime_name = "runc"

[{runtime}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{runtime}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
