"""History lost on a real dockerd: with history.json truncated, garbage, of the wrong shape,
empty or missing, `once` chooses the image it chooses with history intact (issue 20, item 3).

The node: I1..I5 loaded I5 first (so I5 has the oldest tag time) and run I1 first, I5 last; the
containers are then removed, so only nodegc's history and the engine's remembered events know
the runs. Before the rebuild a lost history made every image "never used", ordered by tag time:
I5 (used last) went instead of I1 (used longest ago).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import docker
import pytest

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import busybox_image_tar
from tests.engine.helpers import MiB, nodegc, nodegc_json, removed_ids
from tests.engine.test_gc_docker import fill_so_that_bytes_to_free_is

SIZE = 20 * MiB
THRESHOLDS = (
    "--image-gc-high-threshold=41",
    "--image-gc-low-threshold=40",
    "--minimum-image-ttl-duration=0s",
)
DAMAGE = {
    "truncated": lambda good: good[: len(good) // 2],
    "garbage": lambda good: b"\x00\x1b[2Jgarbage\xff\xfe" * 50,
    "wrong-shape": lambda good: b'{"version": 1, "since": 5, "images": []}',
    "empty": lambda good: b"",
    "missing": None,
}


@pytest.fixture
def node(engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path) -> dict[str, str]:
    """The node above, with its intact history in tmp_path/intact; name -> image id."""
    engine.load(busybox_image_tar(labels={"nodegc.io/pinned": "true"}))  # holds the shared base
    ids = {f"I{n}": engine.load(busybox_image_tar([f"app/i{n}:1"], extra_size_bytes=SIZE))
           for n in (5, 4, 3, 2, 1)}  # fmt: skip
    for n in range(1, 6):
        engine.run_container(f"app/i{n}:1", ["true"])  # by tag, as a deployment does
    assert nodegc(engine, tmp_path / "intact", "report").returncode == 0  # history sees the runs
    for c in api.containers(all=True):
        api.remove_container(c["Id"])
    fill_so_that_bytes_to_free_is(engine, low=40, wanted=SIZE // 2)  # one image's worth
    return ids


def state_with(tmp_path: Path, name: str, damage: str | None) -> Path:
    """A copy of the intact state directory with history.json damaged (or intact)."""
    state = tmp_path / name
    shutil.copytree(tmp_path / "intact", state)
    history = state / "history.json"
    make = DAMAGE.get(damage) if damage else None
    if damage == "missing":
        history.unlink()
    elif make is not None:
        history.write_bytes(make(history.read_bytes()))
    return state


def test_damaged_history_plans_the_image_intact_history_plans(
    engine: IsolatedEngine, node: dict[str, str], tmp_path: Path
) -> None:
    """Every kind of damage: the dry run plans I1, as with history intact, and says in the log
    that history was rebuilt, naming the file and what was wrong."""
    code, out = nodegc_json(engine, state_with(tmp_path, "s-intact", None), "once", "--dry-run",
                            *THRESHOLDS)  # fmt: skip
    assert code == 0 and removed_ids(out, "images") == {node["I1"]}, out["images"]
    for damage in DAMAGE:
        state = state_with(tmp_path, f"s-{damage}", damage)
        proc = nodegc(engine, state, "once", "--dry-run", "-o", "json", "--log-format", "text",
                      *THRESHOLDS)  # fmt: skip
        out = json.loads(proc.stdout)
        assert proc.returncode == 0, proc.stderr
        assert removed_ids(out, "images") == {node["I1"]}, (damage, out["images"], proc.stderr)
        said = [line for line in proc.stderr.splitlines() if "history rebuilt" in line]
        assert len(said) == 1 and str(state / "history.json") in said[0], proc.stderr
        wrong = "wrong shape" if damage == "wrong-shape" else damage
        assert wrong in said[0], said


def test_once_with_garbage_history_removes_what_intact_history_would(
    engine: IsolatedEngine, api: docker.APIClient, node: dict[str, str], tmp_path: Path
) -> None:
    """The real removal: I1 goes, I2..I5 (used after it) stay, exit 0."""
    state = state_with(tmp_path, "s-garbage", "garbage")
    code, out = nodegc_json(engine, state, "once", *THRESHOLDS)
    assert code == 0, out
    assert removed_ids(out, "images") == {node["I1"]}
    remaining = {i["Id"] for i in api.images()}
    assert node["I1"] not in remaining
    assert {node[f"I{n}"] for n in range(2, 6)} <= remaining
