"""Podman 5.8 (Debian forky's, from the engine root): a planned image the disk no longer needs
ends `not-needed`, never `not-attempted` (which says the engine was lost)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodegc.testing.engine_root import engine_root
from nodegc.testing.images import build_layer, build_layered_image_tar, busybox_image_tar
from nodegc.testing.rooted import RootedPodman
from tests.engine.helpers import MiB, nodegc
from tests.podman.conftest import require_podman


@pytest.fixture
def podman5() -> Iterator[RootedPodman]:
    require_podman()
    with RootedPodman(size_mb=512, root=engine_root("forky")) as engine:
        yield engine


def test_an_image_planned_but_not_needed_is_not_needed(podman5: RootedPodman) -> None:
    """Ten images of 10 MiB, four of them held by created containers that disk pressure lets
    go, three exited busybox containers; disk at 92%, 85/75. The shown plan counts on the
    containers going; the disk reaches 75% first, so one planned image is left. Its outcome is
    `not-needed`, the exit 0. Mutation caught: the cycle not settling the shown plan's
    untried removals (it said `not-attempted` on Podman 5.8.6)."""
    engine = podman5
    with engine.api() as api:
        assert api.version()["Version"].startswith("5."), api.version()
        engine.load_many([busybox_image_tar(["bb:1"])])
        engine.load_many(
            [
                build_layered_image_tar([f"app/{n}:1"], [build_layer(10 * MiB, name=f"own{n}")])
                for n in range(10)
            ]
        )
        none = api.create_host_config(network_mode="none")
        for n in range(4):
            api.create_container(f"app/{n}:1", command=["/x"], host_config=none)
        for _ in range(3):
            c = api.create_container("bb:1", command=["true"], host_config=none)
            api.start(c)
            api.wait(c)
    engine.fill_to_percent(92)
    state = Path(tempfile.mkdtemp(dir=engine.root)) / "state"
    proc = nodegc(
        engine, state, "once", "--image-gc-high-threshold=85", "--image-gc-low-threshold=75",
        "--minimum-image-ttl-duration=0s", "--output", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    outcomes = [d["outcome"] for d in out["images"]["decisions"] if d["action"] == "remove"]
    assert "not-attempted" not in outcomes, out["images"]["decisions"]
    assert out["not_attempted"] == 0
    assert engine.usage_percent() <= 75


def test_podman5s_version_is_read_from_its_ping(podman5: RootedPodman) -> None:
    """Podman 5's `/version` (seconds: conmon's and the OCI runtime's versions) is answered from
    its `/_ping` headers, with the Version the engine itself gives, and no request made."""
    from datetime import timedelta

    from nodegc.runtime.docker import DockerRuntime
    from nodegc.runtime.docker_usage import podman_major

    with podman5.api() as api:
        real = api.version()
    runtime = DockerRuntime(podman5.endpoint, timedelta(seconds=20))
    try:
        assert runtime.podman is True
        before = runtime.requests
        assert runtime.version()["Version"] == real["Version"]
        assert podman_major(runtime) == 5
        assert runtime.requests == before
    finally:
        runtime.close()
