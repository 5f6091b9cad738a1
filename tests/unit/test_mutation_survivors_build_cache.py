"""Tests for mutants of nodegc/policy/build_cache.py that survived the unit suite
(bench/mutate.py; bench/results/mutation-2026-12-07.md). Each docstring names the mutant it
kills (module:line as of main 2e6de7a, the kind and the change). Calls go through
tests/unit/_policy_calls.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from nodegc.model import Action, BuildCacheRecord, Reason
from tests.unit._policy_calls import plan_build_cache_with
from tests.unit.builders import ago


def record(
    record_id: str,
    *,
    last_used: datetime | None,
    created: datetime | None,
    size: int = 100,
    parent: str | None = None,
) -> BuildCacheRecord:
    return BuildCacheRecord(
        id=record_id,
        parent=parent,
        type="regular",
        description=record_id,
        in_use=False,
        shared=False,
        size_bytes=size,
        created_at=created,
        last_used=last_used,
        usage_count=0 if last_used is None else 1,
    )


def verdict(plan, record_id: str) -> tuple[Action, Reason]:
    d = next(d for d in plan.decisions if d.record.id == record_id)
    return d.action, d.reason


def test_a_record_never_used_ages_from_its_creation():
    """A record the engine says was never used (LastUsedAt null) counts as used when it was
    made: made an hour ago, it is not older than a maximum age of a day.
    Kills build_cache.py:49 drop-term `record.last_used or record.created_at` ->
    `record.last_used` (never used: taken as older than any age)."""
    fresh = record("r", last_used=None, created=ago(hours=1))
    plan = plan_build_cache_with([fresh], maximum_age=timedelta(days=1))
    assert verdict(plan, "r") == (Action.KEEP, Reason.BELOW_THRESHOLD)


def test_a_record_never_used_made_a_minute_ago_is_too_young():
    """The same rule for the minimum age: made a minute ago, never used, minimum age 10 minutes:
    too young, even when the disk asks for bytes.
    Kills build_cache.py:49 drop-term (or:, term 2 dropped)."""
    fresh = record("r", last_used=None, created=ago(minutes=1))
    plan = plan_build_cache_with([fresh], bytes_wanted=1000, minimum_age=timedelta(minutes=10))
    assert verdict(plan, "r") == (Action.KEEP, Reason.TOO_YOUNG)
