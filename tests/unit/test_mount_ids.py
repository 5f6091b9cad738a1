"""The mount id of a container's writable layer is learnt once and kept (`mounts.json`): the
walk of a big node then reads one file fewer per container. On a real filesystem laid out as
dockerd's overlay2 data root (`fake_container`), sizes compared with `du`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nodegc.collect.usage import Prefetch
from nodegc.runtime.docker_sizes import overlay2_writable_bytes, walk_containers
from nodegc.state.store import MOUNTS_FILE, StateDir
from tests.unit.test_breakdown_lean import du_bytes, fake_container

A, B, C = "a" * 64, "b" * 64, "c" * 64


def mount_file(root: Path, cid: str) -> Path:
    return root / "image" / "overlay2" / "layerdb" / "mounts" / cid / "mount-id"


def layer_bytes(root: Path, cid: str) -> int:
    diff = root / "overlay2" / cid[::-1] / "diff"  # fake_container's mount id: the id reversed
    return du_bytes(diff) - os.lstat(diff).st_blocks * 512


def test_a_known_mount_id_is_not_read_again(tmp_path: Path) -> None:
    """Catches: the mount-id file read although the id is known (the cache unused)."""
    fake_container(tmp_path, A, layer=30_000)
    mount_file(tmp_path, A).unlink()  # only the known id can find the layer now
    known = {A: A[::-1]}
    assert overlay2_writable_bytes(str(tmp_path), [A], known) == {A: layer_bytes(tmp_path, A)}
    assert overlay2_writable_bytes(str(tmp_path), [A]) == {}  # without it: not found


def test_a_known_mount_id_whose_layer_is_not_there_is_read_again(tmp_path: Path) -> None:
    """A kept id that names no layer (another data root's file, or one edited by hand) is
    replaced by what the engine's file says. Catches: a stale id trusted."""
    fake_container(tmp_path, A, layer=30_000)
    known = {A: "d" * 64}
    assert overlay2_writable_bytes(str(tmp_path), [A], known) == {A: layer_bytes(tmp_path, A)}
    assert known == {A: A[::-1]}


def test_the_walk_learns_the_mount_ids_of_the_containers_it_finds_only(tmp_path: Path) -> None:
    """Catches: a removed container's id kept for ever (the file grows with the node's past),
    a container without a layer given one."""
    fake_container(tmp_path, A, layer=10_000)
    fake_container(tmp_path, B)
    mount_file(tmp_path, B).unlink()
    walked = walk_containers(str(tmp_path), True, mounts={C: "e" * 64})
    assert walked.mounts == {A: A[::-1]}


def test_mount_ids_round_trip_and_junk_is_dropped(tmp_path: Path) -> None:
    """Catches: an id that is not 64 hex digits let through to name a path."""
    state = StateDir(tmp_path / "state")
    state.save_mounts({A: B})
    assert state.load_mounts() == {A: B}
    (state.path / MOUNTS_FILE).write_text(json.dumps({A: "../..", "../x": B, C: 7, B: C}))
    assert state.load_mounts() == {B: C}
    for junk in ("{broken", "[1, 2]", ""):
        (state.path / MOUNTS_FILE).write_text(junk)
        assert state.load_mounts() == {}


def test_a_prefetch_keeps_what_it_learnt_for_the_next(tmp_path: Path) -> None:
    """The first walk reads the files and keeps the ids; the second finds the layer by the kept
    id alone. Catches: the ids never saved, or never read back."""
    root, state = tmp_path / "root", StateDir(tmp_path / "state")
    fake_container(root, A, layer=20_000)
    first = Prefetch(str(root), True, state, save=True).result()
    assert first is not None and json.loads((state.path / MOUNTS_FILE).read_text()) == {A: A[::-1]}
    mount_file(root, A).unlink()
    second = Prefetch(str(root), True, state, save=True).result()
    assert second is not None and second.writable == {A: layer_bytes(root, A)}


def test_a_prefetch_that_may_not_write_reads_only(tmp_path: Path) -> None:
    """`report` on a read-only state directory: the ids are read, never written."""
    root, state = tmp_path / "root", StateDir(tmp_path / "state")
    fake_container(root, A, layer=20_000)
    walked = Prefetch(str(root), True, state, save=False).result()
    assert walked is not None and walked.mounts == {A: A[::-1]}
    assert not (state.path / MOUNTS_FILE).exists()
