"""Small helpers for the CRI tests: run the CLI against a containerd, read its inventory."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from nodegc.config import Settings, load_settings
from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.testing.containerd import IsolatedContainerd
from tests.engine.helpers import nodegc

MiB = 1024 * 1024


def nodegc_cri(
    ctrd: IsolatedContainerd, state: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `nodegc ARGS` as a user would, with runtime.type = cri (environment) at `ctrd`."""
    return nodegc(
        None,
        state,
        *args,
        endpoint=ctrd.endpoint,
        env={"NODEGC_RUNTIME__TYPE": "cri", **(env or {})},
    )


def cri_json(
    ctrd: IsolatedContainerd, state: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """`nodegc_cri` with `--output json`: the exit code and the parsed report."""
    proc = nodegc_cri(ctrd, state, *args, "--output", "json", env=env)
    assert proc.stdout, f"no output; stderr:\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def cri_settings(ctrd: IsolatedContainerd, state: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for an in-process Collector at `ctrd` (runtime.type = cri)."""
    overrides: dict[str, dict[str, Any]] = {
        "runtime": {"type": "cri", "endpoint": ctrd.endpoint},
        "state": {"directory": str(state)},
    }
    for section, values in sections.items():
        overrides[section] = {**overrides.get(section, {}), **values}
    return load_settings(None, overrides)


def inventory(ctrd: IsolatedContainerd) -> dict[str, Any]:
    """Everything a removal could change: images with their names, containers and sandboxes
    with their states, and the snapshots on disk."""
    images = {
        i.id: sorted([*i.repo_tags, *i.repo_digests])
        for i in ctrd.img.ListImages(pb.ListImagesRequest()).images
    }
    snapshots = sorted(ctrd.ctr("snapshots", "ls").splitlines())
    return {
        "images": images,
        "containers": ctrd.containers(),
        "sandboxes": ctrd.sandboxes(),
        "snapshots": snapshots,
    }


def fill_so_that_bytes_to_free_is(ctrd: IsolatedContainerd, low: int, wanted: int) -> None:
    """Fill the filesystem until the kubelet's bytes_to_free for `low` is `wanted` (usage is then
    a little above `low`: choose the high threshold accordingly)."""
    st = os.statvfs(ctrd.mountpoint)
    capacity, available = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    target_available = capacity * (100 - low) // 100 - wanted
    assert 0 < target_available < available, "the filesystem cannot be filled as wanted"
    ctrd.fill(available - target_available)


def decisions(report: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in report[kind]["decisions"]}


def removed_ids(report: dict[str, Any], kind: str) -> set[str]:
    return {d["id"] for d in report[kind]["decisions"] if d["action"] == "remove"}
