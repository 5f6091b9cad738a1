"""Where the space is, on a real dockerd and a real loop ext4: a running container's 100 MB log,
a 60 MB anonymous volume no container uses and a 40 MB file outside the engine, each shown with
its size (within 5% of `du`) by `report`, and named by `once` when it cannot reach low."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import docker
from prometheus_client.parser import text_string_to_metric_families

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import busybox_image_tar
from tests.engine.helpers import Daemon, MiB, nodegc, nodegc_json, wait_for

MARKER = "nodegc-log-written"
# ~95 MB of 1000-character lines: json-file wraps each in ~60 bytes of JSON, ~100 MB on disk.
WRITER = f"yes \"$(printf '%01000d' 0)\" | head -c 95000000; echo {MARKER}; exec sleep 100000"


def du(path: str) -> int:
    """What `du` says a file or directory takes, in bytes."""
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) * 1024


def close(got: int, want: int) -> bool:
    return abs(got - want) <= want * 0.05


def written(log_path: str) -> bool:
    with open(log_path, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 4096))
        return MARKER.encode() in fh.read()


def hold_the_disk(engine: IsolatedEngine, api: docker.APIClient) -> dict[str, str]:
    """The three holders; their names and paths."""
    busybox = engine.load(busybox_image_tar())
    writer = api.create_container(
        busybox,
        command=["sh", "-c", WRITER],
        name="chatty",
        stop_timeout=1,
        host_config=api.create_host_config(network_mode="none"),
    )["Id"]
    api.start(writer)
    log_path = api.inspect_container(writer)["LogPath"]
    wait_for(lambda: Path(log_path).exists() and written(log_path), timeout=300, interval=0.5)
    filler = api.create_container(
        busybox,
        command=["dd", "if=/dev/zero", "of=/data/f", "bs=1M", "count=60"],
        volumes=["/data"],
        host_config=api.create_host_config(network_mode="none"),
    )["Id"]
    api.start(filler)
    assert api.wait(filler)["StatusCode"] == 0
    volume = next(m["Name"] for m in api.inspect_container(filler)["Mounts"])
    api.remove_container(filler)  # the anonymous volume stays, used by no container
    outside = engine.fill(40 * MiB)
    mountpoint = api.inspect_volume(volume)["Mountpoint"]
    return {"log": log_path, "volume": volume, "volume_path": mountpoint, "file": str(outside)}


def test_report_shows_each_holder_with_its_size_and_once_names_them(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """Catches: logs, volumes or the rest left out or mis-sized (each is compared with `du`),
    an anonymous volume taken for a used one, the FreeDiskSpaceFailed line naming nothing."""
    held = hold_the_disk(engine, api)
    state = tmp_path / "state"
    code, out = nodegc_json(engine, state, "report")
    assert code == 0, out
    (fs,) = out["breakdown"]
    by_kind = fs["bytes"]
    log_size, volume_size, file_size = du(held["log"]), du(held["volume_path"]), du(held["file"])
    assert log_size > 95_000_000
    assert close(by_kind["logs"], log_size), (by_kind, log_size)
    assert close(by_kind["volumes_anonymous_unused"], volume_size), (by_kind, volume_size)
    assert close(by_kind["rest"], file_size), (by_kind, file_size)
    biggest = {(h["kind"], h["name"]): h for h in fs["biggest"]}
    assert biggest[("logs", "chatty")]["path"] == held["log"]
    assert close(biggest[("logs", "chatty")]["size_bytes"], log_size)
    assert ("volumes_anonymous_unused", held["volume"]) in biggest
    table = nodegc(engine, state, "report").stdout
    assert "log of container chatty" in table and f"anonymous volume {held['volume']}" in table

    # Nothing nodegc may remove: the image is in use, the rest is not its to touch.
    proc = nodegc(
        engine,
        state,
        "once",
        "--image-gc-high-threshold=20",
        "--image-gc-low-threshold=10",
        "--minimum-image-ttl-duration=0s",
    )
    assert proc.returncode == 1, proc.stderr
    line = next(t for t in proc.stderr.splitlines() if "FreeDiskSpaceFailed" in t)
    assert "log of container chatty" in line, line
    assert f"anonymous volume {held['volume']}" in line, line
    assert "files the engine does not account for" in line, line
    # The audit record names them too, in a record of its own kind (not a removal).
    missed = [e for e in audit(state) if e.get("event") == "target-missed"]
    assert len(missed) == 1, missed
    record = missed[0]
    assert record["filesystem"] == fs["path"] and "outcome" not in record
    assert record["freed_bytes"] < record["needed_bytes"], record
    named = {(h["kind"], h["name"]): h["bytes"] for h in record["holders"]}
    assert len(named) == 3, named
    assert close(named[("logs", "chatty")], log_size), named
    assert close(named[("volumes_anonymous_unused", held["volume"])], volume_size), named
    assert close(named[("rest", "files the engine does not account for")], file_size), named
    history = nodegc(engine, state, "history").stdout
    assert "Targets missed:" in history and "logs chatty" in history, history


def audit(state: Path) -> list[dict[str, Any]]:
    text = (state / "audit.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_daemon_names_the_holders_when_it_cannot_reach_low(
    engine: IsolatedEngine, api: docker.APIClient, daemons: list[Daemon], tmp_path: Path
) -> None:
    """`nodegc run` whose image GC cannot reach low: the ImageGCSucceeded condition
    (FreeDiskSpaceFailed) names the log and the volume, /status keeps the breakdown and
    `nodegc_filesystem_bytes{kind="logs"}` is the log's size. Catches: the daemon's message
    or metrics without the breakdown."""
    held = hold_the_disk(engine, api)
    config = (
        '[images]\nhigh_threshold_percent = 20\nlow_threshold_percent = 10\nminimum_age = "0s"\n'
        'gc_period = "1h"\npressure_check_period = "1s"\n'
    )
    daemon = Daemon(engine, tmp_path / "s", config).start()
    daemons.append(daemon)
    daemon.wait_ready()

    def failed() -> dict[str, Any] | None:
        c = daemon.condition("ImageGCSucceeded")
        return c if c.get("reason") == "FreeDiskSpaceFailed" else None

    message = wait_for(failed, timeout=60)["message"]
    assert "log of container chatty" in message and held["volume"] in message, message
    record = next(e for e in audit(tmp_path / "s") if e.get("event") == "target-missed")
    assert ("logs", "chatty") in {(h["kind"], h["name"]) for h in record["holders"]}, record
    code, body = daemon.get("/status")
    assert code == 200, body
    (fs,) = json.loads(body)["details"]["where_the_space_is"]
    assert close(fs["bytes"]["logs"], du(held["log"]))
    code, text = daemon.get("/metrics")
    assert code == 200, text
    logs = next(
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == "nodegc_filesystem_bytes"
        for s in family.samples
        if s.labels.get("kind") == "logs"
    )
    assert close(int(logs), du(held["log"]))
