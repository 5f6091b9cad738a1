"""nodegc against a real, isolated Docker engine: `report`, `once` and the Docker adapter."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from nodegc.collect.cycle import Collector
from nodegc.config import load_settings
from nodegc.model import Outcome
from nodegc.runtime.docker import DockerRuntime, parse_time
from nodegc.state.store import StateDir
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import build_image_tar, busybox_image_tar
from tests.engine.helpers import (
    MiB,
    create_container,
    decisions,
    inventory,
    nodegc,
    nodegc_json,
    removed_ids,
)

POD = {
    "io.kubernetes.pod.uid": "uid-1",
    "io.kubernetes.pod.name": "web-1",
    "io.kubernetes.pod.namespace": "default",
    "io.kubernetes.container.name": "app",
}


def fill_so_that_bytes_to_free_is(engine: IsolatedEngine, low: int, wanted: int) -> None:
    """Fill the engine's filesystem until the kubelet's bytes_to_free for `low` is `wanted`
    (usage is then a little above `low`: choose the high threshold accordingly)."""
    st = os.statvfs(engine.mountpoint)
    capacity, available = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    target_available = capacity * (100 - low) // 100 - wanted
    assert available > target_available, "the test inventory already needs more than wanted"
    engine.fill(available - target_available)


def test_once_frees_least_recently_used_images_down_to_the_low_threshold(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """A disk past the high threshold is brought to the low one, removing exactly the LRU images."""
    size = 20 * MiB
    engine.load(busybox_image_tar(labels={"nodegc.io/pinned": "true"}))
    ids = engine.load_many(
        busybox_image_tar([f"app/{n}:1"], extra_size_bytes=size) for n in "abcdefgh"
    )
    by_name = dict(zip("abcdefgh", ids, strict=True))
    # Run f, then c, then h: they rank as used, in that order (by their exact finish times);
    # the other five were never used.
    for name in "fch":
        engine.run_container(by_name[name], ["true"])
    state = tmp_path / "state"
    assert nodegc(engine, state, "report").returncode == 0  # history learns the uses
    for c in api.containers(all=True):
        api.remove_container(c["Id"])

    # Five never-used images (100 MiB) are not enough; the sixth must be f, the least recently used.
    fill_so_that_bytes_to_free_is(engine, low=20, wanted=int(5.5 * size))
    code, out = nodegc_json(
        engine,
        state,
        "once",
        "--image-gc-high-threshold=40",
        "--image-gc-low-threshold=20",
        "--minimum-image-ttl-duration=0s",
    )

    assert code == 0, out
    expected = {by_name[n] for n in "abdegf"}
    assert removed_ids(out, "images") == expected
    remaining = {i["Id"] for i in api.images()}
    assert remaining.isdisjoint(expected)
    assert {by_name["c"], by_name["h"]} <= remaining
    assert out["images"]["target_reached"] is True
    assert engine.usage_percent() <= 20


def test_report_and_dry_run_leave_images_and_containers_identical(
    engine: IsolatedEngine, api: docker.APIClient, busybox: str, tmp_path: Path
) -> None:
    """`report` and `once --dry-run` plan removals but the engine sees no change at all."""
    engine.load_many(build_image_tar([f"junk/{n}:1", f"junk/{n}:2"], 5 * MiB) for n in range(6))
    engine.create_dead_containers(busybox, 4, lambda i: POD)
    engine.fill_to_percent(95)
    before = inventory(api)
    since = datetime.now(UTC)
    aggressive = ("--minimum-image-ttl-duration=0s", "--maximum-dead-containers=0")

    code, report = nodegc_json(engine, tmp_path / "s", "report", *aggressive)
    _, dry = nodegc_json(engine, tmp_path / "s", "once", "--dry-run", *aggressive)

    assert code == 0
    assert len(removed_ids(report, "containers")) == 4
    assert len(removed_ids(report, "images")) >= 6
    assert {d["outcome"] for d in dry["images"]["decisions"] if d["action"] == "remove"} == {
        "would-remove"
    }
    assert inventory(api) == before
    changes = api.events(
        since=since,
        until=datetime.now(UTC),
        filters={"event": ["destroy", "delete", "untag", "kill", "stop"]},
        decode=True,
    )
    assert list(changes) == []


def test_image_whose_dead_containers_go_in_the_same_cycle_is_removed_too(
    engine: IsolatedEngine, api: docker.APIClient, busybox: str, tmp_path: Path
) -> None:
    """Dependents first: container GC frees the image, image GC removes it in the same `once`."""
    held = engine.load(build_image_tar(["held:1"], 30 * MiB))
    for _ in range(2):
        create_container(api, held, labels=POD)
    fill_so_that_bytes_to_free_is(engine, low=20, wanted=10 * MiB)

    code, out = nodegc_json(
        engine,
        tmp_path / "s",
        "once",
        "--image-gc-high-threshold=21",
        "--image-gc-low-threshold=20",
        "--minimum-image-ttl-duration=0s",
        "--maximum-dead-containers-per-container=0",
    )

    assert code == 0, out
    assert api.containers(all=True) == []
    assert held not in {i["Id"] for i in api.images()}


def test_container_gc_keeps_the_newest_dead_container_of_each_pod_container(
    engine: IsolatedEngine, api: docker.APIClient, busybox: str, tmp_path: Path
) -> None:
    """Per (pod, container) the newest dead one stays; running and keep-labelled ones stay."""
    dead = engine.create_dead_containers(busybox, 3, lambda i: POD, workers=1)
    running = engine.run_container(busybox, ["sleep", "60"], labels=POD, wait=False)
    kept = engine.run_container(busybox, ["true"], labels={**POD, "nodegc.io/keep": "true"})
    state = api.inspect_container(dead[0])["State"]
    # The finish time, never before the start (Podman's FinishedAt can precede StartedAt).
    finished = max(parse_time(state["FinishedAt"]), parse_time(state["StartedAt"]))  # type: ignore[type-var]

    code, out = nodegc_json(engine, tmp_path / "s", "once")

    assert code == 0, out
    left = {c["Id"] for c in api.containers(all=True)}
    assert left == {dead[-1], running, kept}
    reasons = {d["id"]: d["reason"] for d in out["containers"]["decisions"]}
    assert reasons[dead[0]] == reasons[dead[1]] == "per-unit-cap"
    assert reasons[running] == "running"
    assert reasons[kept] == "keep-label"
    decided = decisions(out, "containers")[dead[0]]
    assert decided["evict_unit"] == "pod:uid-1/app"
    # Exact when a decision needed it (a creation tie), else the window the listing gave.
    assert finished is not None
    if decided["finished_at"] is not None:
        assert parse_time(decided["finished_at"]) == finished
    else:
        after, before = (
            parse_time(decided["finished_after"]),
            parse_time(decided["finished_before"]),
        )
        assert after is not None and before is not None and after <= finished <= before


def test_image_tagged_in_several_repositories_is_removed_with_every_tag(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """The engine will not delete such an image by id unless forced; nodegc removes it unforced."""
    image = engine.load(build_image_tar(["one/x:1", "two/y:2", "three/z:3"], MiB))
    code, out = nodegc_json(
        engine, tmp_path / "s", "once", "--minimum-image-ttl-duration=0s",
        "--image-gc-high-threshold=1", "--image-gc-low-threshold=0",
    )  # fmt: skip
    assert decisions(out, "images")[image]["outcome"] == "removed", out
    # Low 0% cannot be reached (the filesystem's own metadata stays): exit 1 says so.
    assert code == 1 and out["images"]["target_reached"] is False
    assert image not in {i["Id"] for i in api.images(all=True)}


def test_container_created_between_plan_and_removal_keeps_the_image_and_all_its_tags(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """A race: a container appears mid-removal; the removal is skipped and no tag is lost."""
    tags = ["race/a:1", "race/b:2", "race/c:3"]
    image = engine.load(build_image_tar(tags, MiB))
    settings = load_settings(
        None,
        {
            "runtime": {"endpoint": engine.endpoint},
            "state": {"directory": str(tmp_path / "s")},
            "images": {
                "minimum_age": "0s",
                "high_threshold_percent": 1,
                "low_threshold_percent": 0,
            },
        },
    )
    runtime = DockerRuntime(engine.endpoint, settings.runtime.timeout)
    real_delete = runtime._delete_image
    raced: list[str] = []

    def delete_then_race(what: str, ref: str) -> object:
        result = real_delete(what, ref)
        if not raced:  # right after the first tag went, a container starts using the image
            raced.append(create_container(api, image))
        return result

    runtime._delete_image = delete_then_race  # type: ignore[method-assign]
    report = Collector(settings, runtime, StateDir(tmp_path / "s")).cycle()

    (result,) = [r for r in report.image_results if r.id == image]
    assert result.outcome is Outcome.SKIPPED
    assert raced[0][:12] in result.detail
    assert sorted(api.inspect_image(image)["RepoTags"]) == sorted(tags)
    assert api.inspect_container(raced[0])["Image"] == image


def test_history_survives_between_two_processes(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """The first sighting recorded by one process is the one the next process reports."""
    image = engine.load(build_image_tar(["hist:1"], MiB))
    _, first = nodegc_json(engine, tmp_path / "s", "report")
    _, second = nodegc_json(engine, tmp_path / "s", "report")

    seen = decisions(first, "images")[image]["first_seen"]
    assert seen is not None
    assert decisions(second, "images")[image]["first_seen"] == seen
    assert (tmp_path / "s" / "history.json").stat().st_mode & 0o777 == 0o600


def test_bad_configuration_exits_2_with_one_line_before_touching_the_engine(
    tmp_path: Path,
) -> None:
    """low >= high is refused: exit 2, one line naming the setting, no engine contacted."""
    proc = nodegc(
        None,
        tmp_path / "s",
        "once",
        "--image-gc-low-threshold=90",
        endpoint=f"unix://{tmp_path}/no-engine.sock",
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "images.low_threshold_percent" in lines[0] and "90" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()


def test_unreachable_engine_exits_3_with_one_line(tmp_path: Path) -> None:
    """An engine that is not there: exit 3, one line naming the endpoint, no traceback."""
    endpoint = f"unix://{tmp_path}/no-engine.sock"
    proc = nodegc(
        None, tmp_path / "s", "once", endpoint=endpoint, env={"NODEGC_LOG__LEVEL": "error"}
    )
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert endpoint in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["report", "once"])
def test_commands_accept_shared_options_after_the_subcommand(
    engine: IsolatedEngine, busybox: str, tmp_path: Path, command: str
) -> None:
    """`nodegc CMD --config F --output json` works as people type it: both options are obeyed."""
    config = tmp_path / "c.toml"
    config.write_text('[images]\nminimum_age = "0s"\n')
    proc = nodegc(engine, tmp_path / "s", command, "--config", str(config), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    # busybox was loaded a moment ago: too young under the default 2m, not under the file's 0s.
    [decision] = [d for d in data["images"]["decisions"] if d["id"] == busybox]
    assert decision["reason"] == "below-threshold"
