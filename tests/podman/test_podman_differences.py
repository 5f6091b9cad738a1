"""`nodegc once` and `nodegc run` on a real Podman service where its API differs from Docker's:
each test fails on an adapter that does not handle the difference (the adapter-level ones are in
test_podman_adapter.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import docker

from nodegc.runtime.docker import parse_time
from nodegc.testing.faultproxy import Fault, FaultProxy
from nodegc.testing.images import build_image_tar, busybox_image_tar
from nodegc.testing.podman import IsolatedPodman
from tests.engine.helpers import Daemon, MiB, nodegc, nodegc_json, wait_for
from tests.reliability.scene import outcomes
from tests.reliability.test_races import EVERYTHING

TIMEOUT = timedelta(seconds=20)


def test_image_tagged_again_before_its_removal_by_id_is_skipped_with_both_tags(
    engine: IsolatedPodman, api: docker.APIClient, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Listed with one tag, tagged again right before nodegc deletes it by id: Podman answers 500
    ("by ID with more than one tag") where Docker answers 409; skipped, never failed."""
    image = engine.load(build_image_tar(["solo:1"], 16 * 1024))
    proxy.add(
        Fault.hook(lambda: api.tag(image, "second", "2")),
        method="DELETE",
        path=f"/images/{image}$",
        times=1,
    )
    proc = nodegc(None, tmp_path / "s", "once", *EVERYTHING, endpoint=proxy.endpoint)
    assert proxy.errors == []
    report = json.loads(proc.stdout)
    assert outcomes(report, "images")[image] == "skipped", proc.stdout
    assert proc.returncode == 1  # the target could not be reached; but nothing failed
    assert report["failures"] == 0
    assert sorted(api.inspect_image(image)["RepoTags"]) == [
        "docker.io/library/second:2",
        "localhost/solo:1",
    ]


def test_daemon_records_a_short_lived_containers_last_use_at_its_exit(
    engine: IsolatedPodman, daemons: list[Daemon], tmp_path: Path, api: docker.APIClient
) -> None:
    """A container that lived 1.5 s between two cycles: its image's last use is when it died (the
    `died` event), not when it started."""
    image = engine.load(busybox_image_tar(["brief:1"], extra_size_bytes=MiB))
    state = tmp_path / "s"
    config = '[containers]\ngc_period = "1h"\n[images]\ngc_period = "1h"\nminimum_age = "0s"\n'
    daemon = Daemon(engine, state, config).start()
    daemons.append(daemon)
    daemon.wait_ready()
    container = engine.run_container(image, ["sleep", "1.5"])
    started = parse_time(api.inspect_container(container)["State"]["StartedAt"])
    api.remove_container(container)
    assert started is not None

    def last_used() -> datetime | None:
        history = json.loads((state / "history.json").read_text())
        return parse_time_iso(history["images"].get(image, {}).get("last_used"))

    def died_recorded() -> bool:
        used = last_used()
        return used is not None and used >= started + timedelta(seconds=1.4)

    wait_for(died_recorded, timeout=10)


def parse_time_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def test_pin_on_the_short_name_keeps_podmans_localhost_image(
    engine: IsolatedPodman, api: docker.APIClient, tmp_path: Path
) -> None:
    """`myapp:*` pins `localhost/myapp:1` (Podman's name for a local `myapp:1`)."""
    pinned = engine.load(build_image_tar(["myapp:1"], 1024))
    other = engine.load(build_image_tar(["other:1"], 1024))
    assert api.inspect_image(pinned)["RepoTags"] == ["localhost/myapp:1"]
    config = tmp_path / "c.toml"
    config.write_text('[images]\npinned = ["myapp:*"]\n')

    _, out = nodegc_json(engine, tmp_path / "s", "once", "--config", str(config), *EVERYTHING[:-1])

    decided = {d["id"]: d for d in out["images"]["decisions"]}
    assert decided[pinned]["reason"] == "pinned" and decided[pinned]["action"] == "keep"
    assert decided[other]["outcome"] == "removed"
    assert {i["Id"] for i in api.images()} == {pinned}
