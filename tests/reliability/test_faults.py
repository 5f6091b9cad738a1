"""Faults between nodegc and a real engine: a proxy that fails, cuts, stalls or slows requests.

In every test the scene's kept objects are checked after the fault: nothing the policy keeps is
ever removed, whatever the engine does.
"""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.faultproxy import Fault, FaultProxy
from tests.engine.helpers import Daemon, inventory, wait_for
from tests.reliability.scene import Scene, metric, outcomes

LISTINGS = r"/(containers|images)/json$"


def condition(daemon: Daemon, type_: str) -> str | None:
    """The status of a condition, None while the daemon does not answer yet."""
    code, body = daemon.get("/status")
    if code != 200:
        return None
    return next(c["status"] for c in json.loads(body)["conditions"] if c["type"] == type_)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- the engine is down at start --------------------------------------------------------------
def test_engine_down_at_start_once_exits_3_with_one_line(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient
) -> None:
    """No engine answering: exit 3, one line naming the endpoint, nothing touched."""
    proxy.down()
    before = inventory(api)
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 3, proc.stderr
    assert proxy.endpoint in one_line(proc.stderr)
    assert inventory(api) == before


def test_engine_down_at_start_daemon_stays_up_and_not_ready(
    scene: Scene, proxy: FaultProxy, daemons: list[Daemon], api: docker.APIClient
) -> None:
    """The daemon runs on: healthy, /readyz 503, RuntimeReachable False, runtime_up 0."""
    proxy.down()
    before = inventory(api)
    daemon = scene.daemon(proxy.endpoint).start()
    daemons.append(daemon)
    wait_for(lambda: daemon.get("/readyz")[0] == 503, timeout=120)
    wait_for(lambda: condition(daemon, "RuntimeReachable") == "False", timeout=120)
    # Several GC periods go by without the engine: seen in the cycles that failed, not waited for.
    failed = lambda: metric(daemon.get("/metrics")[1], "nodegc_cycles_total", result="failure")  # noqa: E731
    wait_for(lambda: failed() >= 3, timeout=120)
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.get("/healthz")[0] == 200
    assert daemon.get("/readyz")[0] == 503
    assert metric(daemon.get("/metrics")[1], "nodegc_runtime_up") == 0
    assert inventory(api) == before


def test_daemon_becomes_ready_and_collects_when_the_engine_comes_back(
    scene: Scene, proxy: FaultProxy, daemons: list[Daemon], api: docker.APIClient
) -> None:
    """Engine back after a start without it: ready, RuntimeReachable True, GC done right."""
    proxy.down()
    daemon = scene.daemon(proxy.endpoint).start()
    daemons.append(daemon)
    wait_for(lambda: condition(daemon, "RuntimeReachable") == "False", timeout=120)
    proxy.up()
    wait_for(lambda: daemon.get("/readyz")[0] == 200, timeout=120)
    assert daemon.condition("RuntimeReachable")["status"] == "True"
    present = lambda: {i["Id"] for i in api.images(all=True)}  # noqa: E731
    wait_for(lambda: not present() & set(scene.victims), timeout=120)
    scene.check_nothing_kept_was_lost(api)


def test_engine_lost_under_a_running_daemon_then_back(
    scene: Scene, proxy: FaultProxy, daemons: list[Daemon], api: docker.APIClient
) -> None:
    """Connections cut mid-life (the event stream too): not ready, then ready again."""
    daemon = scene.daemon(proxy.endpoint).start()
    daemons.append(daemon)
    daemon.wait_ready()
    proxy.down()
    wait_for(lambda: daemon.get("/readyz")[0] == 503, timeout=120)
    assert daemon.condition("RuntimeReachable")["status"] == "False"
    proxy.up()
    wait_for(lambda: daemon.get("/readyz")[0] == 200, timeout=120)
    assert daemon.get("/healthz")[0] == 200
    scene.check_nothing_kept_was_lost(api)


