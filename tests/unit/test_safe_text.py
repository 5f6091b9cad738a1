"""Untrusted text reaches a terminal or a text log with its control characters escaped, and JSON
exactly: the table, `history`, `status` and the text log (tests/engine/test_hostile_text.py does
the same through a real dockerd)."""

from __future__ import annotations

import io
import json
import logging
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from nodegc.cli import logs
from nodegc.cli.history import render_table
from nodegc.cli.render import plan_json, plan_table
from nodegc.cli.safe import visible, visible_lines
from nodegc.cli.status import render_conditions
from nodegc.policy import plan
from tests.unit.builders import (
    NOW,
    ago,
    container,
    container_settings,
    history,
    image,
    image_settings,
    record,
    snapshot,
)

HOSTILE = 'x\x1b[31mred\x1b[2J\x07\rover\n{"level":"error","msg":"FORGED"}\x9b\x7f\u202eevil\u2028'
UNSAFE = {*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F),
          *range(0x2066, 0x206A)}  # fmt: skip


def raw_controls(text: str, *, newlines: bool = False) -> list[str]:
    return [c for c in text if ord(c) in UNSAFE and not (newlines and c == "\n")]


@given(st.text())
def test_visible_leaves_no_control_character_and_keeps_every_other_one(text: str) -> None:
    """Any text: no control character left; text without any comes out unchanged."""
    shown = visible(text)
    assert raw_controls(shown) == []
    if not raw_controls(text):
        assert shown == text
    assert visible_lines(text).count("\n") == text.count("\n")


def test_each_kind_of_control_is_shown_as_a_readable_escape() -> None:
    assert visible("a\x1b[2Jb\nc\rd\te\x07\x9b\x7f\u202e") == (
        "a\\x1b[2Jb\\nc\\rd\\te\\x07\\x9b\\x7f\\u202e"
    )
    assert visible("ünïcødé 日本") == "ünïcødé 日本"
    assert all(unicodedata.category(c) != "Cc" for c in visible(HOSTILE))


def hostile_plan():
    img = image("sha256:" + "a" * 64, tags=[f"app:{HOSTILE}"])
    dead = container("c" * 64, img.id, name=HOSTILE,
                     labels={"io.kubernetes.pod.name": HOSTILE,
                             "io.kubernetes.pod.namespace": "ns",
                             "io.kubernetes.container.name": HOSTILE})  # fmt: skip
    snap = snapshot(images=[img], containers=[dead])
    return plan(snap, history(**{img.id: record(ago(days=3))}), image_settings(),
                container_settings(), NOW)  # fmt: skip


def test_the_report_table_escapes_labels_names_and_tags_and_json_keeps_them_exact() -> None:
    """A pod name, container name and tag with ESC, BEL, CR and a forged JSON log line: the
    table has no raw control and no forged line; the JSON has them byte for byte."""
    p = hostile_plan()
    table = plan_table(p)
    assert raw_controls(table, newlines=True) == []
    assert not any(line.startswith('{"level"') for line in table.splitlines())
    assert "\\x1b[31mred" in table
    data = json.loads(json.dumps(plan_json(p)))
    assert data["images"]["decisions"][0]["tags"] == [f"app:{HOSTILE}"]
    assert data["containers"]["decisions"][0]["name"] == HOSTILE


def test_history_and_status_tables_escape_what_they_show() -> None:
    entry = {"time": NOW.isoformat(), "kind": "image", "outcome": "removed", "reason": "space",
             "id": "sha256:" + "a" * 64, "name": HOSTILE, "size_bytes": 1,
             "detail": HOSTILE}  # fmt: skip
    text = render_table([entry], NOW)
    assert raw_controls(text, newlines=True) == [] and text.count("\n") == 2
    doc = {"version": HOSTILE, "node": HOSTILE, "details": {HOSTILE: HOSTILE},
           "conditions": [{"type": "Ready", "status": "True", "reason": HOSTILE,
                           "message": HOSTILE, "lastTransitionTime": NOW.isoformat()}]}  # fmt: skip
    text = render_conditions(doc, NOW)
    assert raw_controls(text, newlines=True) == [] and text.count("\n") == 4


def log_line(fmt: str, message: str, *args: object, **extra: object) -> str:
    stream = io.StringIO()
    logs.setup(fmt, "debug", stream)
    logging.getLogger("nodegc.test").warning(message, *args, extra=extra)
    return stream.getvalue()


def test_the_text_log_escapes_message_arguments_and_fields_of_any_call() -> None:
    """A log call that passes untrusted text anywhere (message, %-argument, field name or value)
    writes one line with no raw control; the JSON log keeps the text exactly."""
    text = log_line("text", "removing %s", HOSTILE, object_name=HOSTILE, tags=[HOSTILE],
                    **{"odd\nkey": HOSTILE})  # fmt: skip
    assert text.count("\n") == 1 and raw_controls(text[:-1]) == [], text
    assert "FORGED" in text  # shown, escaped, on the same line
    entry = json.loads(log_line("json", "removing %s", HOSTILE, object_name=HOSTILE))
    assert entry["msg"] == f"removing {HOSTILE}" and entry["object_name"] == HOSTILE
