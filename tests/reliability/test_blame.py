"""Only nodegc's own work in the audit: a kill -9 mid-batch, then someone else removes images.

Five images of one tag each are old enough to go for age, one removal at a time. `nodegc once`
runs through the fault proxy; nodegc's first `DELETE` of an image is held there while the test
SIGKILLs the process (its intents are written by then, the request that deletes the image has
left it), then forwarded: the engine carries out the removal nodegc asked for, after nodegc's
death, as it does for a request in flight at a kill. Then a third party (`docker rmi`) removes two
other planned images. The next `once` (straight to the engine) finds three planned images gone:
the one nodegc had asked for is recorded `removed` ("gone when nodegc started again: an earlier
run was removing it ..."), the two others `gone` (removed by someone else), with no size; the
last two are removed as usual. `nodegc history` agrees.

Catches: recording every journaled image found gone as nodegc's (the issue: 9 of 9 kills), and
recording none of them as nodegc's (the request in flight at the kill did remove it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import docker
import docker.errors

from nodegc.state.audit import AUDIT_FILE
from nodegc.state.journal import JOURNAL_FILE
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.faultproxy import Fault, FaultProxy
from nodegc.testing.images import build_image_tar
from tests.engine.helpers import nodegc
from tests.reliability.scene import AGE_CONFIG, seed_history

ONE_AT_A_TIME = AGE_CONFIG.replace("[images]", "max_concurrent_removals = 1\n[images]", 1)


def audit(state: Path) -> list[dict]:
    path = state / AUDIT_FILE
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def wait_for_one_gone(api: docker.APIClient, images: list[str]) -> set[str]:
    """The image ids listed once the engine has carried out the DELETE forwarded after the
    kill (polled: the answer went to a dead client, nothing else says when it is done)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            present = {i["Id"] for i in api.images()}
        except docker.errors.APIError:  # Podman, listing while it deletes: 500 "image not known"
            continue
        if not present.issuperset(images):
            return present
        time.sleep(0.05)
    raise AssertionError("the DELETE nodegc had sent was never carried out")


def test_images_someone_else_removed_after_a_kill_are_not_recorded_as_nodegcs(
    engine: IsolatedEngine, api: docker.APIClient, proxy: FaultProxy, tmp_path: Path
) -> None:
    state, config = tmp_path / "state", tmp_path / "age.toml"
    config.write_text(ONE_AT_A_TIME)
    images = engine.load_many(build_image_tar([f"old{n}:1"], 8 * 1024) for n in range(5))
    seed_history(state, images, timedelta(days=2))
    argv = [sys.executable, "-m", "nodegc", "once", "--config", str(config), "--output", "json",
            "--state-dir", str(state), "--runtime-endpoint", proxy.endpoint]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    killed = threading.Event()
    journaled: list[list[str]] = []

    def kill() -> None:  # the first DELETE of an image, held until nodegc is dead
        entries = json.loads((state / JOURNAL_FILE).read_text())["intents"]
        journaled.append([e["id"] for e in entries])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        killed.set()

    proxy.add(Fault.hook(kill), method="DELETE", path=r"/images/", times=1)
    proc.communicate(timeout=120)
    assert killed.wait(60) and proc.returncode == -signal.SIGKILL, "nodegc was not killed"
    assert proxy.errors == []
    assert sorted(journaled[0]) == sorted(images), "the batch was not journaled before the DELETE"
    (asked,) = [
        t.split("?")[0].rsplit("/images/", 1)[1] for m, t in proxy.requests if m == "DELETE"
    ]
    present = wait_for_one_gone(api, images)
    (by_nodegc,) = [i for i in images if i not in present]
    assert asked in (by_nodegc, f"old{images.index(by_nodegc)}:1"), asked
    by_others = [i for i in images if i in present][:2]
    for image in by_others:
        api.remove_image(image)  # a third party, while nodegc is not running
    assert audit(state) == [], "the killed run recorded something"

    again = nodegc(engine, state, "once", "--config", str(config), "--output", "json")
    assert again.returncode == 0, again.stderr
    lines = {e["id"]: e for e in audit(state)}
    assert sorted(lines) == sorted(images)
    mine = lines[by_nodegc]
    assert mine["outcome"] == "removed", mine
    assert mine["detail"].startswith("gone when nodegc started again: an earlier run was removing")
    for image in by_others:
        assert lines[image]["outcome"] == "gone", lines[image]
        assert "removed by someone else" in lines[image]["detail"]
        assert lines[image]["size_bytes"] == 0
    rest = [i for i in images if i != by_nodegc and i not in by_others]
    assert all(lines[i]["outcome"] == "removed" for i in rest)
    assert {i["Id"] for i in api.images()}.isdisjoint(images)
    history = nodegc(engine, state, "history", "--output", "json")
    assert history.returncode == 0, history.stderr
    told = {e["id"]: e["outcome"] for e in json.loads(history.stdout)}
    assert [told[i] for i in by_others] == ["gone", "gone"] and told[by_nodegc] == "removed"
    table = nodegc(engine, state, "history")
    assert "2 gone (removed by someone else)" in table.stdout, table.stdout
    assert not (state / "intents-sent.jsonl").exists(), "the record of what was asked stayed"
