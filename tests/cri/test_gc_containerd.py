"""nodegc against a real, isolated containerd through CRI: the Docker suite's scenarios."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from nodegc.collect.cycle import Collector
from nodegc.model import Container, Image, Outcome
from nodegc.runtime.cri import CriRuntime, from_nanos
from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.state.store import StateDir
from nodegc.testing.containerd import IsolatedContainerd
from nodegc.testing.images import build_image_tar, busybox_image_tar
from tests.cri.helpers import (
    MiB,
    cri_json,
    cri_settings,
    decisions,
    fill_so_that_bytes_to_free_is,
    inventory,
    nodegc_cri,
    removed_ids,
)

SPACE_ALL = ("--image-gc-high-threshold=1", "--image-gc-low-threshold=0")
CAPS_ONLY = {"NODEGC_CONTAINERS__REMOVE_UNDER_DISK_PRESSURE": "false"}
YOUNG_OK = "--minimum-image-ttl-duration=0s"


def test_once_frees_least_recently_used_images_down_to_the_low_threshold(
    ctrd: IsolatedContainerd, tmp_path: Path
) -> None:
    """A disk past the high threshold is brought to the low one, removing exactly the LRU images."""
    size = 3 * MiB
    ids = ctrd.import_images(
        busybox_image_tar([f"app/{n}:1"], extra_size_bytes=size) for n in "abcdefgh"
    )
    by_name = dict(zip("abcdefgh", ids, strict=True))
    # Run f, then c, then h: they rank as used, in that order (by their exact finish times);
    # the other five were never used.
    pod = ctrd.run_pod("lru")
    for attempt, name in enumerate("fch"):
        ctrd.run_container(pod, by_name[name], ["true"], name=name, attempt=attempt)
    state = tmp_path / "state"
    assert nodegc_cri(ctrd, state, "report").returncode == 0  # history learns the uses
    for container_id in ctrd.containers():
        ctrd.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=container_id))

    # Five never-used images are not enough; the sixth must be f, the least recently used.
    sizes = {i.id: i.size for i in ctrd.img.ListImages(pb.ListImagesRequest()).images}
    # containerd keeps the (here uncompressed) blob CRI lists and the unpacked snapshot: each
    # image costs twice its listed size, the first guess nodegc plans with (`collect.cost`).
    wanted = 2 * (sum(sizes[by_name[n]] for n in "abdeg") + sizes[by_name["f"]] // 2)
    fill_so_that_bytes_to_free_is(ctrd, low=75, wanted=wanted)
    code, out = cri_json(
        ctrd, state, "once", "--image-gc-high-threshold=76", "--image-gc-low-threshold=75", YOUNG_OK
    )

    assert code == 0, out
    expected = {by_name[n] for n in "abdegf"}
    assert removed_ids(out, "images") == expected  # the plan, from CRI's sizes at their cost
    # The closed loop measures: an image's unpacked snapshot takes disk beyond the content size
    # CRI lists, so the disk may reach the target before the plan's last removals, which are
    # then left out (not-needed), least recently used first.
    outcomes = {d["id"]: d["outcome"] for d in out["images"]["decisions"]}
    gone = {i for i in expected if outcomes[i] == "removed"}
    assert gone and all(outcomes[i] == "not-needed" for i in expected - gone), outcomes
    remaining = ctrd.image_ids()
    assert remaining.isdisjoint(gone) and expected - gone <= remaining
    assert {by_name["c"], by_name["h"], ctrd.sandbox_image_id} <= remaining
    assert out["images"]["target_reached"] is True
    assert ctrd.usage_percent() <= 75


def test_images_used_by_running_exited_or_created_containers_are_kept(
    ctrd: IsolatedContainerd, busybox: str, tmp_path: Path
) -> None:
    """Any container, running, exited or only created, keeps its image `in-use` (the caps as the
    only rule for dead containers: under pressure they may go, tests/cri/test_pressure_*)."""
    exited_img = ctrd.import_image(busybox_image_tar(["use/exited:1"], labels={"v": "exited"}))
    created_img, unused = ctrd.import_images(
        build_image_tar([f"use/{n}:1"], MiB) for n in ("created", "unused")
    )
    pod = ctrd.run_pod("users")
    ctrd.run_container(pod, busybox, ["sleep", "60"], name="running", wait=False)
    ctrd.run_container(pod, exited_img, ["true"], name="exited")
    ctrd.create_container(pod, created_img, ["/nothing"], name="created")

    _, out = cri_json(ctrd, tmp_path / "s", "once", *SPACE_ALL, YOUNG_OK, env=CAPS_ONLY)

    reasons = {i: d["reason"] for i, d in decisions(out, "images").items()}
    assert reasons[busybox] == reasons[exited_img] == reasons[created_img] == "in-use", out
    assert decisions(out, "images")[unused]["outcome"] == "removed"
    assert {busybox, exited_img, created_img} <= ctrd.image_ids()
    assert unused not in ctrd.image_ids()


def test_pinned_images_are_kept(ctrd: IsolatedContainerd, tmp_path: Path) -> None:
    """A nodegc.io/pinned label (read from the image config) and a `pinned` glob both keep."""
    by_label = ctrd.import_image(
        build_image_tar(["keep/label:1"], MiB, labels={"nodegc.io/pinned": "true"})
    )
    by_glob = ctrd.import_image(build_image_tar(["keep/glob:1"], MiB))
    loose = ctrd.import_image(build_image_tar(["keep/none:1"], MiB))
    config = tmp_path / "c.toml"
    config.write_text('[images]\npinned = ["docker.io/keep/glob:*"]\n')

    _, out = cri_json(ctrd, tmp_path / "s", "once", "--config", str(config), *SPACE_ALL, YOUNG_OK)

    reasons = {i: d["reason"] for i, d in decisions(out, "images").items()}
    assert reasons[by_label] == reasons[by_glob] == "pinned"
    assert {by_label, by_glob} <= ctrd.image_ids()
    assert loose not in ctrd.image_ids()


def test_sandbox_image_is_kept_though_containerd_does_not_pin_it(
    ctrd: IsolatedContainerd, tmp_path: Path
) -> None:
    """nodegc keeps the pause image as `pinned`, whether the runtime pins it (containerd 1.7+)
    or not (1.6 lists it pinned=false: nodegc finds it in the runtime's config)."""
    listed = ctrd.img.ListImages(pb.ListImagesRequest()).images
    assert [i.id for i in listed if i.id == ctrd.sandbox_image_id]

    _, out = cri_json(ctrd, tmp_path / "s", "once", *SPACE_ALL, YOUNG_OK)

    assert decisions(out, "images")[ctrd.sandbox_image_id]["reason"] == "pinned", out
    assert ctrd.sandbox_image_id in ctrd.image_ids()
    assert ctrd.run_pod("still-starts")  # a node that kept its pause image can start pods


def test_container_gc_keeps_the_newest_dead_container_of_each_pod_container(
    ctrd: IsolatedContainerd, busybox: str, tmp_path: Path
) -> None:
    """Per (pod uid, container name) the newest dead one stays; running and keep-labelled stay."""
    pod = ctrd.run_pod("web-1", uid="uid-1")
    dead = [ctrd.run_container(pod, busybox, ["true"], attempt=a) for a in range(3)]
    running = ctrd.run_container(pod, busybox, ["sleep", "60"], attempt=3, wait=False)
    kept = ctrd.run_container(pod, busybox, ["true"], attempt=4, labels={"nodegc.io/keep": "true"})
    status = ctrd.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=dead[0])).status
    finished = from_nanos(status.finished_at)

    code, out = cri_json(ctrd, tmp_path / "s", "once")

    assert code == 0, out
    assert set(ctrd.containers()) == {dead[-1], running, kept}
    reasons = {d["id"]: d["reason"] for d in out["containers"]["decisions"]}
    assert reasons[dead[0]] == reasons[dead[1]] == "per-unit-cap"
    assert reasons[running] == "running"
    assert reasons[kept] == "keep-label"
    decided = decisions(out, "containers")[dead[0]]
    assert decided["evict_unit"] == "pod:uid-1/app"
    # Exact when a decision needed it, else the window [creation, listing].
    assert finished is not None
    if decided["finished_at"] is not None:
        assert datetime.fromisoformat(decided["finished_at"]) == finished
    else:
        after = datetime.fromisoformat(decided["finished_after"])
        before = datetime.fromisoformat(decided["finished_before"])
        assert after <= finished <= before


