"""Kill -9 part-way through a tag walk, on a real engine: nodegc itself, then the engine.

Four images of 200 tags each (in five repositories, so the engine needs them taken off one at a
time) are old enough to go for age. `nodegc once` is started and SIGKILLed (or its dockerd is)
once a random number of tags is gone, mid-walk. Then: the intent journal names each image in
flight with every tag it had; `nodegc report` says the removal is pending and changes nothing;
the next `once` puts every tag back on an image no longer planned (or now in use) and finishes
the removal of one still planned. After recovery no image that is there has lost a tag.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import docker

from nodegc.state.journal import JOURNAL_FILE
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import build_image_tar
from tests.engine.helpers import create_container, nodegc
from tests.reliability.scene import AGE_CONFIG, record_stats, seed_history

IMAGES = 4
TAGS = 200
SEED = 20261202

# Removed for age, two at a time (the walks of two images are in flight at a kill).
WALK_CONFIG = AGE_CONFIG.replace("[images]", "max_concurrent_removals = 2\n[images]", 1)
# Nothing planned: no age rule, no disk rule.
KEEP_CONFIG = WALK_CONFIG.replace('maximum_age = "2h"', 'maximum_age = "0s"')


def many_tagged_images(engine: IsolatedEngine, state: Path) -> dict[str, list[str]]:
    """IMAGES images of TAGS tags each, first seen two days ago; image id -> sorted tags."""
    ids = engine.load_many(build_image_tar([f"walk{n}/r0:0"]) for n in range(IMAGES))

    def tag_all(n: int) -> None:
        with engine.api() as api:
            for k in range(1, TAGS):
                api.tag(ids[n], f"walk{n}/r{k % 5}", str(k))

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(tag_all, range(IMAGES)))
    seed_history(state, ids, timedelta(days=2))
    with engine.api() as api:
        tags = tags_now(api)
    assert all(len(tags[i]) == TAGS for i in ids)
    return {i: tags[i] for i in ids}


def tags_now(api: docker.APIClient) -> dict[str, list[str]]:
    return {i["Id"]: sorted(i.get("RepoTags") or []) for i in api.images()}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def start_once(
    engine: IsolatedEngine, state: Path, config: Path, endpoint: str | None = None
) -> subprocess.Popen[str]:
    """`nodegc once --output json` on `state`, against `engine` (or `endpoint`: a proxy)."""
    target = endpoint or engine.endpoint
    argv = [sys.executable, "-m", "nodegc", "once", "--config", str(config), "--output", "json",
            "--state-dir", str(state), "--runtime-endpoint", target]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
    env["NODEGC_LOG__LEVEL"] = "error"
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def wait_until_untagged(
    api: docker.APIClient, before: dict[str, list[str]], count: int, proc: subprocess.Popen[str]
) -> int:
    """Poll until at least `count` of the images' tags are gone; the number gone then."""
    total = sum(map(len, before.values()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        gone = total - sum(len(t) for i, t in tags_now(api).items() if i in before)
        if gone >= count:
            return gone
        assert proc.poll() is None, f"once ended before the kill: {proc.communicate()}"
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} tags gone after 120 s")


def journal(state: Path) -> list[dict]:
    path = state / JOURNAL_FILE
    return json.loads(path.read_text())["intents"] if path.exists() else []


def check_journal_names_every_tag(
    api: docker.APIClient, state: Path, before: dict[str, list[str]]
) -> list[str]:
    """Each entry is an image of `before` with every tag it had, and every image the kill left
    short of tags has one; returns the ids of those (the walks cut short)."""
    entries = {e["id"]: e for e in journal(state)}
    assert entries, "a kill mid-walk left no intent"
    for image_id, entry in entries.items():
        assert entry["kind"] == "image" and entry["action"] == "remove"
        assert sorted(entry["tags"]) == before[image_id], image_id
    now = tags_now(api)
    cut_short = [i for i in before if i in now and now[i] != before[i]]
    assert cut_short, "the kill left no image part-way"
    assert set(cut_short) <= set(entries), "an image short of tags has no intent"
    return cut_short


def check_report_says_pending(
    engine: IsolatedEngine, state: Path, config: Path, in_flight: list[str]
) -> None:
    """`report` lists the interrupted removals, with the missing tags, and changes no tag."""
    with engine.api() as api:
        tags_before = tags_now(api)
        proc = nodegc(engine, state, "report", "--config", str(config), "--output", "json")
        assert proc.returncode == 0, proc.stderr
        pending = json.loads(proc.stdout)["pending_intents"]
        present = sorted(p["id"] for p in pending if p["present"])
        assert present == sorted(in_flight)
        for p in pending:
            if p["present"]:
                assert p["missing_tags"], p["id"]
                assert not set(p["missing_tags"]) & set(tags_before[p["id"]])
        assert tags_now(api) == tags_before, "report changed the engine"
    table = nodegc(engine, state, "report", "--config", str(config))
    assert "interrupted removal pending" in table.stdout


def check_no_tag_lost(api: docker.APIClient, before: dict[str, list[str]]) -> int:
    """Every image of `before` still there has all its tags; the number still there."""
    now = tags_now(api)
    for image_id, tags in before.items():
        if image_id in now:
            assert now[image_id] == tags, f"{image_id}: {len(now[image_id])} of {len(tags)} tags"
    return sum(1 for i in before if i in now)


def test_nodegc_killed_mid_walk_loses_no_tag(engine: IsolatedEngine, tmp_path: Path) -> None:
    """Two kill -9 of `nodegc once` at random points of the walks: first recovered by a
    cycle that no longer plans the images (every tag back), then by one that still plans them
    (finished: removed, none left half-tagged)."""
    rng = random.Random(SEED)
    state = tmp_path / "state"
    walk, keep = (
        write(tmp_path, "walk.toml", WALK_CONFIG),
        write(tmp_path, "keep.toml", KEEP_CONFIG),
    )
    before = many_tagged_images(engine, state)
    kills = []
    with engine.api() as api:
        for recovery in (keep, walk):
            proc = start_once(engine, state, walk)
            gone = wait_until_untagged(api, before, rng.randint(10, 300), proc)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            kills.append(gone)
            in_flight = check_journal_names_every_tag(api, state, before)
            check_report_says_pending(engine, state, walk, in_flight)
            done = nodegc(engine, state, "once", "--config", str(recovery), "--output", "json")
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["pending_intents"] == []
            assert journal(state) == []
            left = check_no_tag_lost(api, before)
            if recovery is keep:
                assert left == IMAGES - sum(1 for i in before if i not in tags_now(api))
                assert all(i in tags_now(api) for i in in_flight), "an image in flight was lost"
            else:
                assert left == 0, "a still-planned image was not finished"
    record_stats("journal-nodegc-kill", tags_gone_at_kill=kills, images=IMAGES, tags=TAGS)


def test_engine_killed_mid_walk_loses_no_tag(engine: IsolatedEngine, tmp_path: Path) -> None:
    """dockerd SIGKILLed mid-walk: `once` exits 3 at once with its JSON and the intents kept;
    after the engine restarts, an image now in use gets every tag back, the rest are finished."""
    rng = random.Random(SEED + 1)
    state = tmp_path / "state"
    walk = write(tmp_path, "walk.toml", WALK_CONFIG)
    before = many_tagged_images(engine, state)
    with engine.api() as api:
        proc = start_once(engine, state, walk)
        gone = wait_until_untagged(api, before, rng.randint(10, 300), proc)
    engine.kill()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    report = json.loads(out)
    assert "unreachable" in report["error"]
    assert report["pending_intents"], "the JSON does not say a removal is pending"
    assert "not attempted" in err or report["not_attempted"] == 0
    engine.start()
    with engine.api() as api:
        in_flight = check_journal_names_every_tag(api, state, before)
        used = in_flight[0]
        create_container(api, used, labels={"nodegc.io/keep": "true"})  # in use from now on
        done = nodegc(engine, state, "once", "--config", str(walk), "--output", "json")
        assert done.returncode == 0, done.stderr
        assert journal(state) == []
        assert tags_now(api)[used] == before[used], "the image in use did not get its tags back"
        assert check_no_tag_lost(api, before) == 1  # only the one in use is left, whole
    record_stats("journal-engine-kill", tags_gone_at_kill=gone, in_flight=len(in_flight))
