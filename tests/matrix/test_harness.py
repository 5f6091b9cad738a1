"""The matrix harnesses themselves: engines from a Debian root are what they claim, and leave
nothing behind.

Mutations caught: containerd's own filesystem mounted where dockerd does not keep its root (the
own-fs scenarios would then measure an empty disk), a containerd 2.x config whose sandbox image
is not read (config version 3 keeps it under `pinned_images`), teardown that leaves a process,
mount, loop device or directory behind (in the temp dir or in the cached root) when a test
fails half-way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.testing import processes
from nodegc.testing.images import busybox_image_tar
from nodegc.testing.matrix import Node, by_id, start_node
from tests.conftest import matrix_params, require_matrix_engine
from tests.matrix.helpers import MiB

IMAGE_MIB = 24


@pytest.mark.parametrize("node", matrix_params("docker28-containerd-own-fs"), indirect=True)
def test_containerd_store_on_its_own_fs_keeps_image_bytes_there(node: Node) -> None:
    """An image loaded into the containerd store lands on containerd's filesystem (content and
    snapshot: about twice its size), not on the data-root's."""
    own, data = node.images_fs, node.engine
    assert node.images_mountpoint != data.mountpoint
    own_before, data_before = own.available_bytes(), data.available_bytes()
    node.load([busybox_image_tar(["big/one:1"], extra_size_bytes=IMAGE_MIB * MiB)])
    assert own_before - own.available_bytes() >= 2 * IMAGE_MIB * MiB
    assert data_before - data.available_bytes() < 4 * MiB
    with node.api() as api:
        info = api.info()
    assert ["driver-type", "io.containerd.snapshotter.v1"] in info["DriverStatus"]


@pytest.mark.parametrize("node", matrix_params("containerd2-cri"), indirect=True)
def test_containerd2_reads_the_sandbox_image_from_a_version_3_config(node: Node) -> None:
    """containerd 2.x pins the sandbox image its config names (pinned_images.sandbox)."""
    ctrd = node.ctrd
    assert ctrd.config_version == 3
    rows = ctrd.img.ListImages(pb.ListImagesRequest()).images
    (pause,) = [i for i in rows if i.id == ctrd.sandbox_image_id]
    assert pause.pinned is True
    assert ctrd.run_pod("starts")  # the pause image runs: pods start without any pull


@pytest.mark.parametrize("spec_id", ["docker28-containerd-own-fs", "podman5", "containerd2-cri"])
def test_a_failing_test_leaves_nothing_behind(spec_id: str) -> None:
    """A running container, then an exception inside the block: afterwards no process, mount,
    loop device or directory of the engine is left, in the temp dir or in the cached root."""
    (spec,) = by_id(spec_id)
    require_matrix_engine(spec)
    seen: dict[str, object] = {}
    with pytest.raises(RuntimeError, match="half-way"), start_node(spec) as node:
        (image_id,) = node.load([busybox_image_tar()])
        node.hold(image_id)
        root = node.harness.root
        assert node.engine_root is not None
        seen.update(root=root, cached=node.engine_root.path / str(root).lstrip("/"))
        seen["images"] = sorted(root.glob("*.img"))
        raise RuntimeError("the test failed half-way")
    root = Path(str(seen["root"]))
    assert not root.exists()
    assert not processes.mounts_under(root)
    assert not [p for p in processes.engine_pids(root)]
    assert not _pids_naming(root)
    assert not Path(str(seen["cached"])).exists(), "left a directory in the cached root"
    for image in seen["images"]:  # type: ignore[union-attr]
        assert not _loops_backed_by(image)


def _pids_naming(root: Path) -> list[int]:
    """Any process (not only engines) whose command line names a path under `root`."""
    needle = f"{root}/".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in Path(entry.path, "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _loops_backed_by(image: Path) -> list[str]:
    """Loop devices still backed by the (deleted) `image` file."""
    out = processes.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"])
    return [line for line in out.splitlines() if str(image) in line]
