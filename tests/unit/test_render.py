"""The report's table and JSON: a table line stays readable, the JSON keeps everything."""

from __future__ import annotations

from nodegc.cli.render import plan_json, plan_table
from nodegc.cli.tables import tags_text
from nodegc.policy import plan
from tests.unit.builders import (
    NOW,
    ago,
    container_settings,
    history,
    image,
    image_settings,
    record,
    snapshot,
)


def test_a_few_tags_then_a_count():
    """Three tags are shown, the rest counted; an untagged image says so."""
    assert tags_text(()) == "<none>"
    assert tags_text(("a:1", "b:2", "c:3")) == "a:1,b:2,c:3"
    assert tags_text(("a:1", "b:2", "c:3", "d:4")) == "a:1,b:2,c:3 +1 more"


def test_an_image_with_300_tags_makes_a_short_table_line_and_keeps_every_tag_in_json():
    """The table line of a 300-tag image stays short; `plan_json` lists all 300 tags."""
    tags = [f"registry.example/team/app:build-{n:04d}" for n in range(300)]
    snap = snapshot(images=[image("sha256:" + "a" * 64, tags=tags)])
    p = plan(
        snap,
        history(**{"sha256:" + "a" * 64: record(ago(days=3))}),
        image_settings(),
        container_settings(),
        NOW,
    )
    table = plan_table(p)
    line = next(row for row in table.splitlines() if "build-0000" in row)
    assert "+297 more" in line
    assert "build-0003" not in line
    assert len(line) < 200, line
    decisions = plan_json(p)["images"]["decisions"]
    assert decisions[0]["tags"] == tags
