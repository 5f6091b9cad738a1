"""The `report` and `once` pages and the FreeDiskSpaceFailed line, as people read them: engine
text made visible (`cli/safe.py`), the columns of each table, the OUTCOME of each decision, and
what the line says the disk shows and image GC freed. Each test names the mutation it catches."""

from __future__ import annotations

import dataclasses
import re

from nodegc.cli.pending import TABLE_PENDING, pending_lines
from nodegc.cli.render import cycle_table, free_disk_space_failed, plan_table
from nodegc.cli.tables import CONTAINER_HEADERS, IMAGE_HEADERS, table
from nodegc.collect.cycle import CycleReport
from nodegc.collect.intents import Pending
from nodegc.model import (
    ALL_ROLES,
    FilesystemStats,
    Outcome,
    Plan,
    Reason,
    RemovalResult,
)
from nodegc.policy import plan
from nodegc.state.journal import Intent
from tests.unit.builders import (
    NOW,
    ago,
    container,
    container_settings,
    fs,
    history,
    image,
    image_settings,
    record,
    snapshot,
)

MIB = 1024 * 1024
A, B, C = ("sha256:" + x * 64 for x in "abc")
HOSTILE_NAME = "web\n\x1b[2JFAKE"


def _fs(available_mib: int, path: str = "/var/lib/docker") -> FilesystemStats:
    """A 1000 MiB filesystem holding everything of the runtime's (the image filesystem)."""
    return dataclasses.replace(fs(1000 * MIB, available_mib * MIB, path), roles=ALL_ROLES)


def _plan(path: str = "/var/lib/docker") -> Plan:
    """90% used, thresholds 85/80 (free 100 MiB): A and B (60 MiB each, unused) go, C stays in
    use by a dead container with a hostile name; B's tag ends in a right-to-left override."""
    snap = snapshot(
        filesystem=_fs(100, path),
        images=[
            image(A, 60 * MIB, tags=["app:1"]),
            image(B, 60 * MIB, tags=["app:2\u202e"]),
            image(C, 60 * MIB),
        ],
        containers=[container("d" * 64, image_id=C, name=HOSTILE_NAME)],
    )
    records = {A: record(ago(days=3)), B: record(ago(days=2), ago(hours=5)), C: record(ago(days=1))}
    return plan(snap, history(**records), image_settings(), container_settings(), NOW)


def _report(*, after_mib: int = 160, dry_run: bool = False) -> CycleReport:
    """A cycle of `_plan()`: A removed, B failed with an engine message holding an ESC; the
    image filesystem measured at `after_mib` MiB free when image GC stopped."""
    p = _plan()
    if dry_run:
        return CycleReport(dry_run=True, plan=p, image_plan=p.images, filesystem_before=_fs(100))
    results = [
        RemovalResult("image", A, "app:1", Reason.SPACE, Outcome.REMOVED, size_bytes=60 * MIB),
        RemovalResult("image", B, "app:2", Reason.SPACE, Outcome.FAILED, detail="busy \x1b[31m"),
    ]
    return CycleReport(
        dry_run=False, plan=p, image_plan=p.images, filesystem_before=_fs(100),
        image_results=results, images_before=_fs(100), images_after=_fs(after_mib),
        filesystem_after=_fs(after_mib + 10), filesystems_after=(_fs(after_mib + 10),),
    )  # fmt: skip


def _row(page: str, needle: str) -> list[str]:
    """The cells of the one table row holding `needle` (cells are split on 2+ spaces)."""
    (line,) = [line for line in page.splitlines() if needle in line]
    return re.split(r" {2,}", line.strip())


# -- the table ------------------------------------------------------------------------------------
def test_a_table_cell_shows_control_characters_as_escapes() -> None:
    """A newline, an ESC and a bidi override in a cell are shown escaped, on the cell's row.
    Mutation caught: `table` not passing each cell through `safe.visible` (a name with a newline
    forges a row of its own, an ESC repaints the terminal)."""
    text = table(["NAME", "N"], [["a\nFORGED\x1b[2J\u202e", "1"]])
    assert text.splitlines() == ["NAME                    N", "a\\nFORGED\\x1b[2J\\u202e  1"]


