"""Where the space is on a real containerd through CRI and a real loop ext4: a running container's
log (the kubelet's pod log directory, on the same filesystem), its writable layer and a file
outside the runtime, each shown by `report` with its size within 5% of `du`; volumes and build
cache unknown (null), never 0; `once` that cannot reach low names the holders, in its line and in
the audit record."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from nodegc.runtime.cri import CriRuntime
from nodegc.runtime.cri_usage import writable_sizes
from nodegc.testing.containerd import IsolatedContainerd
from tests.cri.helpers import MiB, cri_json, nodegc_cri
from tests.engine.helpers import wait_for

MARKER = "nodegc-log-written"
# ~30 MB of 1000-character lines (CRI's format adds a timestamp and "stdout F" to each).
WRITER = (
    f"dd if=/dev/zero of=/nodegc-blob bs=1M count=20 && "
    f"yes \"$(printf '%01000d' 0)\" | head -c 30000000; echo {MARKER}; exec sleep 100000"
)


def du(path: Path | str) -> int:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) * 1024


def close(got: int, want: int) -> bool:
    return abs(got - want) <= want * 0.05


def written(log: Path) -> bool:
    if not log.exists():
        return False
    with open(log, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 4096))
        return MARKER.encode() in fh.read()


def upper_file(ctrd: IsolatedContainerd, name: str) -> Path:
    """The container's file in its writable layer (an overlayfs snapshot's upper dir)."""
    found = list(Path(ctrd.containerd_root).rglob(name))
    assert len(found) == 1, found
    return found[0]


def test_report_shows_the_log_and_writable_layer_and_once_names_them(
    ctrd: IsolatedContainerd, busybox: str, tmp_path: Path
) -> None:
    """Catches: the breakdown null on CRI, the log or writable layer left out or mis-sized
    (compared with `du`), volumes or build cache reported as 0 instead of unknown, the
    FreeDiskSpaceFailed line or the audit record naming nothing."""
    logs = Path(ctrd.mountpoint) / "pods" / "default_chatty_uid-c"
    pod = ctrd.run_pod("chatty", uid="uid-c", log_directory=str(logs))
    ctrd.run_container(
        pod, busybox, ["sh", "-c", WRITER], name="chatty", wait=False, log_path="chatty/0.log"
    )
    log = logs / "chatty" / "0.log"
    wait_for(lambda: written(log), timeout=300, interval=0.5)
    outside = ctrd.fill(30 * MiB)
    blob = upper_file(ctrd, "nodegc-blob")
    state = tmp_path / "state"
    # containerd refreshes a writable layer's usage every 10 s (stats_collect_period): wait
    # until ListContainerStats has seen the 20 MiB.
    runtime = CriRuntime(ctrd.endpoint, timedelta(seconds=30))
    try:
        wait_for(lambda: sum(writable_sizes(runtime).values()) >= 20 * MiB, timeout=120)
    finally:
        runtime.close()

    code, out = cri_json(ctrd, state, "report")
    assert code == 0, out
    by_path = {fs["path"]: fs for fs in out["breakdown"]}
    assert len(by_path) == 1, by_path  # images and containers on one filesystem
    (fs,) = by_path.values()
    sizes = fs["bytes"]
    log_size, layer_size, file_size = du(log), du(blob), du(outside)
    print("CRI breakdown", json.dumps(sizes), "du log", log_size, "du blob", layer_size)
    assert log_size > 28_000_000
    assert close(sizes["logs"], log_size), (sizes, log_size)
    assert close(sizes["containers_running"], layer_size), (sizes, layer_size)
    for kind in ("volumes_named", "volumes_anonymous_unused"):
        assert kind not in sizes or sizes[kind] is None, sizes
    assert close(sizes["rest"], file_size), (sizes, file_size)
    biggest = {(h["kind"], h["name"]): h for h in fs["biggest"]}
    assert biggest[("logs", "chatty")]["path"] == str(log)
    assert biggest[("logs", "chatty")]["pod"] == "default/chatty"
    table = nodegc_cri(ctrd, state, "report").stdout
    assert "log of container chatty (pod default/chatty)" in table, table

    proc = nodegc_cri(
        ctrd,
        state,
        "once",
        "--image-gc-high-threshold=5",
        "--image-gc-low-threshold=1",
        "--minimum-image-ttl-duration=0s",
    )
    assert proc.returncode == 1, proc.stderr
    line = next(t for t in proc.stderr.splitlines() if "FreeDiskSpaceFailed" in t)
    assert "log of container chatty" in line, line
    records = [e for e in audit(state) if e.get("event") == "target-missed"]
    assert records, audit(state)
    named = {(h["kind"], h["name"]): h["bytes"] for h in records[0]["holders"]}
    assert close(named[("logs", "chatty")], log_size), named


def audit(state: Path) -> list[dict[str, Any]]:
    text = (state / "audit.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]
