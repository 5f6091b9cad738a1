"""`nodegc run` as a subprocess against a real, isolated engine, with short periods."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import docker
from prometheus_client.parser import text_string_to_metric_families

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import build_image_tar, busybox_image_tar
from tests.engine.helpers import Daemon, MiB, nodegc_json, wait_for

POD = {"io.kubernetes.pod.uid": "uid-9", "io.kubernetes.container.name": "app"}

FAST = """
[containers]
gc_period = "1s"
[images]
gc_period = "1h"
pressure_check_period = "1s"
minimum_age = "0s"
"""


def start(daemons: list[Daemon], engine: IsolatedEngine, state: Path, config: str = FAST) -> Daemon:
    daemon = Daemon(engine, state, config).start()
    daemons.append(daemon)
    daemon.wait_ready()
    return daemon


def test_dead_containers_over_the_caps_go_within_two_container_periods(
    engine: IsolatedEngine, busybox: str, daemons: list[Daemon], tmp_path: Path
) -> None:
    """Three dead containers of one pod container: two go, the newest stays."""
    dead = engine.create_dead_containers(busybox, 3, lambda i: POD, workers=1)
    start(daemons, engine, tmp_path / "s")
    with engine.api() as api:
        wait_for(lambda: {c["Id"] for c in api.containers(all=True)} == {dead[-1]}, timeout=120)


def test_disk_filled_past_the_high_threshold_is_relieved_within_15_seconds(
    engine: IsolatedEngine, daemons: list[Daemon], tmp_path: Path
) -> None:
    """Crossing the high threshold starts image GC at once: usage is back at the low one fast."""
    engine.load_many(build_image_tar([f"bulk/{n}:1"], 30 * MiB) for n in range(5))
    daemon = start(daemons, engine, tmp_path / "s")
    engine.fill_to_percent(87)
    crossed = time.monotonic()
    wait_for(lambda: engine.usage_percent() <= 80, timeout=120)
    relief = time.monotonic() - crossed
    assert relief < 15
    wait_for(lambda: daemon.condition("ImageGCSucceeded")["status"] == "True", timeout=120)


def test_image_used_only_between_two_cycles_ranks_as_recently_used(
    engine: IsolatedEngine, daemons: list[Daemon], tmp_path: Path
) -> None:
    """A container that lived and went between cycles still marks its image used (events)."""
    image = engine.load(busybox_image_tar(["brief:1"], extra_size_bytes=MiB))
    state = tmp_path / "s"
    start(daemons, engine, state, FAST.replace('gc_period = "1s"', 'gc_period = "1h"'))
    with engine.api() as api:
        container = engine.run_container(image, ["true"])
        api.remove_container(container)

    def last_used() -> str | None:
        history = json.loads((state / "history.json").read_text())
        return history["images"].get(image, {}).get("last_used")

    assert wait_for(last_used, timeout=120)


def test_history_survives_kill_9_and_restart(
    engine: IsolatedEngine, daemons: list[Daemon], tmp_path: Path
) -> None:
    """After SIGKILL, a new daemon reads the first sighting the old one recorded."""
    image = engine.load(build_image_tar(["kept:1"], MiB))
    state = tmp_path / "s"
    first = start(daemons, engine, state)
    wait_for(lambda: (state / "history.json").exists(), timeout=120)
    seen = json.loads((state / "history.json").read_text())["images"][image]["first_seen"]
    first.signal(signal.SIGKILL)
    first.wait(5)

    start(daemons, engine, state)
    _, report = nodegc_json(engine, state, "report")
    decided = {d["id"]: d for d in report["images"]["decisions"]}
    assert decided[image]["first_seen"].replace("Z", "+00:00") == seen


def test_sigterm_exits_0_within_10_seconds(
    engine: IsolatedEngine, daemons: list[Daemon], tmp_path: Path
) -> None:
    """SIGTERM: persist and exit 0, quickly."""
    daemon = start(daemons, engine, tmp_path / "s")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    assert any(entry.get("msg") == "stopped" for entry in daemon.logs())


def test_second_instance_on_the_same_state_exits_2_naming_the_holder(
    engine: IsolatedEngine, daemons: list[Daemon], tmp_path: Path
) -> None:
    """One daemon per state directory: the second says which pid holds it."""
    first = start(daemons, engine, tmp_path / "s")
    second = Daemon(engine, tmp_path / "s", FAST).start()
    daemons.append(second)
    assert second.wait(10) == 2
    assert first.proc is not None
    assert f"pid {first.proc.pid}" in second.log.read_text()


def test_metrics_parse_with_the_prometheus_parser(
    engine: IsolatedEngine, busybox: str, daemons: list[Daemon], tmp_path: Path
) -> None:
    """/metrics is valid exposition text and counts what the daemon removed."""
    engine.create_dead_containers(busybox, 2, lambda i: POD, workers=1)
    daemon = start(daemons, engine, tmp_path / "s")

    def removed() -> float:
        families = {f.name: f for f in text_string_to_metric_families(daemon.get("/metrics")[1])}
        return sum(
            s.value
            for s in families["nodegc_removed"].samples
            if s.labels.get("kind") == "container" and s.name == "nodegc_removed_total"
        )

    assert wait_for(lambda: removed() == 1, timeout=120)
    families = {f.name for f in text_string_to_metric_families(daemon.get("/metrics")[1])}
    assert {"nodegc_runtime_up", "nodegc_filesystem_usage_ratio", "nodegc_images"} <= families


def test_engine_restart_under_a_running_daemon_flips_readiness_and_recovers(
    engine: IsolatedEngine, daemons: list[Daemon], tmp_path: Path
) -> None:
    """Engine down: not ready, RuntimeReachable False; engine back: ready again, True."""
    daemon = start(daemons, engine, tmp_path / "s")
    assert daemon.condition("RuntimeReachable")["status"] == "True"
    engine.stop()
    wait_for(lambda: daemon.get("/readyz")[0] == 503, timeout=120)
    down = daemon.condition("RuntimeReachable")
    assert down["status"] == "False" and down["reason"] == "Unreachable"
    assert daemon.get("/healthz")[0] == 200  # the loop itself is fine

    engine.start()
    wait_for(lambda: daemon.get("/readyz")[0] == 200, timeout=120)
    assert daemon.condition("RuntimeReachable")["status"] == "True"
    unreachable_logs = [e for e in daemon.logs() if "unreachable" in str(e.get("msg", ""))]
    assert 1 <= len(unreachable_logs) <= 2  # once per state change, not once a second


def test_sighup_with_an_invalid_configuration_keeps_the_old_one(
    engine: IsolatedEngine, daemons: list[Daemon], tmp_path: Path
) -> None:
    """A reload that fails validation is refused with a log line; the daemon carries on."""
    daemon = start(daemons, engine, tmp_path / "s")
    daemon.config.write_text(FAST.replace("[images]", "[images]\nlow_threshold_percent = 95"))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: any("reload refused" in str(e.get("msg")) for e in daemon.logs()), timeout=120)
    assert daemon.get("/readyz")[0] == 200
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_running_container_is_never_touched_by_the_daemon(
    engine: IsolatedEngine, api: docker.APIClient, busybox: str, daemons: list[Daemon],
    tmp_path: Path,
) -> None:  # fmt: skip
    """A running container of a pod survives many container cycles."""
    running = engine.run_container(busybox, ["sleep", "60"], labels=POD, wait=False)
    daemon = start(daemons, engine, tmp_path / "s")

    def container_cycles() -> float:
        text = daemon.get("/metrics")[1]
        return sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "nodegc_cycles_total" and s.labels.get("kind") == "container"
        )

    wait_for(lambda: container_cycles() >= 3, timeout=120)
    assert api.inspect_container(running)["State"]["Running"] is True