def test_a_column_is_as_wide_as_its_widest_cell_and_no_line_ends_in_spaces() -> None:
    """Columns are padded to the widest of header and cells, two spaces apart; the last column
    is not padded. Mutation caught: widths taken from the headers alone (cells overflow and the
    columns no longer line up), or the `rstrip` dropped."""
    text = table(["A", "BB", "C"], [["long", "x", "y"], ["s", "yyyy", ""]])
    assert text.splitlines() == ["A     BB    C", "long  x     y", "s     yyyy"]


def test_the_report_tables_have_their_columns_and_one_row_per_decision() -> None:
    """`report` names the images table's and containers table's columns in order, and each
    image row says action, reason, short id, tags, size, frees, first seen and last used.
    Mutation caught: a column dropped or two swapped in a row builder (`image_rows`), or the
    FREES cell shown for a kept image."""
    page = plan_table(_plan())
    lines = page.splitlines()
    assert any(line.split() == " ".join(IMAGE_HEADERS).split() for line in lines)
    assert any(line.split() == " ".join(CONTAINER_HEADERS).split() for line in lines)
    assert _row(page, "aaaaaaaaaaaa") == [
        "remove", "space", "aaaaaaaaaaaa", "app:1", "60.0 MiB", "60.0 MiB", "3d ago", "never",
    ]  # fmt: skip
    assert _row(page, "bbbbbbbbbbbb")[6:] == ["2d ago", "5h ago"]
    assert _row(page, "cccccccccccc")[:6] == ["keep", "in-use", "cccccccccccc", "<none>",
                                              "60.0 MiB", "-"]  # fmt: skip
    assert "Images: 2 to remove, 1 kept" in lines


def test_engine_text_in_the_report_is_made_visible_and_stays_on_its_row() -> None:
    """A container name with a newline and an ESC, and a tag with a right-to-left override,
    come out escaped, on their rows; so does the engine's own path for its data (outside any
    table). Nothing raw reaches the terminal. Mutation caught: the page's cells or its final
    `visible_lines` guard bypassing `cli/safe.py`."""
    page = plan_table(_plan(path="/var/lib/docker\x1b]0;owned\x07"))
    assert "\x1b" not in page and "\u202e" not in page
    assert not any(line.startswith("FAKE") for line in page.splitlines())
    assert _row(page, "dddddddddddd")[3] == "web\\n\\x1b[2JFAKE"
    assert _row(page, "bbbbbbbbbbbb")[3] == "app:2\\u202e"
    assert "Filesystem /var/lib/docker\\x1b]0;owned\\x07: 90% used" in page


# -- once -----------------------------------------------------------------------------------------
def test_once_shows_each_decision_outcome_with_the_engine_message_escaped() -> None:
    """`once` adds an OUTCOME column: "removed", "failed (<engine message>)" with the message
    escaped, "kept" for what the plan kept; then the measured totals. Mutation caught: the
    engine's message dropped from the outcome (`outcome_text`), the totals counting a failure
    as a removal, or the OUTCOME column missing."""
    page = cycle_table(_report())
    assert "\x1b" not in page
    assert any(line.split() == [*" ".join(IMAGE_HEADERS).split(), "OUTCOME"]
               for line in page.splitlines())  # fmt: skip
    assert _row(page, "aaaaaaaaaaaa")[-1] == "removed"
    assert _row(page, "bbbbbbbbbbbb")[-1] == "failed (busy \\x1b[31m)"
    assert _row(page, "cccccccccccc")[-1] == "kept"
    assert (
        "Removed 0 containers, 0 build cache records (0 B) and 1 images "
        "(image GC freed 60.0 MiB, measured); 0 skipped, 1 failed."
    ) in page.splitlines()


