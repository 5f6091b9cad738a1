"""Build cache and dead containers' writable layers on a real, isolated dockerd.

Builds go through a docker CLI that builds with BuildKit (`docker build --network none`: the test
engines run with `--bridge=none`): one with the buildx plugin (Debian 13: `docker-cli` and
`docker-buildx`), or a client from before Docker 23 (Debian 12's 20.10 `/usr/bin/docker`), or
the engine root's CLI for an engine run from one (`nodegc.testing.buildkit`). Where no CLI can
build, the tests are skipped, and fail under CI. Every figure is checked against statvfs of the
engine's own loop-mounted ext4.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import psutil
import pytest

from nodegc.runtime.docker import DockerRuntime
from nodegc.testing.buildkit import build_command, buildkit_cli
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.rooted import RootedEngine
from tests.conftest import unavailable
from tests.engine.helpers import MiB, nodegc, wait_for

BASE = "nodegc-test/busybox:latest"
# Records used a moment ago count: the tests' builds are seconds old.
SETTINGS = [
    "--image-gc-high-threshold",
    "85",
    "--image-gc-low-threshold",
    "80",
    "--minimum-image-ttl-duration",
    "0s",
]
ENV = {"NODEGC_BUILD_CACHE__MINIMUM_AGE": "0s"}


@pytest.fixture(autouse=True)
def _buildkit_cli(engine: IsolatedEngine) -> None:
    """The tests need a CLI that builds with BuildKit (never skipped silently under CI)."""
    if not isinstance(engine, RootedEngine) and buildkit_cli() is None:
        unavailable("BuildKit builds need a docker CLI with buildx (or one older than 23.0)")


# A held build's step waits in `sleep HOLD` until the test releases it (kills that sleep, which
# only this test process's builds run: the number is its own), never for a time that a busy
# machine could outlast.
HOLD = 100_000 + os.getpid()


def build(
    engine: IsolatedEngine, tmp_path: Path, tag: str, mib: int, *, hold: bool = False
) -> subprocess.Popen[str]:
    """Start a BuildKit build of `tag`: one RUN step writing `mib` MiB of random data (then, with
    `hold`, waiting inside the step until `release_held_builds`). The caller waits for it."""
    name = tag.replace(":", "-").replace("/", "-")
    context = engine.root / f"ctx-{name}"  # the one host dir an engine root's CLI sees too
    context.mkdir()
    step = f"dd if=/dev/urandom of=/blob-{name} bs=1M count={mib}"
    if hold:
        step += f" && (sleep {HOLD} || true)"
    (context / "Dockerfile").write_text(f"FROM {BASE}\nRUN {step}\n")
    argv, env = build_command(engine, tag, context)
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def release_held_builds() -> int:
    """End the wait of every held build step (`sleep HOLD`, this test process's own): each step
    then goes on and its build finishes. The number of steps released."""
    released = 0
    for proc in psutil.process_iter(["cmdline"]):
        if proc.info["cmdline"] == ["sleep", str(HOLD)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
                released += 1
    return released


def built(engine: IsolatedEngine, tmp_path: Path, tag: str, mib: int) -> None:
    proc = build(engine, tmp_path, tag, mib)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"build of {tag} failed: {err}"


def finish_time(api: docker.APIClient, container_id: str) -> tuple[str, str]:
    """The engine's FinishedAt (UTC, RFC 3339 with up to 9 digits, trailing zeros trimmed), as a
    key that sorts in time order: (seconds part, nanoseconds as 9 digits)."""
    value = api.inspect_container(container_id)["State"]["FinishedAt"]
    whole, _, fraction = value.removesuffix("Z").partition(".")
    return whole, fraction.ljust(9, "0")


def nodegc_json(
    engine: IsolatedEngine, state: Path, *args: str, env: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    proc = nodegc(engine, state, *args, "--output", "json", env=env)
    assert proc.stdout, f"no output; stderr:\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def records(api: docker.APIClient) -> list[dict]:
    return list(api.df().get("BuildCache") or [])


def free_bytes(engine: IsolatedEngine) -> int:
    st = os.statvfs(engine.mountpoint)
    return st.f_bavail * st.f_frsize


def usage(engine: IsolatedEngine) -> int:
    st = os.statvfs(engine.mountpoint)
    return 100 - (st.f_bavail * 100) // st.f_blocks


@pytest.fixture
def base(engine: IsolatedEngine, busybox: str) -> str:
    return busybox


def test_cache_records_are_listed_and_become_unshared_when_their_image_goes(
    engine: IsolatedEngine, api: docker.APIClient, base: str, tmp_path: Path
) -> None:
    """The adapter reads `/system/df` in one request; a BuildKit-built image's layer is a shared
    record, and unshared once the image is removed; prune by id removes exactly that record and
    the disk gets its bytes back."""
    built(engine, tmp_path, "app:1", 12)
    runtime = DockerRuntime(engine.endpoint, timeout=timedelta(seconds=30))
    before = runtime.requests
    usage_ = runtime.disk_usage(build_cache=True, container_sizes=False)
    assert runtime.requests - before <= 2  # the listing (+ the client's version query once)
    layer = [r for r in usage_.build_cache or () if r.size_bytes == 12 * MiB]
    assert len(layer) == 1 and layer[0].shared and not layer[0].in_use
    api.remove_image("app:1")
    st = os.statvfs(engine.mountpoint)
    free_before = st.f_bavail * st.f_frsize
    after = runtime.disk_usage(build_cache=True, container_sizes=False).build_cache or ()
    (record,) = [r for r in after if r.id == layer[0].id]
    assert not record.shared
    freed = runtime.remove_build_cache(record)
    st = os.statvfs(engine.mountpoint)
    really = st.f_bavail * st.f_frsize - free_before
    assert freed == 12 * MiB
    assert abs(really - freed) < 1 * MiB, (really, freed)
    assert record.id not in {r["ID"] for r in records(api)}
    runtime.close()


def test_a_disk_filled_by_build_cache_comes_back_to_low_in_one_once(
    engine: IsolatedEngine, api: docker.APIClient, base: str, tmp_path: Path
) -> None:
    """The CI host: three builds, their images removed by the job, the disk at 91%. The dry run
    plans build cache records (least recently used first) down to the low threshold; one `once`
    gets there, before touching any image, and says what the engine reclaimed."""
    for n in range(3):
        built(engine, tmp_path, f"ci/job:{n}", 30)
    for n in range(3):
        api.remove_image(f"ci/job:{n}")
    engine.fill_to_percent(91)
    assert usage(engine) >= 91
    state = tmp_path / "state"

    code, report = nodegc_json(engine, state, "report", *SETTINGS, env=ENV)
    assert code == 0
    cache = report["build_cache"]
    planned = [d for d in cache["decisions"] if d["action"] == "remove"]
    assert planned and all(d["reason"] == "space" for d in planned)
    assert cache["bytes_reclaimable"] >= 90 * MiB
    assert report["images"]["projected_usage_percent"] <= 80
    assert not [d for d in report["images"]["decisions"] if d["action"] == "remove"]

    code, dry = nodegc_json(engine, state, "once", "--dry-run", *SETTINGS, env=ENV)
    assert code == 0 and dry["images"]["target_reached"]
    assert {d["id"] for d in dry["build_cache"]["decisions"] if d["outcome"] == "would-remove"}

    images_before = {i["Id"] for i in api.images()}
    free_before = free_bytes(engine)
    code, once = nodegc_json(engine, state, "once", *SETTINGS, env=ENV)
    assert code == 0, once
    assert usage(engine) <= 80
    assert once["filesystem_after"]["usage_percent"] == usage(engine)
    removed = [d for d in once["build_cache"]["decisions"] if d["outcome"] == "removed"]
    said = sum(d["frees_bytes"] for d in removed)
    assert abs((free_bytes(engine) - free_before) - said) < 2 * MiB, said
    assert {i["Id"] for i in api.images()} == images_before  # build cache first: enough
    history = nodegc(engine, state, "history", "--output", "json")
    assert '"build-cache"' in history.stdout


def test_unused_buildkit_images_and_their_cache_come_back_in_one_once(
    engine: IsolatedEngine, api: docker.APIClient, base: str, tmp_path: Path
) -> None:
    """Images BuildKit built, unused, disk at 91%: removing an image alone frees almost nothing
    (its layer is a shared cache record). The dry run knows: the images free ~0 and the records
    they unshare free the layers; one `once` removes the images, then the records, and reaches
    the low threshold."""
    for n, mib in enumerate((25, 30, 35)):
        built(engine, tmp_path, f"app/built:{n}", mib)
    engine.fill_to_percent(91)
    state = tmp_path / "state"
    code, report = nodegc_json(engine, state, "report", *SETTINGS, env=ENV)
    images = [
        d
        for d in report["images"]["decisions"]
        if d["action"] == "remove" and any(t.startswith("app/built:") for t in d["tags"])
    ]
    assert len(images) == 3 and all(d["frees_bytes"] < 1 * MiB for d in images)
    unshared = [
        d
        for d in report["build_cache"]["decisions"]
        if d["action"] == "remove" and d["size_bytes"] >= 25 * MiB
    ]
    assert unshared, report["build_cache"]
    assert report["images"]["projected_usage_percent"] <= 80

    free_before = free_bytes(engine)
    code, once = nodegc_json(engine, state, "once", *SETTINGS, env=ENV)
    assert code == 0, once
    assert usage(engine) <= 80
    removed = [d for d in once["build_cache"]["decisions"] if d["outcome"] == "removed"]
    assert any(d["size_bytes"] >= 25 * MiB for d in removed)
    said = sum(d["frees_bytes"] for d in removed) + once["images"]["bytes_freed"]
    assert abs((free_bytes(engine) - free_before) - said) < 2 * MiB, said


def test_a_build_running_during_a_cycle_is_not_broken(
    engine: IsolatedEngine, api: docker.APIClient, base: str, tmp_path: Path
) -> None:
    """Records a running build holds are `in-use`: kept by the plan, refused by the engine if
    they were asked for; the build succeeds and its image is there."""
    built(engine, tmp_path, "old:1", 20)
    api.remove_image("old:1")
    engine.fill_to_percent(91)
    running = build(engine, tmp_path, "busy:1", 3, hold=True)
    try:
        deadline = time.monotonic() + 300
        while not any(r["InUse"] for r in records(api)):
            assert time.monotonic() < deadline and running.poll() is None, "the build never started"
            time.sleep(0.1)
        _code, once = nodegc_json(engine, tmp_path / "state", "once", *SETTINGS, env=ENV)
    finally:
        wait_for(release_held_builds, timeout=300)  # the build held until now, however slow
    in_use = [d for d in once["build_cache"]["decisions"] if d["reason"] == "in-use"]
    assert in_use and all(d["outcome"] == "kept" for d in in_use)
    _, err = running.communicate(timeout=300)
    assert running.returncode == 0, err
    assert api.images(name="busy")


def test_dead_containers_writable_layers_go_under_pressure_longest_stopped_first(
    engine: IsolatedEngine, api: docker.APIClient, base: str, tmp_path: Path
) -> None:
    """Three dead containers (each its own evict unit, so the caps keep them) with 60 MB in their
    writable layers, disk at 93%, no removable image: the dry run plans `disk-pressure` removals
    longest stopped first, never the `nodegc.io/keep=true` one; one `once` reaches the low
    threshold."""
    ids = []
    for _n in range(3):  # each runs to its end before the next starts (run_container waits)
        ids.append(
            engine.run_container(base, ["dd", "if=/dev/urandom", "of=/data", "bs=1M", "count=60"])
        )
    finished = [finish_time(api, i) for i in ids]
    assert finished == sorted(set(finished)), finished  # stopped one after the other
    kept = engine.run_container(
        base,
        ["dd", "if=/dev/urandom", "of=/data", "bs=1M", "count=5"],
        labels={"nodegc.io/keep": "true"},
    )
    engine.fill_to_percent(93)
    state = tmp_path / "state"
    code, report = nodegc_json(engine, state, "report", *SETTINGS, env=ENV)
    by_id = {d["id"]: d for d in report["containers"]["decisions"]}
    assert by_id[kept]["reason"] == "keep-label"
    pressure = [
        d["id"] for d in report["containers"]["decisions"] if d["reason"] == "disk-pressure"
    ]
    # Longest stopped first: the ones planned are the oldest, and not all three are needed.
    assert pressure and set(pressure) == set(ids[: len(pressure)]) and len(pressure) < 3
    assert report["images"]["projected_usage_percent"] <= 80

    code, once = nodegc_json(engine, state, "once", *SETTINGS, env=ENV)
    assert code == 0, once
    assert usage(engine) <= 80
    left = {c["Id"] for c in api.containers(all=True)}
    assert kept in left and ids[0] not in left
    outcomes = {d["id"]: d["outcome"] for d in once["containers"]["decisions"]}
    assert outcomes[ids[0]] == "removed"


def test_below_the_thresholds_no_build_cache_or_size_request(
    engine: IsolatedEngine, base: str, tmp_path: Path
) -> None:
    """A cycle below the high threshold never asks for the build cache or sizes."""
    from nodegc.collect.cycle import Collector
    from nodegc.config import load_settings
    from nodegc.state.store import StateDir

    settings = load_settings(
        overrides={
            "runtime": {"endpoint": engine.endpoint},
            "state": {"directory": str(tmp_path / "state")},
        }
    )
    runtime = DockerRuntime(engine.endpoint, settings.runtime.timeout)
    asked: list[str] = []
    original = runtime.disk_usage

    def spy(**kw: bool):
        asked.append(str(kw))
        return original(**kw)

    runtime.disk_usage = spy  # type: ignore[method-assign]
    gc = Collector(settings, runtime, StateDir(settings.state.directory))
    gc.cycle()
    counts = []
    for _ in range(2):
        before = runtime.requests
        gc.cycle()
        counts.append(runtime.requests - before)
    assert asked == []
    assert counts[0] == counts[1]
    runtime.close()
