"""Kubernetes image volumes (KEP-4639, CRI `Mount.image`) on containerd 2.1 (Debian forky's,
from the engine root): an image mounted into a container as a volume is in use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.testing.containerd import RPC_TIMEOUT, IsolatedContainerd
from nodegc.testing.engine_root import engine_root
from nodegc.testing.images import busybox_image_tar
from tests.cri.conftest import require_containerd
from tests.cri.helpers import MiB, cri_json, decisions


@pytest.fixture
def ctrd21() -> Iterator[IsolatedContainerd]:
    require_containerd()
    with IsolatedContainerd(size_mb=256, root=engine_root("forky")) as ctrd:
        yield ctrd


@pytest.mark.cri
def test_an_image_mounted_as_a_volume_is_in_use(ctrd21: IsolatedContainerd, tmp_path: Path) -> None:
    """A created container with busybox as its image and `data:1` mounted at /data: with every
    image planned for removal (thresholds 1/0), `data:1` is kept `in-use` and stays; the unused
    `other:1` goes. Mutation caught: mounts not read (data:1 removed: CRI would not refuse)."""
    ctrd = ctrd21
    base, data, other = (
        ctrd.import_image(busybox_image_tar([tag], extra_size_bytes=MiB))
        for tag in ("app:1", "data:1", "other:1")
    )
    pod = ctrd.run_pod("vol")
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app", attempt=0),
        image=pb.ImageSpec(image=base),
        command=["true"],
        mounts=[pb.Mount(container_path="/data", readonly=True, image=pb.ImageSpec(image=data))],
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE)
            )
        ),
    )
    created = ctrd.rt.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=pod, config=config, sandbox_config=ctrd._sandbox_configs[pod]
        ),
        timeout=RPC_TIMEOUT,
    ).container_id
    status = ctrd.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=created)).status
    assert [m.image.image for m in status.mounts if m.image.image], status  # the premise

    _code, out = cri_json(  # the target (0%) is out of reach: exit 1
        ctrd, tmp_path / "state", "once", "--image-gc-high-threshold=1",
        "--image-gc-low-threshold=0", "--minimum-image-ttl-duration=0s",
        env={"NODEGC_CONTAINERS__REMOVE_UNDER_DISK_PRESSURE": "false"},
    )  # fmt: skip

    by_id = decisions(out, "images")
    assert by_id[data]["action"] == "keep" and by_id[data]["reason"] == "in-use", by_id[data]
    assert by_id[base]["reason"] == "in-use"
    assert data in ctrd.image_ids() and other not in ctrd.image_ids()
