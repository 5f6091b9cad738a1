"""Small helpers for the real-engine tests: run the CLI, read the engine's inventory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker

from nodegc.testing.engine import IsolatedEngine

MiB = 1024 * 1024


def nodegc(
    engine: IsolatedEngine | None,
    state: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    endpoint: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `nodegc ARGS` as a user would (a new process), against `engine` and `state`."""
    argv = [sys.executable, "-m", "nodegc", *args, "--state-dir", str(state)]
    if endpoint or engine is not None:
        argv += ["--runtime-endpoint", endpoint or engine.endpoint]  # type: ignore[union-attr]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
    full_env.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=timeout)


def nodegc_json(engine: IsolatedEngine, state: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = nodegc(engine, state, *args, "--output", "json")
    assert proc.stdout, f"no output; stderr:\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def inventory(api: docker.APIClient) -> dict[str, Any]:
    """Everything a removal could change: image ids with their tags, containers with states."""
    images = {i["Id"]: sorted(i.get("RepoTags") or []) for i in api.images(all=True)}
    containers = {c["Id"]: c["State"] for c in api.containers(all=True)}
    return {"images": images, "containers": containers}


def create_container(
    api: docker.APIClient,
    image: str,
    *,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """A container in state `created` (never started: needs no binary in the image)."""
    created = api.create_container(
        image,
        command=["/nothing"],
        name=name,
        labels=dict(labels or {}),
        host_config=api.create_host_config(network_mode="none"),
    )
    return str(created["Id"])


def decisions(report: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in report[kind]["decisions"]}


def removed_ids(report: dict[str, Any], kind: str) -> set[str]:
    return {d["id"] for d in report[kind]["decisions"] if d["action"] == "remove"}