# -- failing listings -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "fault"),
    [
        (r"/containers/json$", Fault.error(500)),
        (r"/images/json$", Fault.error(500)),
        (r"/containers/json$", Fault.drop()),
        (r"/images/json$", Fault.drop()),
        (r"/images/json$", Fault.error(404)),
        (r"/containers/json$", Fault.error(409)),
    ],
    ids=["containers-500", "images-500", "containers-cut", "images-cut", "images-404",
         "containers-409"],
)  # fmt: skip
def test_failing_listing_removes_nothing(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient, path: str, fault: Fault
) -> None:
    """A listing that fails or is cut: exit 3, one line, the engine's inventory unchanged."""
    proxy.add(fault, method="GET", path=path)
    before = inventory(api)
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 3, proc.stderr
    one_line(proc.stderr)
    assert proxy.count("DELETE") == 0
    assert inventory(api) == before


def test_image_listing_failing_after_container_gc_removes_no_image(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient
) -> None:
    """The second look (after container GC) fails: no image goes; the line says what went."""
    proxy.add(Fault.error(500), method="GET", path=r"/images/json$", skip=1)
    images_before = inventory(api)["images"]
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 3, proc.stderr
    line = one_line(proc.stderr)
    # the dead containers did go, and it says so
    assert "after 3 removal attempts this cycle: 3 removed, 0 failed" in line
    audited = [json.loads(x) for x in (scene.state / "audit.jsonl").read_text().splitlines()]
    assert {e["id"] for e in audited if e["outcome"] == "removed"} == set(scene.dead)
    assert inventory(api)["images"] == images_before
    assert proxy.count("DELETE", r"/images/") == 0
    scene.check_nothing_kept_was_lost(api)


def test_daemon_with_a_failing_listing_reports_it_and_removes_nothing(
    scene: Scene, proxy: FaultProxy, daemons: list[Daemon], api: docker.APIClient
) -> None:
    """Listings answer 500: the daemon runs on, GC conditions False, nothing removed."""
    rule = proxy.add(Fault.error(500), method="GET", path=r"/containers/json$")
    before = inventory(api)
    daemon = scene.daemon(proxy.endpoint).start()
    daemons.append(daemon)
    wait_for(lambda: daemon.get("/healthz")[0] == 200, timeout=120)
    wait_for(lambda: condition(daemon, "ContainerGCSucceeded") == "False", timeout=120)
    assert rule.hits >= 2
    assert daemon.get("/readyz")[0] == 503
    failures = metric(daemon.get("/metrics")[1], "nodegc_cycles_total", result="failure")
    assert failures >= 1
    assert proxy.count("DELETE") == 0
    assert inventory(api) == before


# -- failing removals -------------------------------------------------------------------------
def test_failing_removals_do_not_stop_the_others(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient
) -> None:
    """Some DELETEs answer 500: the rest go; failures are in the output and exit 1."""
    bad_image, bad_container = scene.victims[0], scene.dead[0]
    proxy.add(Fault.error(500), method="DELETE", path=f"/images/{bad_image}$")
    proxy.add(Fault.error(500), method="DELETE", path=f"/containers/{bad_container}$")
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["failures"] == 2
    images, containers = outcomes(report, "images"), outcomes(report, "containers")
    assert images[bad_image] == "failed" and containers[bad_container] == "failed"
    assert all(images[i] == "removed" for i in scene.victims[1:])
    assert all(containers[c] == "removed" for c in scene.dead[1:])
    left = inventory(api)
    assert set(left["images"]) & set(scene.victims) == {bad_image}
    assert set(left["containers"]) & set(scene.dead) == {bad_container}
    scene.check_nothing_kept_was_lost(api)


