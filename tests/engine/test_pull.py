"""The pull path: images pulled from a registry on 127.0.0.1 (Debian's docker-registry binary)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import busybox_image_tar
from tests.engine.helpers import Daemon, MiB, decisions, free_port, nodegc_json, wait_for

REGISTRY = Path(__file__).parents[2] / ".cache/docker-registry/usr/bin/docker-registry"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A registry on 127.0.0.1 (engines treat 127.0.0.0/8 as insecure: plain HTTP works)."""
    if not REGISTRY.exists():
        reason = f"{REGISTRY} missing: scripts/install-deps unpacks Debian's docker-registry"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/blobs\n"
        f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    with (tmp_path / "registry.log").open("wb") as log:
        proc = subprocess.Popen([str(REGISTRY), "serve", str(config)], stdout=log, stderr=log)
    try:
        import urllib.request

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(up, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(5)


def push_and_pull_back(api: docker.APIClient, engine: IsolatedEngine, ref: str) -> str:
    """Push `ref`, delete it locally, pull it back: as on a node, the image arrives by a pull."""
    image = engine.load(busybox_image_tar([ref], extra_size_bytes=MiB))
    for line in api.push(ref, stream=True, decode=True):
        assert "error" not in line, line
    api.remove_image(image)
    repository, _, tag = ref.rpartition(":")
    for line in api.pull(repository, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    return image


def test_tagged_image_is_first_seen_when_it_was_tagged(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """With no history, the engine's LastTagTime is evidence the image was there: first_seen."""
    image = engine.load(busybox_image_tar(["plain:1"], extra_size_bytes=MiB))
    before_tag = datetime.now(UTC)
    api.tag(image, "plain", "2")
    tagged = datetime.now(UTC)
    _, report = nodegc_json(engine, tmp_path / "s", "report")
    first_seen = datetime.fromisoformat(decisions(report, "images")[image]["first_seen"])
    assert before_tag <= first_seen <= tagged


def test_pulled_image_is_first_seen_at_its_pull_event(
    engine: IsolatedEngine, api: docker.APIClient, registry: str, tmp_path: Path
) -> None:
    """A pull leaves no time on the image (dockerd 20.10): the daemon takes it from the event."""
    state = tmp_path / "s"
    daemon = Daemon(engine, state, '[containers]\ngc_period = "1h"\n[images]\ngc_period = "1h"\n')
    daemon.start()
    try:
        daemon.wait_ready()
        before_pull = datetime.now(UTC)
        image = push_and_pull_back(api, engine, f"{registry}/shop/web:1")
        pulled = datetime.now(UTC)

        def first_seen() -> str | None:
            history = json.loads((state / "history.json").read_text())
            return history["images"].get(image, {}).get("first_seen")

        seen = datetime.fromisoformat(wait_for(first_seen, timeout=120))
    finally:
        daemon.stop()
    assert before_pull <= seen <= pulled
    _, report = nodegc_json(engine, state, "report")
    assert decisions(report, "images")[image]["digests"]


def test_pin_pattern_on_a_digest_keeps_the_pulled_image(
    engine: IsolatedEngine, api: docker.APIClient, registry: str, tmp_path: Path
) -> None:
    """A glob over the repository digest pins the image even when the disk asks for space."""
    image = push_and_pull_back(api, engine, f"{registry}/base/os:7")
    config = tmp_path / "c.toml"
    config.write_text(
        '[images]\nminimum_age = "0s"\nhigh_threshold_percent = 1\nlow_threshold_percent = 0\n'
        f'pinned = ["{registry}/base/os@sha256:*"]\n'
    )
    _, out = nodegc_json(engine, tmp_path / "s", "once", "--config", str(config))
    assert decisions(out, "images")[image]["reason"] == "pinned"
    assert image in {i["Id"] for i in api.images()}
