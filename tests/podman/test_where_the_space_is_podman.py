"""Where the space is on Podman (Debian 12's 4.3 and forky's 5.8), through its Docker-compatible
`/system/df` and each container's `LogPath`: a running container's ~100 MB k8s-file log, a 60 MB
anonymous volume no container uses and a 40 MB file outside the engine, each within 5% of `du`;
the build cache unknown (null: Podman has none to list), not 0; `once` that cannot reach low names
them in its line and in the audit record."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from nodegc.testing.engine_root import engine_root
from nodegc.testing.podman import IsolatedPodman
from nodegc.testing.rooted import RootedPodman
from tests.engine.helpers import nodegc, nodegc_json
from tests.engine.test_where_the_space_is import audit, close, du, hold_the_disk
from tests.podman.conftest import require_podman


@pytest.fixture(params=["4.3", "5.8"])
def podman(request: pytest.FixtureRequest) -> Iterator[IsolatedPodman]:
    require_podman()
    engine = (
        IsolatedPodman(size_mb=512)
        if request.param == "4.3"
        else RootedPodman(512, root=engine_root("forky"))
    )
    with engine:
        yield engine


def test_report_shows_each_holder_and_once_names_them(podman: IsolatedPodman, tmp_path) -> None:
    """Catches: `breakdown: null` on Podman, the log (LogPath, inspect) or the volume left out
    or mis-sized, images counted 0 (Podman 4.3 answers LayersSize 0), the log counted twice
    (Podman 5 counts it in SizeRw), the build cache said 0
    where Podman cannot know it, the line or the audit record naming nothing."""
    api = docker.APIClient(base_url=podman.endpoint, version="auto", timeout=120)
    try:
        held = hold_the_disk(podman, api)
        version = api.version()["Version"]
    finally:
        api.close()
    state = tmp_path / "state"
    code, out = nodegc_json(podman, state, "report")
    assert code == 0, out
    (fs,) = out["breakdown"]
    sizes = fs["bytes"]
    log_size, volume_size, file_size = du(held["log"]), du(held["volume_path"]), du(held["file"])
    print(f"Podman {version} breakdown", sizes, "du", log_size, volume_size, file_size)
    assert log_size > 95_000_000
    assert close(sizes["logs"], log_size), (sizes, log_size)
    assert close(sizes["volumes_anonymous_unused"], volume_size), (sizes, volume_size)
    assert close(sizes["rest"], file_size), (sizes, file_size)
    assert sizes["images_in_use"] > 1_000_000, sizes  # busybox, in use by the writer
    # The writer's layer holds next to nothing: its log is not counted again (Podman 5's
    # SizeRw includes it).
    assert sizes["containers_running"] < 1_000_000, sizes
    assert sizes["build_cache_in_use"] is None and sizes["build_cache_reclaimable"] is None
    biggest = {(h["kind"], h["name"]): h for h in fs["biggest"]}
    assert biggest[("logs", "chatty")]["path"] == held["log"]

    proc = nodegc(
        podman,
        state,
        "once",
        "--image-gc-high-threshold=20",
        "--image-gc-low-threshold=10",
        "--minimum-image-ttl-duration=0s",
    )
    assert proc.returncode == 1, proc.stderr
    line = next(t for t in proc.stderr.splitlines() if "FreeDiskSpaceFailed" in t)
    assert "log of container chatty" in line and f"anonymous volume {held['volume']}" in line
    (record,) = [e for e in audit(state) if e.get("event") == "target-missed"]
    named = {(h["kind"], h["name"]): h["bytes"] for h in record["holders"]}
    assert close(named[("logs", "chatty")], log_size), named
    assert close(named[("volumes_anonymous_unused", held["volume"])], volume_size), named
