"""A node whose GC outcome is known in advance, and the checks that nothing kept was lost."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
from prometheus_client.parser import text_string_to_metric_families

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import build_image_tar
from tests.engine.helpers import Daemon, create_container, nodegc

POD = {"io.kubernetes.pod.uid": "uid-r", "io.kubernetes.container.name": "app"}

# Image GC by age only (the disk rule is off): the outcome does not depend on the disk.
AGE_CONFIG = """
[runtime]
timeout = "2s"
[images]
high_threshold_percent = 100
low_threshold_percent = 80
minimum_age = "1h"
maximum_age = "2h"
[containers]
max_per_pod_container = 0
"""

# The same, with the daemon's periods short.
DAEMON_CONFIG = (
    AGE_CONFIG.replace("[images]", '[images]\ngc_period = "1s"\npressure_check_period = "0s"')
    + 'gc_period = "1s"\n'
)


@dataclass
class Scene:
    """What the policy removes and keeps on the node `build_scene` made."""

    engine: IsolatedEngine
    state: Path
    config: Path
    victims: list[str]  # images removed for age
    multi_tag_victim: str  # one of `victims`, with three tags
    kept_images: dict[str, str] = field(default_factory=dict)  # id -> why it stays
    dead: list[str] = field(default_factory=list)  # dead containers removed
    kept_containers: dict[str, str] = field(default_factory=dict)  # id -> why it stays
    tags: dict[str, list[str]] = field(default_factory=dict)  # image id -> tags at the start

    def once(
        self, endpoint: str, *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """`nodegc once --output json` against `endpoint` with the scene's config and state."""
        return nodegc(
            None,
            self.state,
            "once",
            "--config",
            str(self.config),
            "--output",
            "json",
            *args,
            endpoint=endpoint,
            env={"NODEGC_LOG__LEVEL": "error"},
            timeout=timeout,
        )

    def daemon(self, endpoint: str) -> Daemon:
        """`nodegc run` (not started) on this scene, through `endpoint`."""
        return Daemon(self.engine, self.state, DAEMON_CONFIG, "--runtime-endpoint", endpoint)

    def check_nothing_kept_was_lost(self, api: docker.APIClient) -> None:
        """Every image and container the policy keeps is still there, images with every tag."""
        images = {i["Id"]: sorted(i.get("RepoTags") or []) for i in api.images(all=True)}
        for image_id, why in self.kept_images.items():
            assert image_id in images, f"{why} image {image_id} was removed"
            assert images[image_id] == self.tags[image_id], f"{why} image {image_id} lost a tag"
        for image_id in self.victims:
            if image_id in images:  # kept after a fault: whole, with every tag
                assert images[image_id] == self.tags[image_id], f"{image_id} lost a tag"
        containers = {c["Id"]: c["State"] for c in api.containers(all=True)}
        for container_id, why in self.kept_containers.items():
            assert container_id in containers, f"{why} container {container_id} was removed"
        for c in api.containers(all=True):
            assert c["ImageID"] in images, f"container {c['Id']} lost its image"


def seed_history(state: Path, image_ids: list[str], age: timedelta) -> None:
    """A saved history that began `age` + 1 day ago and first saw `image_ids` `age` ago."""
    now = datetime.now(UTC)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = {
        "version": 1,
        "since": (now - age - timedelta(days=1)).isoformat(),
        "images": {
            i: {"first_seen": (now - age).isoformat(), "last_used": None} for i in image_ids
        },
    }
    path = state / "history.json"
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)


def build_scene(engine: IsolatedEngine, busybox: str, state: Path, victims: int = 6) -> Scene:
    """Victim images (one with three tags), a pinned, a young and two in-use images, dead
    containers of one pod container, a running container and a keep-labelled dead one."""
    tars = [build_image_tar([f"victim/{n}:1"], 32 * 1024) for n in range(victims - 1)]
    tars.append(build_image_tar(["multi/a:1", "multi/b:2", "multi/c:3"], 32 * 1024))
    tars.append(build_image_tar(["pinned/p:1"], labels={"nodegc.io/pinned": "true"}))
    tars.append(build_image_tar(["young/y:1"]))
    tars.append(build_image_tar(["kept-by-label/k:1"]))
    ids = engine.load_many(tars)
    victim_ids, (pinned, young, labelled) = ids[:victims], ids[victims:]
    config = state.parent / "scene.toml"
    config.write_text(AGE_CONFIG)
    scene = Scene(engine, state, config, victim_ids, victim_ids[-1])
    scene.kept_images = {
        pinned: "pinned",
        young: "too-young",
        busybox: "in-use (running container)",
        labelled: "in-use (keep-labelled container)",
    }
    with engine.api() as api:
        scene.dead = [create_container(api, busybox, labels=POD) for _ in range(3)]
        keep = create_container(api, labelled, labels={**POD, "nodegc.io/keep": "true"})
        scene.tags = {i["Id"]: sorted(i.get("RepoTags") or []) for i in api.images(all=True)}
    running = engine.run_container(busybox, ["sleep", "600"], labels=POD, wait=False)
    scene.kept_containers = {running: "running", keep: "keep-labelled"}
    seed_history(state, [*victim_ids, pinned, busybox, labelled], timedelta(days=2))
    return scene


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def record_stats(test: str, **data: Any) -> None:
    """With RELIABILITY_STATS=FILE set, append what a test did (for docs/reliability.md)."""
    path = os.environ.get("RELIABILITY_STATS")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"test": test, **data}, default=str) + "\n")


def outcomes(report: dict[str, Any], kind: str) -> dict[str, str]:
    """id -> outcome of every decision of `kind` in a `once --output json` report."""
    return {d["id"]: d["outcome"] for d in report[kind]["decisions"]}