def test_removal_failing_half_way_through_the_tags_keeps_every_tag(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient
) -> None:
    """A three-tag image whose second untag answers 500: failed, and it keeps all three tags."""
    proxy.add(Fault.error(500), method="DELETE", path=r"/images/multi/b:2$")
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 1, proc.stderr
    assert outcomes(json.loads(proc.stdout), "images")[scene.multi_tag_victim] == "failed"
    tags = sorted(api.inspect_image(scene.multi_tag_victim)["RepoTags"])
    assert tags == scene.tags[scene.multi_tag_victim]
    scene.check_nothing_kept_was_lost(api)


GONE_ANSWERS = [
    (500, "unrecognized image ID sha256:0123"),  # Docker, an image removed meanwhile
    (500, "No such image: sha256:0123"),
    (500, "sha256:0123: image not known"),  # Podman
]


@pytest.mark.parametrize(
    ("status", "message", "detail"),
    [(409, None, "in use now"), (404, None, "already gone")]
    + [(status, message, "already gone") for status, message in GONE_ANSWERS],
    ids=["409", "404", "500-unrecognized", "500-no-such-image", "500-podman-not-known"],
)
def test_refused_or_missing_removal_is_skipped_not_failed(
    scene: Scene,
    proxy: FaultProxy,
    api: docker.APIClient,
    status: int,
    message: str | None,
    detail: str,
) -> None:
    """409 on a DELETE is "in use now"; 404, and the 500s engines answer for an image that is
    gone, "already gone": skipped, exit 0, never forced."""
    target = scene.victims[0]
    proxy.add(Fault.error(status, message), method="DELETE", path=f"/images/{target}$")
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    (decision,) = [d for d in report["images"]["decisions"] if d["id"] == target]
    assert decision["outcome"] == "skipped" and decision["detail"].startswith(detail)
    assert not any("force=True" in t or "force=1" in t for _, t in proxy.targets)
    scene.check_nothing_kept_was_lost(api)


def test_a_dead_container_the_engine_says_is_gone_is_skipped_not_failed(
    scene: Scene, proxy: FaultProxy
) -> None:
    """A container DELETE answered 500 "No such container" (the engine's words for one removed
    meanwhile): skipped "already gone", exit 0, the audit agrees."""
    target = scene.dead[0]
    proxy.add(
        Fault.error(500, f"No such container: {target}"), method="DELETE",
        path=f"/containers/{target}$",
    )  # fmt: skip
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 0, proc.stderr
    assert outcomes(json.loads(proc.stdout), "containers")[target] == "skipped"
    audit = [json.loads(line) for line in (scene.state / "audit.jsonl").read_text().splitlines()]
    (entry,) = [e for e in audit if e["id"] == target]
    assert entry["outcome"] == "skipped" and entry["detail"].startswith("already gone")


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [(Fault.drop(), "removed"), (Fault.stall(), "failed")],
    ids=["answer-cut-short", "never-answered"],
)
def test_a_removal_without_a_whole_answer_is_looked_up_and_the_rest_goes_on(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient, fault: Fault, outcome: str
) -> None:
    """A DELETE whose answer is cut short (the engine carried it out) or never comes (it never
    reached the engine; given up after runtime.timeout) is never sent again: a look (an
    inspect) says whether the image is gone: `removed` for the first, `failed` for the second
    (the image kept whole); the other removals go."""
    proxy.add(fault, method="DELETE", path=f"/images/{scene.victims[0]}$")
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == (0 if outcome == "removed" else 1), proc.stderr
    images = outcomes(json.loads(proc.stdout), "images")
    assert images[scene.victims[0]] == outcome
    assert [m for m, p in proxy.requests if m == "DELETE" and scene.victims[0] in p] == ["DELETE"]
    assert all(images[i] == "removed" for i in scene.victims[1:])
    scene.check_nothing_kept_was_lost(api)


