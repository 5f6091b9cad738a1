"""What the walk of a big node keeps (`docker_sizes.Seen`, `walk.json`): a container's mount id
(never changes), the log names of a directory whose ctime has not moved, and a layer that was
empty and whose ctime has not moved. On a real filesystem laid out as dockerd's overlay2 data
root (`fake_container`); every size compared with `du`, never with what was kept.

`now_ns` is passed as the walk's start: a directory counts as settled when its ctime is more
than `SETTLE_NS` before it (the tests pass a start far after the files were made, or right at
their making)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from nodegc.collect.usage import Prefetch
from nodegc.runtime.docker_sizes import SETTLE_NS, Seen, Walked, walk_containers
from nodegc.state.store import WALK_FILE, StateDir
from tests.unit.test_breakdown_lean import du_bytes, fake_container

A, B, C = "a" * 64, "b" * 64, "c" * 64
LATER = time.time_ns() + 3600 * 10**9  # an hour on: every directory made now is settled


def mount_file(root: Path, cid: str) -> Path:
    return root / "image" / "overlay2" / "layerdb" / "mounts" / cid / "mount-id"


def diff(root: Path, cid: str) -> Path:
    return root / "overlay2" / cid[::-1] / "diff"  # fake_container's mount id: the id reversed


def held(path: Path) -> int:
    """What `du` says the directory holds, less its own block."""
    return du_bytes(path) - os.lstat(path).st_blocks * 512


def walk(root: Path, seen: dict[str, Seen] | None = None, now: int = LATER) -> Walked:
    return walk_containers(str(root), True, seen=seen, now_ns=now)


def test_a_kept_mount_id_is_used_without_the_file(tmp_path: Path) -> None:
    """Catches: the mount-id file read although the id is kept."""
    fake_container(tmp_path, A, layer=30_000)
    first = walk(tmp_path)
    mount_file(tmp_path, A).unlink()  # only the kept id can find the layer now
    assert walk(tmp_path).writable == {}
    assert walk(tmp_path, dict(first.seen)).writable == {A: held(diff(tmp_path, A))}


def test_a_kept_mount_id_that_names_no_layer_is_read_again(tmp_path: Path) -> None:
    """Catches: a stale id trusted (a layer of another data root, a hand-edited file)."""
    fake_container(tmp_path, A, layer=30_000)
    got = walk(tmp_path, {A: Seen(mount="d" * 64)})
    assert got.writable == {A: held(diff(tmp_path, A))}
    assert got.seen[A].mount == A[::-1]


def test_a_log_rotated_after_the_names_were_kept_is_counted(tmp_path: Path) -> None:
    """A new entry moves the directory's ctime: the names are listed again. Catches: the kept
    names trusted after the directory changed."""
    fake_container(tmp_path, A, log=10_000)
    first = walk(tmp_path)
    home = tmp_path / "containers" / A
    assert first.seen[A].home and sorted(first.seen[A].logs) == [f"{A}-json.log", f"{A}-json.log.1"]
    (home / f"{A}-json.log.2").write_bytes(os.urandom(50_000))
    size, _ = walk(tmp_path, dict(first.seen)).logs[A]
    logs = [home / f"{A}-json.log{s}" for s in ("", ".1", ".2")]
    assert size == sum(os.lstat(p).st_blocks * 512 for p in logs)


def test_kept_names_still_measure_each_log_as_it_is_now(tmp_path: Path) -> None:
    """A running container's log grows without a new entry: the kept names save the listing,
    never the measurement. Catches: a kept size."""
    fake_container(tmp_path, A, log=10_000)
    first = walk(tmp_path)
    current = tmp_path / "containers" / A / f"{A}-json.log"
    before = os.lstat(tmp_path / "containers" / A).st_ctime_ns
    with current.open("ab") as fh:
        fh.write(os.urandom(200_000))
    assert os.lstat(tmp_path / "containers" / A).st_ctime_ns == before  # no new entry
    size, main = walk(tmp_path, dict(first.seen)).logs[A]
    rotated = current.with_name(f"{A}-json.log.1")
    assert main == str(current)
    assert size == os.lstat(current).st_blocks * 512 + os.lstat(rotated).st_blocks * 512


def test_a_write_into_a_layer_kept_as_empty_is_measured(tmp_path: Path) -> None:
    """Catches: an empty layer trusted after something was made in it."""
    fake_container(tmp_path, A)
    first = walk(tmp_path)
    assert first.writable == {A: 0} and first.seen[A].empty
    (diff(tmp_path, A) / "etc").mkdir()
    (diff(tmp_path, A) / "etc" / "f").write_bytes(os.urandom(40_000))
    got = walk(tmp_path, dict(first.seen))
    assert got.writable == {A: held(diff(tmp_path, A))} and got.writable[A] >= 40_000
    assert got.seen[A].empty == 0  # not empty: walked in full next time too


def test_a_directory_changed_within_the_settling_time_is_not_kept(tmp_path: Path) -> None:
    """A change in the same clock tick as the last would not move the ctime: nothing changed
    less than `SETTLE_NS` before the walk is kept. Catches: the racy case kept."""
    fake_container(tmp_path, A, log=10_000)
    home = os.lstat(tmp_path / "containers" / A).st_ctime_ns
    layer = os.lstat(diff(tmp_path, A)).st_ctime_ns
    just = walk(tmp_path, now=min(home, layer) + SETTLE_NS)  # a ctime at start - SETTLE_NS
    assert (just.seen[A].home, just.seen[A].empty) == (0, 0)
    settled = walk(tmp_path, now=max(home, layer) + SETTLE_NS + 1)
    assert (settled.seen[A].home, settled.seen[A].empty) == (home, layer)


def test_local_driver_logs_are_always_listed(tmp_path: Path) -> None:
    """`local-logs` rotates inside its own directory, which the container's ctime does not
    follow. Catches: the local driver's names kept."""
    fake_container(tmp_path, A, local=30_000)
    assert walk(tmp_path).seen[A].home == 0


