"""Pins the real-engine harness itself: synthetic images, containers, disk filling, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import build_image_tar, image_id_of, load_image

pytestmark = pytest.mark.engine

MiB = 1024 * 1024
_cgroup_root = Path("/sys/fs/cgroup")


def _image(api: docker.APIClient, image_id: str) -> dict[str, object]:
    """The image's entry in the engine's image listing (what the runtime adapter reads)."""
    return next(entry for entry in api.images(all=True) if entry["Id"] == image_id)


def _processes_mentioning(root: Path) -> list[str]:
    """Command lines of live processes that mention a path under `root`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"{root}/".encode() in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _loop_devices(image: Path) -> list[str]:
    """Loop devices attached to `image` (`losetup -j`)."""
    out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True, check=True)
    return [line.split(":", 1)[0] for line in out.stdout.splitlines()]


def _leftovers(root: Path) -> dict[str, object]:
    """Whatever of an engine rooted at `root` is still on the machine (its cgroup parent too)."""
    listed = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    return {
        "mounts": [
            line for line in Path("/proc/mounts").read_text().splitlines() if str(root) in line
        ],
        "loop devices": _loop_devices(root / "disk.img")
        + [line for line in listed.splitlines() if str(root) in line],
        "processes": _processes_mentioning(root),
        "cgroups": [str(d) for d in _cgroup_root.glob(f"*/{root.name}")]
        + [str(d) for d in _cgroup_root.glob(root.name)],
        "root dir": root.exists(),
    }


NOTHING_LEFT = {
    "mounts": [], "loop devices": [], "processes": [], "cgroups": [], "root dir": False,
}  # fmt: skip


def test_loaded_image_has_the_requested_tags(api: docker.APIClient) -> None:
    """An image loads with exactly the tags it was built with."""
    image_id = load_image(api, build_image_tar(["ngc/a:1", "ngc/b:2"]))

    assert sorted(api.inspect_image(image_id)["RepoTags"]) == ["ngc/a:1", "ngc/b:2"]


def test_loaded_image_has_about_the_requested_size(api: docker.APIClient) -> None:
    """The listing's Size is the requested size plus a few bytes."""
    image_id = load_image(api, build_image_tar(["ngc/size:1"], 3 * MiB))

    assert 3 * MiB <= _image(api, image_id)["Size"] <= 3 * MiB + 4096


def test_two_builds_give_two_images(api: docker.APIClient) -> None:
    """Two builds with the same arguments are two distinct images."""
    first = load_image(api, build_image_tar([], MiB))
    second = load_image(api, build_image_tar([], MiB))

    assert first != second
    assert {first, second} <= {entry["Id"] for entry in api.images(all=True)}


def test_same_seed_gives_the_same_image() -> None:
    """A seed makes the build reproducible, down to the image id."""
    assert image_id_of(build_image_tar(["ngc/s:1"], MiB, seed=7)) == image_id_of(
        build_image_tar(["ngc/s:1"], MiB, seed=7)
    )


def test_untagged_image_loads(api: docker.APIClient) -> None:
    """An image built without tags loads as a dangling image."""
    image_id = load_image(api, build_image_tar([]))

    assert api.inspect_image(image_id)["RepoTags"] == []
    assert image_id in {entry["Id"] for entry in api.images(filters={"dangling": True})}


def test_created_and_labels_are_kept(api: docker.APIClient) -> None:
    """The engine reports the creation date and labels the image was built with."""
    created = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    image_id = load_image(api, build_image_tar(["ngc/c:1"], created=created, labels={"k": "v"}))

    assert _image(api, image_id)["Created"] == int(created.timestamp())
    assert api.inspect_image(image_id)["Config"]["Labels"] == {"k": "v"}


