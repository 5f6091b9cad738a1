"""Dead containers on every engine of the matrix: the kubelet's caps, and disk pressure.

Mutations caught: a cap that removes the newest dead container of a pod container (or keeps
the older ones), a container of its own evict unit removed by the caps, dead containers removed
under pressure newest first or all at once (ending below low - 6), writable layers measured on
another filesystem than the one they fill (Docker's containerd store), figures that are not the
disk's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nodegc.testing.images import busybox_image_tar
from nodegc.testing.matrix import Node
from tests.conftest import matrix_params
from tests.matrix.helpers import (
    THRESHOLDS,
    available,
    check_closed_loop,
    filesystem_entry,
    fill_to_start,
    run_json,
)

PINNED = {"nodegc.io/pinned": "true"}
CAPS_ONLY = {"NODEGC_CONTAINERS__REMOVE_UNDER_DISK_PRESSURE": "false"}
DEAD = 8
WRITE_MIB = 8  # 3% of the 256 MiB filesystem each


def busybox(node: Node) -> str:
    """The busybox image, pinned (the scenarios are about containers only)."""
    (image_id,) = node.load([busybox_image_tar(labels=PINNED)])
    return image_id


@pytest.mark.parametrize("node", matrix_params(), indirect=True)
def test_kubelet_caps_keep_the_newest_dead_container_of_each_pod_container(
    node: Node, tmp_path: Path
) -> None:
    """Three dead containers of one pod container and one of its own, no disk pressure: the
    two older of the pod container go (`per-unit-cap`), the rest stay."""
    image = busybox(node)
    unit = node.dead(image, 3, one_unit=True)
    (alone,) = node.dead(image, 1, one_unit=False)

    code, out = run_json(node, tmp_path / "state", "once", env=CAPS_ONLY)

    assert code == 0, out
    reasons = {d["id"]: d["reason"] for d in out["containers"]["decisions"]}
    assert reasons[unit[0]] == reasons[unit[1]] == "per-unit-cap", reasons
    assert node.containers() >= {unit[2], alone}
    assert not node.containers() & set(unit[:2])


@pytest.mark.parametrize("node", matrix_params(), indirect=True)
def test_dead_containers_go_under_pressure_oldest_first_down_to_low(
    node: Node, tmp_path: Path
) -> None:
    """Eight dead containers, each of its own evict unit (the caps keep them), 8 MiB written
    each; the images' filesystem at 92%, 85/75, no removable image: one `once` removes the
    longest stopped first and stops between 69% and 75%."""
    image = busybox(node)
    dead = node.dead(image, DEAD, one_unit=False, write_mib=WRITE_MIB)
    fill_to_start(node)

    before = available(node)
    code, out = run_json(node, tmp_path / "state", "once", *THRESHOLDS)
    after = available(node)

    outcomes = {d["id"]: (d["reason"], d.get("outcome")) for d in out["containers"]["decisions"]}
    removed = [c for c in dead if c not in node.containers()]
    # What the cycle measured over the image GC (containers removed for the disk included).
    entry_after = filesystem_entry({"filesystem": out["filesystem_after"]}, node.images_mountpoint)
    said = (
        entry_after["available_bytes"]
        - filesystem_entry(out, node.images_mountpoint)["available_bytes"]
    )
    check_closed_loop(node, code, out, before, after, freed=said)
    assert removed == dead[: len(removed)], "not the longest stopped first"
    assert 0 < len(removed) < DEAD, outcomes
    assert all(outcomes[c] == ("disk-pressure", "removed") for c in removed), outcomes
    assert image in node.images()
