"""A real `/metrics` scrape of `nodegc run` against an isolated dockerd, after it relieved real
disk pressure: promtool (Prometheus' own linter) accepts it, and the kubelet-named image GC
families (KEP-6053) are on it with values the filesystem shows.

The same scrape checks the chart's Grafana dashboard: every query it holds names only metrics
the daemon really exports, and Prometheus' own parser (promtool check rules) accepts it.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import build_image_tar, busybox_image_tar
from tests.conftest import ENGINE_SIZE_MB, require_engine
from tests.engine.helpers import Daemon, MiB, wait_for
from tests.helm.dashboard import DASHBOARD_FILE, dashboard_queries

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = ROOT / ".cache/promtool/usr/bin/promtool"
POD = {"io.kubernetes.pod.uid": "uid-1", "io.kubernetes.container.name": "app"}
CONFIG = """
[containers]
gc_period = "1s"
[images]
gc_period = "1h"
pressure_check_period = "1s"
minimum_age = "0s"
"""
METRIC_NAME = re.compile(r"\bnodegc_[A-Za-z0-9_]+")
KEP_FAMILIES = {
    "nodegc_image_gc_attempts_total": "counter",
    "nodegc_image_gc_duration_seconds": "histogram",
    "nodegc_image_gc_target_bytes": "histogram",
    "nodegc_image_gc_freed_bytes": "histogram",
    "nodegc_image_deletions_total": "counter",
    "nodegc_skipped_images_total": "counter",
    "nodegc_image_fs_usage_percent": "gauge",
}


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def relieved_scrape(engine: IsolatedEngine, daemon: Daemon) -> str:
    """Wait until the daemon relieved the disk filled past 85 % and counted it; the scrape."""

    def counted() -> bool:
        text = daemon.get("/metrics")[1]
        return bool(
            sample(text, "nodegc_image_gc_attempts_total", reason="space", result="success")
        )

    wait_for(counted, timeout=60)
    # The disk stays still now: the gauge shows what statvfs shows (at its next look).
    wait_for(
        lambda: (
            sample(daemon.get("/metrics")[1], "nodegc_image_fs_usage_percent")
            == engine.usage_percent()
        ),
        timeout=10,
    )
    return daemon.get("/metrics")[1]


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`/metrics` of a daemon that removed a dead container, and relieved 87 % down to <= 80 %
    by removing unused images (one in use stays: a skipped image)."""
    require_engine()
    tmp = tmp_path_factory.mktemp("scrape")
    with IsolatedEngine(size_mb=ENGINE_SIZE_MB) as engine:
        engine.load_many(build_image_tar([f"bulk/{n}:1"], 30 * MiB) for n in range(4))
        used = engine.load(busybox_image_tar(["app:1"], extra_size_bytes=MiB))
        engine.create_dead_containers(used, 2, lambda i: POD, workers=1)
        daemon = Daemon(engine, tmp / "state", CONFIG).start()
        try:
            daemon.wait_ready()
            engine.fill_to_percent(87)
            yield relieved_scrape(engine, daemon)
        finally:
            daemon.stop()


def test_promtool_check_metrics_accepts_a_real_scrape(scrape: str) -> None:
    """Prometheus' linter: names, suffixes, types, HELP on every family (exit 0, no output)."""
    assert PROMTOOL.is_file(), f"{PROMTOOL} missing: run scripts/install-deps"
    done = subprocess.run(
        [str(PROMTOOL), "check", "metrics"], input=scrape, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kubelet_named_families_are_on_the_scrape_with_their_types(scrape: str) -> None:
    """Every KEP-6053 family, under its exact name, with a HELP line and the expected type."""
    types = {}
    for line in scrape.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
    assert {name: types.get(name) for name in KEP_FAMILIES} == KEP_FAMILIES
    for name in KEP_FAMILIES:
        assert f"# HELP {name} " in scrape


def test_the_scrape_counts_what_the_daemon_did(scrape: str) -> None:
    """Image deletions for space happened, the target and the freed bytes were observed, and
    the image in use (by the dead container kept by the cap) was skipped as in_use."""
    deleted = sample(scrape, "nodegc_image_deletions_total", reason="space", result="success")
    assert deleted and deleted >= 1
    assert (sample(scrape, "nodegc_image_gc_target_bytes_count") or 0) >= 1
    freed = sample(scrape, "nodegc_image_gc_freed_bytes_sum")
    target = sample(scrape, "nodegc_image_gc_target_bytes_sum")
    assert freed is not None and target is not None and freed >= target > 0
    assert (sample(scrape, "nodegc_skipped_images_total", reason="in_use") or 0) >= 1


def test_every_dashboard_query_names_metrics_the_scrape_holds(scrape: str) -> None:
    """The chart's dashboard: valid JSON, and each query's metric names are on the scrape (a
    renamed or misspelt metric would draw an empty panel)."""
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    exported = {s.name for f in text_string_to_metric_families(scrape) for s in f.samples}
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 9
    for expr in queries:
        names = set(METRIC_NAME.findall(expr))
        assert names and names <= exported, (expr, names - exported)


def test_every_dashboard_query_is_promql_to_promtool(tmp_path: Path) -> None:
    """Prometheus' own parser: the queries as recording rules pass `promtool check rules`."""
    queries = dashboard_queries(json.loads(DASHBOARD_FILE.read_text(encoding="utf-8")))
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{n}", "expr": q} for n, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "rules.json"  # JSON is YAML
    path.write_text(json.dumps(rules))
    done = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