def test_busybox_container_exits_zero_without_network(
    engine: IsolatedEngine, api: docker.APIClient, busybox: str
) -> None:
    """A busybox container runs with network "none" and exits 0."""
    container_id = engine.run_container(busybox, ["true"])

    attrs = api.inspect_container(container_id)
    assert attrs["HostConfig"]["NetworkMode"] == "none"
    assert (attrs["State"]["Status"], attrs["State"]["ExitCode"]) == ("exited", 0)


def test_busybox_container_output_is_captured(
    engine: IsolatedEngine, api: docker.APIClient, busybox: str
) -> None:
    """What a container prints is in its logs."""
    container_id = engine.run_container(busybox, ["echo", "hello"])

    assert api.logs(container_id) == b"hello\n"


def test_dead_containers_are_exited_and_labelled(
    engine: IsolatedEngine, api: docker.APIClient, busybox: str
) -> None:
    """create_dead_containers makes n exited containers with the labels asked for, in order."""
    ids = engine.create_dead_containers(busybox, 6, lambda i: {"index": str(i)})

    listed = {c["Id"]: c for c in api.containers(all=True)}
    assert [listed[cid]["Labels"]["index"] for cid in ids] == [str(i) for i in range(6)]
    assert {listed[cid]["State"] for cid in ids} == {"exited"}


def test_fill_raises_usage_by_the_filled_share(engine: IsolatedEngine) -> None:
    """Filling a fifth of the filesystem raises usage_percent by about 20, and unfill undoes it."""
    before = engine.usage_percent()
    st = os.statvfs(engine.mountpoint)

    engine.fill(st.f_blocks * st.f_frsize // 5)
    filled = engine.usage_percent()
    engine.unfill()

    assert 19 <= filled - before <= 21
    assert engine.usage_percent() == before


def test_fill_to_percent_reaches_the_target(engine: IsolatedEngine) -> None:
    """fill_to_percent lands exactly on the kubelet's figure asked for."""
    engine.fill_to_percent(87)

    assert engine.usage_percent() == 87


def test_restart_keeps_images(engine: IsolatedEngine) -> None:
    """stop() then start() brings the engine back on the same data-root."""
    image_id = engine.load(build_image_tar(["ngc/keep:1"]))

    engine.stop()
    engine.start()

    with engine.api() as api:
        assert api.inspect_image(image_id)["RepoTags"] == ["ngc/keep:1"]


def test_close_leaves_nothing_behind(engine: IsolatedEngine, busybox: str) -> None:
    """close() leaves no mount, loop device, engine process or temp dir (a container was up)."""
    engine.run_container(busybox, ["sleep", "300"], wait=False)
    assert _loop_devices(engine.image_path)

    engine.close()

    assert _leftovers(engine.root) == NOTHING_LEFT


def test_close_after_dockerd_was_killed_leaves_nothing_behind(
    engine: IsolatedEngine, busybox: str
) -> None:
    """close() cleans up after a SIGKILLed dockerd whose container outlived it."""
    engine.run_container(busybox, ["sleep", "300"], wait=False)
    assert engine.pid is not None
    os.kill(engine.pid, signal.SIGKILL)

    engine.close()

    assert _leftovers(engine.root) == NOTHING_LEFT


def test_cli_starts_a_detached_engine_and_stops_it(tmp_path: Path) -> None:
    """`start` leaves a pingable engine behind and prints DOCKER_HOST; `stop` removes it all."""
    state_file = tmp_path / "engine.json"
    cli = [sys.executable, "-m", "nodegc.testing.engine"]
    started = subprocess.run(
        [*cli, "start", "--size-mb", "128", "--state-file", str(state_file)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    state = json.loads(state_file.read_text())
    try:
        with docker.APIClient(base_url=state["endpoint"], version="auto") as api:
            pinged = api.ping()
    finally:
        subprocess.run([*cli, "stop", "--state-file", str(state_file)], check=True)

    assert started.stdout == f"DOCKER_HOST={state['endpoint']}\n"
    assert pinged
    assert _leftovers(Path(state["root"])) == NOTHING_LEFT
