"""Where Docker's containerd image store keeps its bytes, as containerd itself says.

With the containerd image store (`/info` DriverStatus `driver-type io.containerd.snapshotter.v1`;
the default for new installs from Docker 29) an image's layers and the containers' writable
layers live in containerd's root: the content store (`io.containerd.content.v1.content`, one blob
per layer) and the snapshotter Docker uses (`/info` `Driver`, e.g. `overlayfs`: one unpacked
snapshot per layer, plus a writable one per container). Logs and volumes stay under
`DockerRootDir`. containerd's introspection service (`Plugins`) names each plugin's root in its
`exports["root"]`; that is asked rather than a path guessed: a system containerd keeps its root
where its configuration says (`/var/lib/containerd` by default), dockerd's managed one under
`<DockerRootDir>/containerd/daemon`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from nodegc.model import FilesystemRole, StorePath
from nodegc.runtime import RuntimeError_, RuntimeUnavailable

log = logging.getLogger(__name__)

SNAPSHOTTER_TYPE = "io.containerd.snapshotter.v1"
CONTENT_TYPE = "io.containerd.content.v1"
INTROSPECTION_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class StoreRoots:
    """The directories of containerd's content store and of one snapshotter."""

    content: str
    snapshots: str
    source: str  # how they were found


def is_containerd_store(info: dict[str, object]) -> bool:
    """Whether `/info` describes Docker's containerd image store (DriverStatus driver-type)."""
    status = info.get("DriverStatus") or []
    if not isinstance(status, list):
        return False
    return any(
        isinstance(row, list | tuple)
        and len(row) == 2
        and row[0] == "driver-type"
        and row[1] == SNAPSHOTTER_TYPE
        for row in status
    )


def containerd_address(info: dict[str, object]) -> str:
    """The containerd socket dockerd uses (`/info` `Containerd.Address`), "" when not said."""
    section = info.get("Containerd")
    if not isinstance(section, dict):
        return ""
    return str(section.get("Address") or "")


def plugin_roots(
    plugins: Sequence[tuple[str, str, dict[str, str], str]], snapshotter: str
) -> tuple[str, str]:
    """(content root, snapshotter root) from introspected plugins, each given as
    (type, id, exports, init error). A root is "" when no working plugin names it."""
    content = snapshots = ""
    for kind, plugin_id, exports, error in plugins:
        root = exports.get("root", "")
        if error or not root or not os.path.isabs(root):
            continue
        if kind == CONTENT_TYPE and not content:
            content = root
        elif kind == SNAPSHOTTER_TYPE and plugin_id == snapshotter:
            snapshots = root
    return content, snapshots


def introspect(
    address: str, timeout: float = INTROSPECTION_TIMEOUT
) -> list[tuple[str, str, dict[str, str], str]]:
    """containerd's plugins: (type, id, exports, init error) each, from one `Plugins` call.

    Raises RuntimeUnavailable when containerd does not answer, RuntimeError_ when it refuses.
    gRPC is imported here, for the containerd image store only: it is 30-70 ms of every start
    of `nodegc` on Docker or Podman otherwise."""
    import grpc

    from nodegc.runtime.introspection_proto import introspection_pb2 as pb
    from nodegc.runtime.introspection_proto import introspection_pb2_grpc as pb_grpc

    target = address if address.startswith("unix://") else f"unix://{address}"
    channel = grpc.insecure_channel(target)
    try:
        stub = pb_grpc.IntrospectionStub(channel)
        reply = stub.Plugins(pb.PluginsRequest(), timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        detail = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        what = f"containerd introspection at {address}"
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise RuntimeUnavailable(f"{what}: unreachable: {detail}") from None
        raise RuntimeError_(f"{what}: {code}: {detail}") from None
    finally:
        channel.close()
    return [(p.type, p.id, dict(p.exports), p.init_err.message) for p in reply.plugins]


def store_roots(address: str, snapshotter: str, data_root: str) -> StoreRoots:
    """Where the content store and the snapshotter `snapshotter` keep their bytes: asked of
    containerd at `address`; when it cannot be asked (no address, no answer, a plugin not named),
    dockerd's managed containerd's layout under `data_root`, with a warning saying so."""
    fallback_base = os.path.join(data_root, "containerd", "daemon")
    fallback = StoreRoots(
        content=os.path.join(fallback_base, f"{CONTENT_TYPE}.content"),
        snapshots=os.path.join(fallback_base, f"{SNAPSHOTTER_TYPE}.{snapshotter}"),
        source=f"assumed (dockerd's managed containerd under {fallback_base})",
    )
    if not address:
        reason = "dockerd names no containerd address"
    else:
        try:
            content, snapshots = plugin_roots(introspect(address), snapshotter)
        except RuntimeError_ as exc:
            reason = str(exc)
        else:
            if content and snapshots:
                return StoreRoots(content, snapshots, f"containerd introspection at {address}")
            reason = (
                f"containerd at {address} names no root for the content store or the "
                f"{snapshotter!r} snapshotter"
            )
    log.warning(
        "containerd's root could not be asked; measuring the managed containerd's layout "
        "(set images.filesystem_path when images live elsewhere)",
        extra={"reason": reason, "path": fallback.snapshots},
    )
    return fallback


def containerd_store_paths(roots: StoreRoots, data_root: str) -> list[StorePath]:
    """The directories of a Docker with the containerd image store and their roles: snapshots
    (image layers unpacked, containers' writable layers), content (layer blobs), the data root
    (logs, volumes). A plugin's root not created yet (containerd makes the content store's at its
    first blob: a fresh node) is measured at its parent, containerd's root, where it will be."""
    return [
        StorePath(
            _made(roots.snapshots), (FilesystemRole.IMAGES, FilesystemRole.CONTAINERS), roots.source
        ),
        StorePath(_made(roots.content), (FilesystemRole.IMAGES,), roots.source),
        StorePath(data_root, (FilesystemRole.LOGS, FilesystemRole.VOLUMES), "/info DockerRootDir"),
    ]


def _made(root: str) -> str:
    """`root`, or its parent while `root` does not exist yet and its parent does (one level
    only: never a directory above containerd's own root)."""
    parent = os.path.dirname(root)
    return parent if not os.path.exists(root) and os.path.isdir(parent) else root
