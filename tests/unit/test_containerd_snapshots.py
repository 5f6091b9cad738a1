"""The snapshotter an image filesystem names (CRI ImageFsInfo on containerd)."""

from __future__ import annotations

from nodegc.runtime.containerd_snapshots import snapshotter_of


def test_the_snapshotter_is_read_from_the_image_filesystem_mountpoint() -> None:
    path = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"
    assert snapshotter_of(path) == "overlayfs"
    assert snapshotter_of(path + "/") == "overlayfs"
    assert snapshotter_of("/var/lib/containerd/io.containerd.snapshotter.v1.native") == "native"
    assert snapshotter_of("/var/lib/containers/storage/overlay-images") is None  # CRI-O
