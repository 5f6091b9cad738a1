"""Crash replay on every Docker-API engine of the matrix (Docker in both stores, Podman).

Three images of 80 tags each (in four repositories, so the engine must have them taken off one
at a time) go for age. `nodegc once` is SIGKILLed once its intent journal names the images in
flight and some of their tags are gone (synchronised on the journal file and the engine, never
on time). The journal names every tag each image had; the next `once`, with a config that no
longer plans them, puts every tag back and empties the journal.

(CRI removes an image with all its names in one call: there is no walk to cut short.)

Mutations caught: an intent written after the first untag (or not at all), a journal that
forgets tags, a replay that does not put tags back or leaves the journal behind.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from nodegc.testing.images import build_image_tar
from nodegc.testing.matrix import Node
from tests.conftest import matrix_params
from tests.engine.helpers import nodegc
from tests.reliability.scene import seed_history
from tests.reliability.test_journal import KEEP_CONFIG, WALK_CONFIG, journal, start_once, write

IMAGES, TAGS = 3, 80
SEED = 20261207


def tagged_images(node: Node, state: Path) -> dict[str, list[str]]:
    """IMAGES images of TAGS tags each, first seen two days ago; image id -> sorted tags."""
    ids = node.load(build_image_tar([f"replay{n}/r0:0"]) for n in range(IMAGES))

    def tag_all(n: int) -> None:
        with node.api() as api:
            for k in range(1, TAGS):
                api.tag(ids[n], f"replay{n}/r{k % 4}", str(k))

    with ThreadPoolExecutor(max_workers=IMAGES) as pool:
        list(pool.map(tag_all, range(IMAGES)))
    seed_history(state, ids, timedelta(days=2))
    tags = node.images()
    assert all(len(tags[i]) == TAGS for i in ids), {i: len(tags.get(i, [])) for i in ids}
    return {i: tags[i] for i in ids}


def wait_mid_walk(
    node: Node, state: Path, before: dict[str, list[str]], count: int, proc: subprocess.Popen[str]
) -> None:
    """Poll until the journal holds intents and at least `count` of the tags are gone."""
    total = sum(map(len, before.values()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if journal(state):
            now = node.images()
            gone = total - sum(len(now.get(i, [])) for i in before)
            if gone >= count:
                return
        assert proc.poll() is None, f"once ended before the kill: {proc.communicate()}"
        time.sleep(0.02)
    raise AssertionError(f"no intent with {count} tags gone after 120 s")


@pytest.mark.parametrize("node", matrix_params(kinds=("docker", "podman")), indirect=True)
def test_nodegc_killed_mid_walk_puts_every_tag_back(node: Node, tmp_path: Path) -> None:
    state = tmp_path / "state"
    walk = write(tmp_path, "walk.toml", WALK_CONFIG)
    keep = write(tmp_path, "keep.toml", KEEP_CONFIG)
    before = tagged_images(node, state)

    proc = start_once(node.engine, state, walk)
    wait_mid_walk(node, state, before, random.Random(SEED).randint(5, 60), proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    entries = {e["id"]: e for e in journal(state)}
    assert entries and set(entries) <= set(before)
    for image_id, entry in entries.items():
        assert sorted(entry["tags"]) == before[image_id], f"{image_id}: journal lost tags"
    now = node.images()
    cut_short = [i for i in before if i in now and now[i] != before[i]]
    assert set(cut_short) <= set(entries), "an image short of tags has no intent"

    done = nodegc(
        node.engine, state, "once", "--config", str(keep), "--output", "json", timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert journal(state) == []
    now = node.images()
    for image_id in entries:
        assert now.get(image_id) == before[image_id], f"{image_id}: tags not all back"
