"""What the matrix scenarios check on every engine: the issue's contract for `nodegc once`.

- exit 0 where the target is reachable, `target_reached`;
- the disk (statvfs of the filesystem that holds the images, kubelet's formula) ends between
  low - 6 and low right after `once`, and stays at or above low - 6 once the engine's own
  asynchronous garbage collection (containerd) has settled: never more freed than needed;
- the report names that filesystem (an entry whose path is on it), with its usage as statvfs
  showed it; what nodegc says it freed is what the disk got back, within 10%.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from nodegc.testing.matrix import Node
from tests.engine.helpers import nodegc

MiB = 1024 * 1024
HIGH, LOW, START = 85, 75, 92
THRESHOLDS = (f"--image-gc-high-threshold={HIGH}", f"--image-gc-low-threshold={LOW}")
ANY_AGE = "--minimum-image-ttl-duration=0s"
SETTLE_TIMEOUT = 60.0


def run_json(
    node: Node, state: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """`nodegc ARGS --output json` against `node`: the exit code and the parsed report."""
    proc = nodegc(
        None, state, *args, "--output", "json", endpoint=node.endpoint,
        env={**node.nodegc_env, **(env or {})}, timeout=300,
    )  # fmt: skip
    assert proc.stdout, f"{node.spec.id}: no output; stderr:\n{proc.stderr[-3000:]}"
    return proc.returncode, json.loads(proc.stdout)


def fill_to_start(node: Node) -> None:
    """Fill the images' filesystem to START% (the kubelet's figure), from a settled disk: what
    the scene removed before (images, containers) may still be coming back through containerd's
    own garbage collection, and the fill must not be undone by it while nodegc plans."""
    settled_available(node)
    fs = node.images_fs
    assert fs.usage_percent() < START, f"the inventory alone takes {fs.usage_percent()}%"
    fs.fill_to_percent(START)
    assert fs.usage_percent() == START


def available(node: Node) -> int:
    return node.images_fs.available_bytes()


def settled_available(node: Node) -> int:
    """The images' filesystem's free bytes once they stop changing (containerd frees removed
    content in its own garbage collection, after the call returned): polled until three reads
    half a second apart agree, within SETTLE_TIMEOUT."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    reads = [available(node)]
    while len(reads) < 3 or len(set(reads[-3:])) != 1:
        assert time.monotonic() < deadline, f"{node.spec.id}: free space still moving: {reads}"
        time.sleep(0.5)
        reads.append(available(node))
    return reads[-1]


def usage_of(node: Node, available_bytes: int) -> int:
    st = os.statvfs(node.images_mountpoint)
    return 100 - (available_bytes // st.f_frsize) * 100 // st.f_blocks


def filesystem_entry(report: dict[str, Any], mountpoint: Path) -> dict[str, Any]:
    """The report's entry for the filesystem mounted at `mountpoint` (`filesystem`, or one of
    `filesystems` where the report lists several)."""
    device = os.stat(mountpoint).st_dev
    entries = [report.get("filesystem"), *(report.get("filesystems") or [])]
    named = [e for e in entries if isinstance(e, dict) and e.get("path")]
    for entry in named:
        try:
            if os.stat(entry["path"]).st_dev == device:
                return entry
        except OSError:
            continue
    raise AssertionError(
        f"the report names {[e['path'] for e in named]}, none on {mountpoint} (the images' fs)"
    )


def record(node: Node, scenario: str, **data: Any) -> None:
    """With MATRIX_STATS=FILE set, append what a scenario measured on `node` (one JSON line:
    for the closing note and docs/testing.md)."""
    path = os.environ.get("MATRIX_STATS")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"engine": node.spec.id, "scenario": scenario, **data}) + "\n")


def check_closed_loop(
    node: Node, code: int, out: dict[str, Any], before: int, after: int, *, freed: int
) -> None:
    """The contract of one `once` on a reachable target: `before`/`after` are the free bytes
    the test read around it; `freed` what nodegc says the removals freed."""
    spec = node.spec.id
    record(
        node, os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].split("[")[0],
        exit=code, usage_before=usage_of(node, before), usage_after=usage_of(node, after),
        planned=out.get("images", {}).get("bytes_planned"), said=freed, measured=after - before,
    )  # fmt: skip
    assert code == 0, f"{spec}: exit {code}: {json.dumps(out)[:3000]}"
    used = usage_of(node, after)
    assert LOW - 6 <= used <= LOW, f"{spec}: {used}% after once (low {LOW})"
    entry = filesystem_entry(out, node.images_mountpoint)
    assert abs(entry["usage_percent"] - usage_of(node, before)) <= 1, (spec, entry)
    measured = after - before
    assert measured > 0
    assert abs(freed - measured) <= measured // 10, f"{spec}: said {freed}, disk {measured}"
    settled = settled_available(node)
    assert usage_of(node, settled) >= LOW - 6, f"{spec}: {usage_of(node, settled)}% once settled"