def test_report_and_dry_run_leave_containerd_identical(
    ctrd: IsolatedContainerd, busybox: str, tmp_path: Path
) -> None:
    """`report` and `once --dry-run` plan removals but containerd holds exactly what it held."""
    ctrd.import_images(build_image_tar([f"junk/{n}:1", f"junk/{n}:2"], MiB) for n in range(4))
    pod = ctrd.run_pod("dry")
    for attempt in range(3):
        ctrd.run_container(pod, busybox, ["true"], attempt=attempt)
    ctrd.fill_to_percent(95)
    before = inventory(ctrd)
    aggressive = (YOUNG_OK, "--maximum-dead-containers=0")

    code, report = cri_json(ctrd, tmp_path / "s", "report", *aggressive)
    _, dry = cri_json(ctrd, tmp_path / "s", "once", "--dry-run", *aggressive)

    assert code == 0
    assert len(removed_ids(report, "containers")) == 3
    assert len(removed_ids(report, "images")) >= 4
    assert {d["outcome"] for d in dry["images"]["decisions"] if d["action"] == "remove"} == {
        "would-remove"
    }
    assert inventory(ctrd) == before


def test_container_created_between_plan_and_removal_keeps_the_image(
    ctrd: IsolatedContainerd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A race: a container appears right before RemoveImage; the removal is skipped."""
    tags = ["race/a:1", "race/b:2"]
    image = ctrd.import_image(build_image_tar(tags, MiB))
    pod = ctrd.run_pod("racer")
    settings = cri_settings(
        ctrd,
        tmp_path / "s",
        images={"minimum_age": "0s", "high_threshold_percent": 1, "low_threshold_percent": 0},
        # The container created in the race is dead (created): the caps are the only rule here.
        containers={"remove_under_disk_pressure": False},
    )
    runtime = CriRuntime(ctrd.endpoint, settings.runtime.timeout)
    real_remove = runtime.remove_image
    raced: list[str] = []

    def race_then_remove(candidate: Image, before_delete: Callable[[], None] | None = None) -> None:
        if candidate.id == image and not raced:  # planned already; a pod starts using it now
            raced.append(ctrd.create_container(pod, image, ["/nothing"]))
        real_remove(candidate, before_delete)

    monkeypatch.setattr(runtime, "remove_image", race_then_remove)
    report = Collector(settings, runtime, StateDir(tmp_path / "s")).cycle()

    (result,) = [r for r in report.image_results if r.id == image]
    assert result.outcome is Outcome.SKIPPED
    assert raced[0][:12] in result.detail
    listed = {i.id: i for i in ctrd.img.ListImages(pb.ListImagesRequest()).images}
    assert sorted(listed[image].repo_tags) == sorted(f"docker.io/{t}" for t in tags)
    assert ctrd.containers() == {raced[0]: pb.CONTAINER_CREATED}


def test_container_started_between_plan_and_removal_is_not_killed(
    ctrd: IsolatedContainerd, busybox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A race: a created container the plan removes starts first; it is skipped, still running."""
    pod = ctrd.run_pod("starter")
    container = ctrd.create_container(pod, busybox, ["sleep", "60"])
    settings = cri_settings(ctrd, tmp_path / "s", containers={"max_per_pod_container": 0})
    runtime = CriRuntime(ctrd.endpoint, settings.runtime.timeout)
    real_remove = runtime.remove_container

    def start_then_remove(candidate: Container) -> None:
        ctrd.rt.StartContainer(pb.StartContainerRequest(container_id=container))
        real_remove(candidate)

    monkeypatch.setattr(runtime, "remove_container", start_then_remove)
    report = Collector(settings, runtime, StateDir(tmp_path / "s")).cycle(images=False)

    (result,) = report.container_results
    assert result.outcome is Outcome.SKIPPED and "running" in result.detail
    assert ctrd.containers() == {container: pb.CONTAINER_RUNNING}
