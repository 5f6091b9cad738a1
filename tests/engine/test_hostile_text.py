"""Untrusted text from a real dockerd (issue 20, item 5): container labels with ESC sequences,
BEL, CR and a newline that forges a JSON log record reach the report table, `once`'s table and
text log, and `history` escaped (no raw control character, no forged line); the JSON output,
the JSON log and `history -o json` keep them exactly."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from nodegc.testing.engine import IsolatedEngine
from tests.engine.helpers import nodegc

FORGED = '{"time":"2026-01-01T00:00:00Z","level":"error","msg":"FORGED-RECORD"}'
HOSTILE = f"web\x1b[31m-red\x1b[2J\x07\rcover\n{FORGED}\x9b\x7f"
POD = {
    "io.kubernetes.pod.uid": "uid-1",
    "io.kubernetes.pod.name": HOSTILE,
    "io.kubernetes.pod.namespace": "default",
    "io.kubernetes.container.name": f"app{HOSTILE}",
}
COMPOSE = {
    "com.docker.compose.project": f"proj{HOSTILE}",
    "com.docker.compose.service": f"svc{HOSTILE}",
}
CONTROLS = {*range(0x20), 0x7F, *range(0x80, 0xA0)}


def raw_controls(text: str) -> list[str]:
    """Control characters in `text` other than the newlines ending its lines."""
    return sorted({repr(c) for c in text if ord(c) in CONTROLS and c != "\n"})


def forged_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "FORGED-RECORD" in line and line.startswith("{")]


@pytest.fixture
def node(engine: IsolatedEngine, busybox: str) -> IsolatedEngine:
    """Two dead containers of one hostile pod container (one goes) and two of a compose service."""
    engine.create_dead_containers(busybox, 2, lambda i: POD, workers=1)
    engine.create_dead_containers(busybox, 2, lambda i: COMPOSE, workers=1)
    return engine


def test_tables_and_the_text_log_escape_hostile_labels(
    node: IsolatedEngine, tmp_path: Path
) -> None:
    state = tmp_path / "s"
    report = nodegc(node, state, "report", "--log-format", "text")
    assert report.returncode == 0, report.stderr
    assert "\\x1b[31m" in report.stdout and "\\n" in report.stdout  # shown, escaped
    once = nodegc(node, state, "once", "--log-format", "text", "--log-level", "debug")
    assert once.returncode in (0, 1), once.stderr
    history = nodegc(node, state, "history")
    assert history.returncode == 0, history.stderr
    for name, text in [("report", report.stdout), ("report log", report.stderr),
                       ("once", once.stdout), ("once log", once.stderr),
                       ("history", history.stdout)]:  # fmt: skip
        assert raw_controls(text) == [], (name, raw_controls(text), text[-2000:])
        assert forged_lines(text) == [], (name, forged_lines(text))
    assert "FORGED-RECORD" in once.stderr  # logged, escaped, on its record's own line
    assert "removed" in history.stdout


def test_json_output_json_log_and_history_json_keep_the_labels_exactly(
    node: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    state = tmp_path / "s"
    report = nodegc(node, state, "report", "-o", "json")
    pods = {d["pod"] for d in json.loads(report.stdout)["containers"]["decisions"]}
    assert f"default/{HOSTILE}" in pods
    once = nodegc(node, state, "once", "-o", "json", "--log-format", "json", "--log-level", "debug")
    assert once.returncode in (0, 1), once.stderr
    units = {d["evict_unit"] for d in json.loads(once.stdout)["containers"]["decisions"]}
    assert f"pod:uid-1/app{HOSTILE}" in units
    records = [json.loads(line) for line in once.stderr.splitlines()]  # every line is one record
    assert not [r for r in records if r.get("msg") == "FORGED-RECORD"]
    values = [v for r in records for v in r.values() if isinstance(v, str)]
    assert any(HOSTILE in v for v in values), values  # exact, once decoded
    entries = json.loads(nodegc(node, state, "history", "-o", "json").stdout)
    labels = {c["Id"]: c["Labels"] for c in api.containers(all=True)}
    assert entries and all(e["kind"] == "container" for e in entries)
    assert any(labels.get(e["id"]) is None for e in entries)  # the removed one
