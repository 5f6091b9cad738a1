"""Dead containers under disk pressure on a real containerd (CRI): writable-layer sizes from
ListContainerStats where the runtime has them, and the closed loop measuring the rest."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from nodegc.runtime.cri import CriRuntime
from nodegc.testing.containerd import IsolatedContainerd
from tests.cri.helpers import cri_json

MiB = 1024 * 1024


def test_writable_layer_sizes_come_from_container_stats(
    ctrd: IsolatedContainerd, busybox: str
) -> None:
    """One ListContainerStats; a running and a dead container that wrote 8 MiB each report at
    least that."""
    pod = ctrd.run_pod("writer", uid="uid-w")
    running = ctrd.run_container(
        pod, busybox, ["sh", "-c", "dd if=/dev/zero of=/blob bs=1M count=8 && sleep 60"],
        wait=False,
    )  # fmt: skip
    dead = ctrd.run_container(
        pod, busybox, ["dd", "if=/dev/zero", "of=/blob", "bs=1M", "count=8"], attempt=1
    )
    runtime = CriRuntime(ctrd.endpoint, timedelta(seconds=30))
    deadline = time.monotonic() + 20
    while True:
        before = runtime.requests
        sizes = runtime.disk_usage(build_cache=True, container_sizes=True).container_sizes
        assert runtime.requests - before == 1
        assert sizes is not None
        if sizes.get(running, 0) >= 8 * MiB or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sizes.get(running, 0) >= 8 * MiB, sizes
    assert sizes.get(dead, 0) >= 8 * MiB, sizes  # a dead container's too (containerd 1.6.20)
    runtime.close()


def test_dead_containers_go_under_pressure_on_containerd(
    ctrd: IsolatedContainerd, busybox: str, tmp_path: Path
) -> None:
    """Dead containers the caps keep (one per pod) with 20 MiB written each, the disk above high
    and no removable image: one `once` removes them, longest stopped first, down to low."""
    dead = []
    for n in range(3):
        pod = ctrd.run_pod(f"job-{n}", uid=f"uid-{n}")
        dead.append(
            ctrd.run_container(
                pod, busybox, ["dd", "if=/dev/urandom", "of=/blob", "bs=1M", "count=20"]
            )
        )
    st = os.statvfs(ctrd.mountpoint)
    capacity, available = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    # Usage just above 85%, and reaching 80% needs about two of the three writable layers.
    target_available = capacity * 20 // 100 - 30 * MiB
    ctrd.fill(available - target_available)
    _code, out = cri_json(
        ctrd,
        tmp_path / "s",
        "once",
        "--image-gc-high-threshold",
        "85",
        "--image-gc-low-threshold",
        "80",
    )
    reasons = {d["id"]: (d["reason"], d["outcome"]) for d in out["containers"]["decisions"]}
    assert reasons[dead[0]] == ("disk-pressure", "removed"), reasons
    assert dead[0] not in ctrd.containers()
    # containerd frees a removed container's snapshot in its own garbage collection, a moment
    # later: the disk comes back to low shortly after (the cycle measured it before; see
    # docs/containerd.md), whatever the exit code said.
    deadline = time.monotonic() + 15
    while usage(ctrd) > 80:
        assert time.monotonic() < deadline, f"disk still {usage(ctrd)}%: {out}"
        time.sleep(0.2)


def usage(ctrd: IsolatedContainerd) -> int:
    st = os.statvfs(ctrd.mountpoint)
    return 100 - (st.f_bavail * 100) // st.f_blocks
