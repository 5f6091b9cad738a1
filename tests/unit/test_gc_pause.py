"""The interpreter's cycle collector: the pure policy never touches it; the collector pauses it
around a plan (collect/pause.py) and leaves it as it found it."""

from __future__ import annotations

import gc
import threading

import pytest

from nodegc import policy
from nodegc.collect.pause import cycle_collector_paused
from tests.unit.builders import NOW, container_settings, history, image_settings, snapshot


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_policy_plans_without_touching_the_cycle_collector(collector_on, monkeypatch):
    """policy.plan is pure: it neither disables nor enables gc (catches the pause put back)."""
    touched: list[str] = []
    monkeypatch.setattr(gc, "disable", lambda: touched.append("disable"))
    monkeypatch.setattr(gc, "enable", lambda: touched.append("enable"))
    policy.plan(snapshot(), history(), image_settings(), container_settings(), NOW)
    assert touched == []


def test_the_pause_turns_the_collector_off_and_back_on(collector_on):
    with cycle_collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_pause_leaves_a_collector_that_was_off_off(collector_on):
    gc.disable()
    with cycle_collector_paused():
        pass
    assert not gc.isenabled()


def test_the_pause_is_restored_when_the_plan_raises(collector_on):
    with pytest.raises(ValueError), cycle_collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_overlapping_pauses_in_two_threads_turn_it_back_on_only_when_both_are_done(collector_on):
    """The scheduler plans in several threads: the first to leave must not turn the collector
    back on under the other (catches a plain disable/enable pair)."""
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with cycle_collector_paused():
            inside.set()
            release.wait(60)

    t = threading.Thread(target=other)
    t.start()
    assert inside.wait(60)
    with cycle_collector_paused():
        pass
    assert not gc.isenabled()  # the other thread still plans
    release.set()
    t.join(60)
    assert gc.isenabled()