def test_daemon_counts_failed_removals_in_metrics_and_conditions(
    scene: Scene, proxy: FaultProxy, daemons: list[Daemon], api: docker.APIClient
) -> None:
    """nodegc_removal_failures_total counts 500s; ImageGCSucceeded says RemovalsFailed."""
    proxy.add(Fault.error(500), method="DELETE", path=f"/images/{scene.victims[0]}$")
    daemon = scene.daemon(proxy.endpoint).start()
    daemons.append(daemon)
    daemon.wait_ready()

    def failures() -> float:
        return metric(daemon.get("/metrics")[1], "nodegc_removal_failures_total", kind="image")

    wait_for(lambda: failures() >= 1, timeout=120)
    # Each removal is counted as it finishes; the condition is set when the cycle ends.
    wait_for(lambda: daemon.condition("ImageGCSucceeded")["status"] != "Unknown", timeout=120)
    condition = daemon.condition("ImageGCSucceeded")
    assert condition["status"] == "False" and condition["reason"] == "RemovalsFailed"
    present = {i["Id"] for i in api.images(all=True)}
    assert present & set(scene.victims) == {scene.victims[0]}
    scene.check_nothing_kept_was_lost(api)


# -- time limits ------------------------------------------------------------------------------
def test_stalled_listing_ends_at_runtime_timeout_with_exit_3(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient
) -> None:
    """runtime.timeout = 2s and a listing that never answers: exit 3 after about 2 s."""
    proxy.add(Fault.stall(), method="GET", path=r"/containers/json$")
    before = inventory(api)
    started = time.monotonic()
    # Timed from the stalled request on, not from the start: a busy machine may take seconds to
    # start the process, which is no part of the runtime timeout.
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(scene.once, proxy.endpoint, timeout=300)
        stalled_at = wait_for(
            lambda: proxy.count("GET", r"/containers/json$") and time.monotonic(), timeout=300
        )
        proc = running.result()
    ended = time.monotonic()
    assert proc.returncode == 3, proc.stderr
    assert "too slow" in one_line(proc.stderr) or "timed out" in proc.stderr
    assert ended - started >= 2.0, ended - started
    assert ended - stalled_at < 10.0, ended - stalled_at
    assert inventory(api) == before


def test_slow_engine_within_the_timeout_is_not_an_error(
    scene: Scene, proxy: FaultProxy, api: docker.APIClient
) -> None:
    """0.3 s added to every request under a 2 s limit: the cycle succeeds as without it."""
    proxy.add(Fault.latency(0.3))
    proc = scene.once(proxy.endpoint)
    assert proc.returncode == 0, proc.stderr
    images = outcomes(json.loads(proc.stdout), "images")
    assert all(images[i] == "removed" for i in scene.victims)
    scene.check_nothing_kept_was_lost(api)


def test_engine_stopped_for_real_mid_daemon_and_restarted(
    scene: Scene, engine: IsolatedEngine, proxy: FaultProxy, daemons: list[Daemon],
    api: docker.APIClient,
) -> None:  # fmt: skip
    """The real engine behind the proxy stops and starts: the daemon follows it."""
    daemon = scene.daemon(proxy.endpoint).start()
    daemons.append(daemon)
    daemon.wait_ready()
    engine.stop()
    # Stopping the engine stopped the running container: it and its image may go now.
    scene.kept_containers = {k: v for k, v in scene.kept_containers.items() if v != "running"}
    scene.kept_images = {k: v for k, v in scene.kept_images.items() if "running" not in v}
    wait_for(lambda: daemon.get("/readyz")[0] == 503, timeout=120)
    engine.start()
    wait_for(lambda: daemon.get("/readyz")[0] == 200, timeout=120)
    with engine.api() as fresh:
        # Ready again, it goes on: the victims a removal cut short by the stop are collected
        # after the restart (checked once they are gone, while the daemon runs).
        present = lambda: {i["Id"] for i in fresh.images(all=True)}  # noqa: E731
        wait_for(lambda: not present() & set(scene.victims), timeout=120)
    # SIGTERM: the removal in flight finishes, no other starts; then look at what was kept.
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(60)
    with engine.api() as fresh:
        scene.check_nothing_kept_was_lost(fresh)
