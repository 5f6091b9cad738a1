"""The audit record's `target-missed` lines (issue 22): written beside the removal attempts, they
name the biggest holders nodegc may not touch; the readers of removals (`history`'s table and
JSON, the intent replay) tell them apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from nodegc.cli.history import history_command, render_table
from nodegc.collect.usage import SpaceReport, missed_records
from nodegc.holders import Holder, HolderKind
from nodegc.model import FilesystemRole, FilesystemStats
from nodegc.policy.breakdown import REST_NAME, breakdown
from nodegc.state.audit import AUDIT_FILE, TARGET_MISSED, AuditLog, is_removal, read_audit
from tests.unit.test_audit import StepClock, result, settings_for

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
FS = FilesystemStats("/var/lib/docker", 10_000, 1_000, 1000, 900, roles=tuple(FilesystemRole))
HOLDERS = (
    Holder(HolderKind.IMAGES_IN_USE, "images in use", 1_000, False),
    Holder(HolderKind.IMAGES_UNUSED, "unused images", 500, True),
    Holder(HolderKind.LOGS, "chatty", 4_000, False, path="/d/c/x-json.log"),
    Holder(HolderKind.VOLUMES_ANONYMOUS_UNUSED, "f" * 64, 2_000, False),
    Holder(HolderKind.CONTAINERS_DEAD, "old", 900, True),
)


def space() -> SpaceReport:
    return SpaceReport(breakdown([FS], HOLDERS), HOLDERS)


def missed_report(dry_run: bool = False) -> SimpleNamespace:
    """What `missed_records` reads of a CycleReport that missed the image target."""
    plan = SimpleNamespace(bytes_to_free=3_000)
    return SimpleNamespace(
        dry_run=dry_run,
        image_target_reached=False,
        images_after=FS,
        filesystem_after=FS,
        filesystem_before=FS,
        image_plan=plan,
        disk_bytes_freed=500,
        filesystems_short=[],
    )


def test_the_record_names_the_three_biggest_holders_nodegc_may_not_touch() -> None:
    """Used 9,000 = 1,000 + 500 + 4,000 + 2,000 + 900 + a rest of 600. Mutation caught: a
    removable holder (the dead container, unused images) named, or more than three."""
    (fields,) = missed_records(missed_report(), space())
    assert fields["filesystem"] == "/var/lib/docker"
    assert (fields["needed_bytes"], fields["freed_bytes"]) == (3_000, 500)
    assert [(h["kind"], h["name"], h["bytes"]) for h in fields["holders"]] == [
        ("logs", "chatty", 4_000),
        ("volumes_anonymous_unused", "f" * 64, 2_000),
        ("images_in_use", "images in use", 1_000),
    ]
    assert missed_records(missed_report(dry_run=True), space()) == []
    # Where the runtime cannot say, the record still says what was needed and freed.
    assert missed_records(missed_report(), None)[0]["holders"] == []
    assert REST_NAME  # the rest (600) is smaller than the three


def test_a_target_missed_line_is_its_own_kind_and_history_keeps_it_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A removal, then a target-missed record: both on disk (the record with `event`, no
    `outcome`); `history -o json` lists the removal alone, the table counts one attempt and
    names the holders under "Targets missed:". Mutation caught: the record counted or shown
    as an attempt, or missing from the table."""
    log = AuditLog(tmp_path / AUDIT_FILE, clock=StepClock(), node="n")
    log.record(result(1))
    (fields,) = missed_records(missed_report(), space())
    log.record_event(TARGET_MISSED, fields)
    entries, skipped = read_audit(tmp_path / AUDIT_FILE)
    assert skipped == 0 and [is_removal(e) for e in entries] == [True, False]
    missed = entries[1]
    assert missed["event"] == "target-missed" and "outcome" not in missed
    assert missed["node"] == "n" and missed["holders"][0]["name"] == "chatty"

    assert history_command(settings_for(tmp_path), None, "json", clock=lambda: T0) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)] == ["example.com/app:v1"]
    assert history_command(settings_for(tmp_path), None, "table", clock=lambda: T0) == 0
    out = capsys.readouterr().out
    assert "1 attempt: 1 removed" in out
    assert "Targets missed:" in out
    line = next(t for t in out.splitlines() if "target missed on /var/lib/docker" in t)
    assert "freed 500 B of 2.9 KiB needed" in line and "logs chatty 3.9 KiB" in line, line
    # A reader handing every entry to the table gets the same attempts.
    assert (
        render_table(entries, T0 + timedelta(minutes=1)).splitlines()[-1].startswith("1 attempt:")
    )


def test_history_with_only_a_target_missed_line_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = AuditLog(tmp_path / AUDIT_FILE, clock=StepClock(), node="n")
    log.record_event(TARGET_MISSED, missed_records(missed_report(), space())[0])
    assert history_command(settings_for(tmp_path), None, "table", clock=lambda: T0) == 0
    out = capsys.readouterr().out
    assert "No removals recorded." in out and "target missed on /var/lib/docker" in out
    assert history_command(settings_for(tmp_path), None, "json", clock=lambda: T0) == 0
    assert json.loads(capsys.readouterr().out) == []
