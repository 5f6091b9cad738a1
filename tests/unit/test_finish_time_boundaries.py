"""policy.finish_times at its boundaries: a window that ends or starts exactly at an age limit,
windows that touch, a global cap met exactly, a window ending exactly at the last use already
known. Asking too little would change a decision; asking too much costs a request per
container on a node with thousands: each test pins one side (the mutation it catches named)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from nodegc.model import Container
from nodegc.policy.finish_times import finish_times_needed
from tests.unit.builders import (
    NOW,
    ago,
    container,
    container_settings,
    history,
    record,
    snapshot,
)

HOUR = timedelta(hours=1)
USED_NOW = history(img=record(ago(days=9), last_used=NOW))  # rule 4 (last use) out of the way


def window(name: str, after: datetime, before: datetime, **kw) -> Container:
    """A dead container of image `img` whose finish time is known only as [after, before]."""
    c = container(name, "img", created=after - HOUR, name=name, **kw)
    return replace(c, finished_at=None, finished_after=after, finished_before=before)


def needed(cs, hist=USED_NOW, *, under_pressure=False, **settings) -> list[str]:
    return finish_times_needed(
        snapshot(containers=cs),
        hist,
        container_settings(**settings),
        NOW,
        None,
        under_pressure=under_pressure,
    )


def test_a_window_ending_exactly_at_the_minimum_age_is_not_asked():
    """Stopped at or before now - minimum_age whatever the time: old enough (catches `hi >`
    turned into `hi >=`)."""
    limit = NOW - HOUR
    assert needed([window("c", limit - HOUR, limit)], minimum_age=HOUR) == []


def test_a_window_starting_exactly_at_the_minimum_age_is_asked():
    """Stopped exactly at the limit is old enough, a second later is not: ask (catches `lo >`
    turned into `lo >=`)."""
    limit = NOW - HOUR
    assert needed([window("c", limit, limit + HOUR)], minimum_age=HOUR) == ["c"]


def test_a_window_ending_exactly_at_the_maximum_age_is_asked():
    """Stopped exactly maximum_age ago is not old, a second earlier is: ask (catches `hi <`
    turned into `hi <=`)."""
    limit = NOW - timedelta(days=2)
    cs = [window("c", limit - HOUR, limit)]
    assert needed(cs, maximum_age=timedelta(days=2)) == ["c"]


def test_a_window_starting_exactly_at_the_maximum_age_is_not_asked():
    """Stopped at or after now - maximum_age: never old whatever the time (catches `lo <`
    turned into `lo <=`)."""
    limit = NOW - timedelta(days=2)
    cs = [window("c", limit, limit + HOUR)]
    assert needed(cs, maximum_age=timedelta(days=2)) == []


def test_under_pressure_two_windows_that_touch_are_both_asked():
    """Windows [a, b] and [b, c] may hold the same instant: their order is open (catches `lo >
    end` turned into `lo >= end`, and a group of two left unasked)."""
    b = ago(hours=5)
    cs = [window("x", b - HOUR, b, labels={"u": "1"}), window("y", b, b + HOUR)]
    assert needed(cs, under_pressure=True) == ["x", "y"]


def test_under_pressure_two_windows_apart_are_not_asked():
    b = ago(hours=5)
    cs = [window("x", b - HOUR, b), window("y", b + timedelta(seconds=1), b + HOUR)]
    assert needed(cs, under_pressure=True) == []


def _same_second(n: int) -> list[Container]:
    """n dead containers of n units, all created in the same second, finish times unknown."""
    at = ago(hours=5)
    return [
        replace(
            container(f"c{k}", "img", created=at, name=f"n{k}"),
            finished_at=None,
            finished_after=at,
            finished_before=at + HOUR,
        )
        for k in range(n)
    ]


def test_at_exactly_the_global_cap_ties_are_not_asked():
    """The global cap trims nothing at exactly the cap: no order to settle (catches `len >
    cap` turned into `len >= cap`)."""
    assert needed(_same_second(3), max_dead_containers=3, max_per_pod_container=-1) == []


def test_one_past_the_global_cap_ties_are_asked():
    cs = _same_second(4)
    assert needed(cs, max_dead_containers=3, max_per_pod_container=-1) == ["c0", "c1", "c2", "c3"]


def test_a_window_ending_exactly_at_the_known_last_use_is_not_asked():
    """Rule 4: a window that cannot end after the last use already known cannot move it
    (catches `>` turned into `>=`)."""
    last = ago(hours=2)
    hist = history(img=record(ago(days=9), last_used=last))
    assert needed([window("c", last - HOUR, last)], hist) == []


def test_a_window_ending_after_the_known_last_use_is_asked():
    last = ago(hours=2)
    hist = history(img=record(ago(days=9), last_used=last))
    assert needed([window("c", last - HOUR, last + timedelta(seconds=1))], hist) == ["c"]
