"""The breakdown of a big node without `/system/df`: the images split from the snapshot's
layers (as `/system/df` splits them), when the whole `/system/df` is worth asking, and nodegc's
own walk of a tree (what `du` says, on a real filesystem)."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from nodegc.model import Container, ContainerState, Image, Layer
from nodegc.policy.breakdown import (
    FULL_USAGE_MAX_CONTAINERS,
    full_usage_worth_asking,
    image_split,
)
from nodegc.runtime.docker_sizes import (
    api_at_least,
    tree_bytes,
    walk_containers,
)
from nodegc.runtime.docker_usage import _volume_rows, complete

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIZES = [("base", 100), ("mid", 40), ("a", 7), ("b", 11), ("z", 500)]
BASE, MID, TOP_A, TOP_B, ALONE = (Layer(k, s) for k, s in SIZES)
IMAGES = [
    Image("A", size_bytes=147),  # base + mid + a
    Image("B", size_bytes=151),  # base + mid + b
    Image("C", size_bytes=100),  # base alone
    Image("Z", size_bytes=500),  # shares nothing
]
LAYERS = {"A": (BASE, MID, TOP_A), "B": (BASE, MID, TOP_B), "C": (BASE,), "Z": (ALONE,)}


def container(image_id: str, state: ContainerState = ContainerState.EXITED) -> Container:
    return Container(f"c-{image_id}", "c", image_id, state, T0)


def test_unused_images_count_only_the_layers_no_other_image_shares() -> None:
    """A in use: every layer once (658) split as /system/df does: B's own 11, Z's 500 unused,
    C's base is shared (with A and B) so it is not C's own. Catches: listed sizes summed (the
    shared base counted three times), shared layers counted as an unused image's."""
    in_use, unused = image_split(IMAGES, [container("A")], LAYERS)
    assert (in_use, unused) == (100 + 40 + 7, 11 + 500)


def test_a_dead_containers_image_is_in_use_as_for_the_engine() -> None:
    """/system/df counts an image's containers in any state. Catches: only running ones."""
    _, unused = image_split(IMAGES, [container("Z", ContainerState.CREATED)], LAYERS)
    assert unused == 7 + 11  # A's and B's own tops; C shares everything; Z in use


def test_an_image_without_known_layers_is_one_private_layer_of_its_listed_size() -> None:
    in_use, unused = image_split([Image("X", size_bytes=300), *IMAGES], [], LAYERS)
    assert unused == 300 + 7 + 11 + 500 and in_use == 140  # base + mid: shared, so in use


def test_an_image_mounted_into_a_container_is_in_use() -> None:
    c = Container("c", "c", "A", ContainerState.RUNNING, T0, mounted_images=("Z",))
    _, unused = image_split(IMAGES, [c], LAYERS)
    assert unused == 11


def test_the_whole_system_df_is_asked_up_to_the_limit_and_not_past_it() -> None:
    assert full_usage_worth_asking(FULL_USAGE_MAX_CONTAINERS)
    assert not full_usage_worth_asking(FULL_USAGE_MAX_CONTAINERS + 1)
    assert full_usage_worth_asking(0)


def test_api_versions_compare_as_numbers() -> None:
    assert api_at_least("1.42", (1, 42)) and api_at_least("1.51", (1, 42))
    assert not api_at_least("1.41", (1, 42)) and not api_at_least("1.9", (1, 42))
    assert not api_at_least("", (1, 42)) and not api_at_least("auto", (1, 42))


def du_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return int(out.stdout.split()[0])


def test_tree_bytes_is_what_du_says_the_directory_holds(tmp_path: Path) -> None:
    """Files, a sparse file, a hard link (counted once), a symbolic link to a big file outside
    (not followed), nested directories. Catches: apparent sizes, a link followed, a hard
    link counted twice, a subdirectory not walked."""
    top = tmp_path / "layer"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_bytes(os.urandom(300_000))
    (top / "g").write_bytes(b"x" * 5000)
    os.link(top / "g", top / "a" / "g-again")
    with open(top / "sparse", "wb") as fh:
        fh.seek(50_000_000)
        fh.write(b"end")
    outside = tmp_path / "outside"
    outside.write_bytes(os.urandom(2_000_000))
    (top / "link").symlink_to(outside)
    (top / "dirlink").symlink_to(tmp_path)
    got = tree_bytes(str(top))
    assert got == du_bytes(top) - os.lstat(top).st_blocks * 512  # what it holds
    assert 300_000 < got < 1_000_000


def test_an_empty_directory_holds_nothing(tmp_path: Path) -> None:
    """An empty writable layer is 0, as the engine's `SizeRw` says: not its directory's block
    (20,000 dead containers would show as 80 MB). Catches: the top directory counted."""
    assert tree_bytes(str(tmp_path)) == 0


def test_tree_bytes_of_what_is_not_there_is_none(tmp_path: Path) -> None:
    assert tree_bytes(str(tmp_path / "missing")) is None