def test_only_the_containers_walked_are_kept(tmp_path: Path) -> None:
    """Catches: a removed container's record kept for ever (the file growing with the past)."""
    fake_container(tmp_path, A, layer=10_000)
    walked = walk(tmp_path, {C: Seen(mount="e" * 64, home=1)})
    assert set(walked.seen) == {A}


def test_walk_records_round_trip_and_another_shape_is_nothing(tmp_path: Path) -> None:
    """Catches: a record of another shape read as one (a crash, or a wrong field used)."""
    state = StateDir(tmp_path / "state")
    good = (B, 7, (f"{A}-json.log", f"{A}-json.log.1"), 9)
    state.save_walk({A: good, B: ("", 3, (), 0)})
    assert state.load_walk() == {A: good, B: ("", 3, (), 0)}
    for text in ("{broken", "[1, 2]", "", json.dumps({A: [B, 1, [], 0, 5]}),
                 json.dumps({A: [B, "1", [], 0]}), json.dumps({A: [B, True, [], 0]})):  # fmt: skip
        (state.path / WALK_FILE).write_text(text)
        assert state.load_walk() == {}, text


def test_what_was_kept_names_no_path_outside_the_containers_own(tmp_path: Path) -> None:
    """The kept file is read from disk: a mount id or a log name with a path in it is not
    followed, and the container is measured from its own directories. Catches: kept text
    joined to paths unchecked."""
    fake_container(tmp_path, A, log=10_000, layer=20_000)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "diff").mkdir()
    (outside / "diff" / "f").write_bytes(os.urandom(90_000))
    home = os.lstat(tmp_path / "containers" / A).st_ctime_ns
    hostile = Seen(mount="../secret", home=home, logs=(f"{A}-json.log/../../../secret/diff/f",))
    got = walk(tmp_path, {A: hostile})
    assert got.writable == {A: held(diff(tmp_path, A))}
    logs = [tmp_path / "containers" / A / f"{A}-json.log{s}" for s in ("", ".1")]
    assert got.logs[A] == (sum(os.lstat(p).st_blocks * 512 for p in logs), str(logs[0]))


def test_a_prefetch_keeps_what_it_learnt_for_the_next(tmp_path: Path) -> None:
    """Catches: nothing saved, or nothing read back (the second walk needs the kept id)."""
    root, state = tmp_path / "root", StateDir(tmp_path / "state")
    fake_container(root, A, layer=20_000)
    first = Prefetch(str(root), True, state, save=True).result()
    assert first is not None
    assert json.loads((state.path / WALK_FILE).read_text())[A][0] == A[::-1]
    mount_file(root, A).unlink()
    second = Prefetch(str(root), True, state, save=True).result()
    assert second is not None and second.writable == {A: held(diff(root, A))}


def test_a_prefetch_that_may_not_write_reads_only(tmp_path: Path) -> None:
    """`report` on a read-only state directory: nothing written."""
    root, state = tmp_path / "root", StateDir(tmp_path / "state")
    fake_container(root, A, layer=20_000)
    walked = Prefetch(str(root), True, state, save=False).result()
    assert walked is not None and walked.seen[A].mount == A[::-1]
    assert not (state.path / WALK_FILE).exists()
