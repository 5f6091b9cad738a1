"""The Docker adapter's reading of a listing's Status text ("Exited (0) 3 hours ago"): the
window it gives must hold the true finish time for every age and every engine version."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from nodegc.runtime.docker import finish_window, status_age_range
from tests.unit.builders import NOW, ago


def human_duration(seconds: float, *, rounded_hours: bool) -> str:
    """go-units' HumanDuration as engines print it: newer versions round hours (and count days,
    weeks and months from rounded hours, weeks up to two months), older ones truncate (weeks up
    to three months)."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1 and rounded_hours:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5) if rounded_hours else int(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * (2 if rounded_hours else 3):
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


@given(
    st.floats(0, 5 * 365 * 86400), st.booleans(), st.sampled_from(["Exited (0)", "Exited (137)"])
)
def test_property_the_age_range_holds_the_true_age(age, rounded, prefix):
    """Whatever the age and the engine's version, the range read back contains it."""
    text = f"{prefix} {human_duration(age, rounded_hours=rounded)} ago"
    lo, hi = status_age_range(text)
    assert lo <= age <= hi


@given(st.floats(0, 400 * 86400))
def test_property_the_window_holds_the_true_finish_time(age):
    """The finish window from the text contains the finish time, within creation and listing."""
    finished = NOW - timedelta(seconds=age)
    created = finished - timedelta(hours=1)
    text = f"Exited (0) {human_duration(age, rounded_hours=True)} ago"
    after, before = finish_window(text, created, NOW)
    assert created <= after <= finished <= before <= NOW


def test_the_range_is_narrow_where_it_matters():
    """Seconds are read to within a few seconds; hours to within two hours."""
    lo, hi = status_age_range("Exited (0) 42 seconds ago")
    assert lo >= 40 and hi <= 45
    lo, hi = status_age_range("Exited (1) 5 hours ago")
    assert lo >= 4 * 3600 and hi <= 7 * 3600


def test_an_unreadable_status_gives_the_whole_span():
    """ "Dead", or a text in no known form: from creation to the listing."""
    assert status_age_range("Dead") is None
    assert finish_window("Dead", ago(days=2), NOW) == (ago(days=2), NOW)
    assert finish_window("Exited (0) whenever", ago(days=2), NOW) == (ago(days=2), NOW)


def test_the_window_never_ends_after_the_listing():
    """ "Less than a second ago" ends at the listing, not two seconds after it."""
    after, before = finish_window("Exited (0) Less than a second ago", ago(hours=1), NOW)
    assert before == NOW and after >= NOW - timedelta(seconds=3)