def test_a_dry_run_says_would_remove_and_prints_no_totals() -> None:
    """A dry run titles itself, marks every planned removal "would remove" and prints no
    "Removed ..." line. Mutation caught: the dry-run branch of the outcomes dropped (the cells
    read "-"), or the totals printed for a run that removed nothing."""
    page = cycle_table(_report(dry_run=True))
    assert page.splitlines()[0] == "nodegc once --dry-run — nothing is changed"
    assert _row(page, "aaaaaaaaaaaa")[-1] == "would remove"
    assert _row(page, "bbbbbbbbbbbb")[-1] == "would remove"
    assert not any(line.startswith("Removed ") for line in page.splitlines())


def test_a_planned_removal_left_out_at_the_target_says_so() -> None:
    """An image the closed loop did not need (the measured disk had reached the target) reads
    "not needed (target reached)". Mutation caught: `images_not_needed` ignored by the
    outcomes (the cell reads "-", as if the removal was never tried)."""
    report = dataclasses.replace(_report(after_mib=220), images_not_needed={B})
    report.image_results.pop()
    assert _row(cycle_table(report), "bbbbbbbbbbbb")[-1] == "not needed (target reached)"


# -- FreeDiskSpaceFailed -------------------------------------------------------------------------
def test_free_disk_space_failed_says_what_the_disk_shows_after_and_what_image_gc_freed() -> None:
    """The line names the image filesystem as measured when image GC stopped (84%, 840 of 1000
    MiB), what it freed (measured: 60 MiB) of what the thresholds asked (100 MiB to reach 80%).
    Mutation caught: the usage taken from before the cycle (90%), the freed bytes from the plan
    (120 MiB), or the needed amount from the plan's removals."""
    line = free_disk_space_failed(_report())
    assert line == (
        "FreeDiskSpaceFailed: image filesystem /var/lib/docker is 84% used (840.0 MiB of "
        "1000.0 MiB); deleting build cache, unused images and dead containers freed 60.0 MiB "
        "of the 100.0 MiB needed to reach 80%"
    )


def test_once_ends_with_free_disk_space_failed_only_when_short_of_the_target() -> None:
    """Short of the target (84% > 80%), `once` ends with the FreeDiskSpaceFailed line; at the
    target (78%) it does not, and a dry run's says "would free". Mutation caught: the
    `target_reached` condition negated or dropped, or the verb not following `dry_run`."""
    assert cycle_table(_report()).splitlines()[-1].startswith("FreeDiskSpaceFailed: ")
    assert "FreeDiskSpaceFailed" not in cycle_table(_report(after_mib=220))
    p = dataclasses.replace(_plan(), images=dataclasses.replace(_plan().images, decisions=()))
    dry = CycleReport(dry_run=True, plan=p, image_plan=p.images, filesystem_before=_fs(100))
    assert "would free 0 B of the 100.0 MiB needed" in free_disk_space_failed(dry)


# -- interrupted removals -------------------------------------------------------------------------
def test_interrupted_removals_are_named_escaped_then_counted() -> None:
    """The first TABLE_PENDING interrupted removals get a line each (an untagged one named by
    its escaped name), the rest one "+N more" line. Mutation caught: the cap not applied, the
    count off by the shown ones, or the name printed raw."""
    intent = Intent(
        kind="container", object_id="e" * 64, name="x\x1b[2J", action="remove",
        reason="age", started_at=NOW, pid=1, tags=(), digests=(),
    )  # fmt: skip
    pending = [Pending(intent=intent, present=True, missing_tags=None, in_progress=False)] * (
        TABLE_PENDING + 3
    )
    lines = pending_lines(pending)
    assert len(lines) == TABLE_PENDING + 1
    assert lines[0].startswith("interrupted removal pending: container eeeeeeeeeeee (x\\x1b[2J)")
    assert lines[-1] == "+3 more interrupted removals (see --output json)"