def fake_container(root: Path, cid: str, log: int = 0, layer: int = 0, local: int = 0) -> None:
    """A container's directories as dockerd keeps them under its data root with overlay2."""
    home = root / "containers" / cid
    home.mkdir(parents=True)
    if log:
        (home / f"{cid}-json.log").write_bytes(os.urandom(log))
        (home / f"{cid}-json.log.1").write_bytes(os.urandom(log))
    if local:
        (home / "local-logs").mkdir()
        (home / "local-logs" / "container.log").write_bytes(os.urandom(local))
    (home / "config.v2.json").write_bytes(os.urandom(50_000))  # not a log
    mount_id = cid[::-1]
    mounts = root / "image" / "overlay2" / "layerdb" / "mounts" / cid
    mounts.mkdir(parents=True)
    (mounts / "mount-id").write_text(mount_id)
    diff = root / "overlay2" / mount_id / "diff"
    diff.mkdir(parents=True)
    if layer:
        (diff / "f").write_bytes(os.urandom(layer))


def test_the_walk_measures_logs_rotated_and_local_and_writable_layers(tmp_path: Path) -> None:
    """Catches: a rotated log or the local driver's log left out, the container's own
    config counted as its log, a writable layer not found by its mount id."""
    a, b = "a" * 64, "b" * 64
    fake_container(tmp_path, a, log=100_000, layer=300_000)
    fake_container(tmp_path, b, local=70_000)
    walked = walk_containers(str(tmp_path), True)
    size_a, path_a = walked.logs[a]
    assert path_a == str(tmp_path / "containers" / a / f"{a}-json.log")
    assert (
        size_a
        == du_bytes(tmp_path / "containers" / a)
        - du_bytes(tmp_path / "containers" / a / "config.v2.json")
        - os.lstat(tmp_path / "containers" / a).st_blocks * 512
    )
    assert walked.logs[b][1].endswith("local-logs/container.log") and walked.logs[b][0] >= 70_000
    assert walked.writable is not None
    assert walked.writable[a] == du_bytes(tmp_path / "overlay2" / a[::-1] / "diff" / "f")
    assert walked.writable[b] == 0


def test_a_container_created_after_the_walk_began_is_measured_then(tmp_path: Path) -> None:
    """Catches: the listing's containers the early walk did not see left without a size."""
    a, b = "a" * 64, "b" * 64
    fake_container(tmp_path, a, log=10_000)
    early = walk_containers(str(tmp_path), True)
    fake_container(tmp_path, b, log=20_000, layer=40_000)
    done = complete(early, str(tmp_path), True, [a, b])
    assert set(done.logs) == {a, b} and done.logs[b][0] >= 40_000
    assert done.writable is not None and done.writable[b] >= 40_000


def test_without_overlay2_directories_the_walk_leaves_layers_to_the_engine(tmp_path: Path) -> None:
    (tmp_path / "containers").mkdir()
    assert walk_containers(str(tmp_path), True).writable is None
    assert walk_containers(str(tmp_path), True, ["a" * 64]).writable is None


def test_a_mount_id_that_is_a_link_or_not_an_id_is_not_followed(tmp_path: Path) -> None:
    """The data root is the engine's, but a walk never follows a link to another tree."""
    a, b = "a" * 64, "b" * 64
    fake_container(tmp_path, a, layer=10_000)
    fake_container(tmp_path, b, layer=10_000)
    mount_a = tmp_path / "image" / "overlay2" / "layerdb" / "mounts" / a / "mount-id"
    mount_a.unlink()
    mount_a.symlink_to(tmp_path / "image" / "overlay2" / "layerdb" / "mounts" / b / "mount-id")
    (tmp_path / "image" / "overlay2" / "layerdb" / "mounts" / b / "mount-id").write_text("../..")
    assert walk_containers(str(tmp_path), True, [a, b]).writable == {}


def test_a_mount_id_that_is_a_fifo_or_a_directory_is_not_waited_on(tmp_path: Path) -> None:
    """Catches: a blocking open or read of the mount-id file (a FIFO hangs the walk), a
    directory read as a mount id."""
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    for cid in (a, b, c):
        fake_container(tmp_path, cid, layer=10_000)
    mounts = tmp_path / "image" / "overlay2" / "layerdb" / "mounts"
    (mounts / a / "mount-id").unlink()
    os.mkfifo(mounts / a / "mount-id")
    (mounts / b / "mount-id").unlink()
    (mounts / b / "mount-id").mkdir()
    assert set(walk_containers(str(tmp_path), True, [a, b, c]).writable or {}) == {c}


def test_a_volume_listing_of_another_shape_gives_no_rows_not_a_crash() -> None:
    """The engine's answer is untrusted: a list, a null `Volumes`, rows that are not objects.
    Catches: `.get` on a list (an AttributeError through `report`)."""
    assert _volume_rows([{"Name": "a"}]) == []
    assert _volume_rows({"Volumes": None}) == []
    assert _volume_rows({"Volumes": [1, "x", {"Name": "a"}]}) == [{"Name": "a"}]


def test_an_id_from_the_engine_that_is_not_an_id_names_no_path(tmp_path: Path) -> None:
    """The listing's ids are the engine's words: one like `../x` is not measured (it would name
    a directory outside the engine's `containers`). Catches: ids joined to paths unchecked."""
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "secret-json.log").write_bytes(os.urandom(10_000))
    (tmp_path / "containers").mkdir()
    walked = walk_containers(str(tmp_path), True, ["../secret", "a" * 64])
    assert "../secret" not in walked.logs and set(walked.logs) == {"a" * 64}
