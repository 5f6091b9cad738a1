"""policy.finish_times: which exact finish times a plan depends on, and that asking only for
those changes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from nodegc.cli.render import plan_json, plan_table
from nodegc.model import Container, ContainerState, Snapshot
from nodegc.policy import plan
from nodegc.policy.finish_times import finish_times_needed, with_finish_times
from nodegc.policy.history import observe
from tests.unit.builders import (
    NOW,
    ago,
    container,
    container_settings,
    fs,
    history,
    image,
    image_settings,
    pod_labels,
    record,
    snapshot,
)

COMPOSE = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}


def windowed(c: Container, before: timedelta, after: timedelta) -> Container:
    """`c` as a listing shows it: its finish time only as a window around the truth."""
    assert c.finished_at is not None
    return replace(
        c,
        finished_at=None,
        finished_after=max(c.created, c.finished_at - before),
        finished_before=c.finished_at + after,
    )


# History where the image was used just now: no dead container's time can change its last use,
# so the tests of the other rules see those rules alone.
USED_NOW = history(img=record(ago(days=9), last_used=NOW))


def needed(cs: list[Container], hist=USED_NOW, batch: int | None = None, **kw) -> list[str]:
    return finish_times_needed(snapshot(containers=cs), hist, container_settings(**kw), NOW, batch)


def resolve(lazy: Snapshot, truth: dict[str, Container], hist, settings, batch=8) -> Snapshot:
    """What the Collector does: ask round by round until nothing more is wanted."""
    asked: set[str] = set()
    for attempt in range(9):
        want = finish_times_needed(
            lazy, hist, settings, NOW, None if attempt == 8 else batch, under_pressure=True
        )
        want = [i for i in want if i not in asked]
        if not want:
            break
        asked.update(want)
        lazy = with_finish_times(lazy, {i: truth[i].finished_at for i in want})
    return lazy


# -- the minimum and maximum age ------------------------------------------------------------------


def test_a_window_across_the_minimum_age_is_asked_for():
    """Stopped 1-3 minutes ago with a 2-minute minimum age: the exact time decides."""
    c = windowed(container("c", finished_at=ago(minutes=2)), timedelta(minutes=1), timedelta(0))
    c = replace(c, finished_before=ago(minutes=1))
    assert needed([c], minimum_age=timedelta(minutes=2)) == ["c"]


def test_a_window_wholly_past_the_minimum_age_is_not_asked_for():
    """Stopped 3-5 hours ago with a 2-minute minimum age: old enough whatever the exact time."""
    c = windowed(container("c", finished_at=ago(hours=4)), timedelta(hours=1), timedelta(hours=1))
    assert needed([c], minimum_age=timedelta(minutes=2), max_per_pod_container=0) == []


def test_a_window_wholly_within_the_minimum_age_is_not_asked_for():
    """Stopped 10-20 seconds ago with a 2-minute minimum age: too young whatever the time."""
    c = windowed(
        container("c", finished_at=ago(seconds=15)), timedelta(seconds=5), timedelta(seconds=5)
    )
    assert needed([c], minimum_age=timedelta(minutes=2), max_per_pod_container=0) == []


def test_a_window_ending_after_now_is_asked_for_even_without_a_minimum_age():
    """A listing answered just after the plan's `now` may end its window after it."""
    c = windowed(container("c", finished_at=NOW), timedelta(seconds=1), timedelta(seconds=2))
    assert needed([c], minimum_age=timedelta(0), max_per_pod_container=0) == ["c"]


def test_a_window_across_the_maximum_age_is_asked_for():
    """Stopped 23-25 hours ago with a 1-day maximum age: the exact time decides."""
    c = windowed(
        container("c", created=ago(days=3), finished_at=ago(hours=24)),
        timedelta(hours=1),
        timedelta(hours=1),
    )
    assert needed([c], maximum_age=timedelta(days=1), max_per_pod_container=-1) == ["c"]


def test_known_finish_times_and_never_started_containers_are_never_asked_for():
    """An exact time, or a container that never ran, leaves nothing to ask."""
    exact = container("exact", finished_at=ago(minutes=2))
    created = container("created", state=ContainerState.CREATED, finished_at=None)
    assert needed([exact, created], minimum_age=timedelta(minutes=2)) == []


# -- the order the caps keep ----------------------------------------------------------------------


def test_dead_containers_of_a_unit_created_in_the_same_second_are_asked_for():
    """Creation ties within a unit are broken by the stop time: the cap needs it."""
    t = ago(hours=5)
    a = windowed(
        container("a", created=t, finished_at=ago(hours=4), labels=COMPOSE),
        timedelta(minutes=30),
        timedelta(minutes=30),
    )
    b = windowed(
        container("b", created=t, finished_at=ago(hours=3), labels=COMPOSE),
        timedelta(minutes=30),
        timedelta(minutes=30),
    )
    hist = USED_NOW
    assert needed([a, b], hist, max_per_pod_container=1) == ["a", "b"]


def test_same_second_containers_of_different_units_are_not_asked_for_without_a_global_cap():
    """Across units the order matters only when the global cap trims."""
    t = ago(hours=5)
    a = windowed(
        container("a", created=t, finished_at=ago(hours=4)),
        timedelta(minutes=30),
        timedelta(minutes=30),
    )
    b = windowed(
        container("b", created=t, finished_at=ago(hours=3)),
        timedelta(minutes=30),
        timedelta(minutes=30),
    )
    hist = USED_NOW
    assert needed([a, b], hist, max_per_pod_container=1, max_dead_containers=-1) == []
    assert needed([a, b], hist, max_per_pod_container=1, max_dead_containers=1) == ["a", "b"]


# -- an image's last use --------------------------------------------------------------------------


def stopped_minutes_ago(minutes: range) -> list[Container]:
    """Containers c<n> of image "img" that stopped n minutes ago, listed with ±20 s windows."""
    return [
        windowed(
            container(f"c{n}", finished_at=ago(minutes=n)),
            timedelta(seconds=20),
            timedelta(seconds=20),
        )
        for n in minutes
    ]


def test_the_latest_stopping_users_of_an_image_are_asked_for_first():
    """Without history, the windows ending latest are asked for, `batch` at a time."""
    cs = stopped_minutes_ago(range(3, 10))
    assert needed(cs, history(), batch=2, max_per_pod_container=0) == ["c3", "c4"]


def test_windows_ending_before_a_known_stop_of_the_same_image_are_not_asked_for():
    """Once the latest user's time is known, earlier windows cannot raise the last use."""
    latest = container("latest", finished_at=ago(minutes=3))
    cs = stopped_minutes_ago(range(5, 10))
    assert needed([latest, *cs], history(), max_per_pod_container=0) == []


def test_windows_ending_before_the_recorded_last_use_are_not_asked_for():
    """History's last use already beats every window: nothing to ask."""
    cs = [
        windowed(
            container("c", finished_at=ago(hours=2)), timedelta(minutes=5), timedelta(minutes=5)
        )
    ]
    hist = history(img=record(ago(days=9), last_used=ago(hours=1)))
    assert needed(cs, hist, max_per_pod_container=0) == []


def test_an_image_with_a_live_container_needs_no_finish_time():
    """A running container makes the image used now: dead siblings' times change nothing."""
    running = container("run", state=ContainerState.RUNNING)
    dead = windowed(
        container("dead", finished_at=ago(hours=2)), timedelta(minutes=5), timedelta(minutes=5)
    )
    assert needed([running, dead], history(), max_per_pod_container=0) == []


def test_a_thousand_containers_of_one_image_need_a_handful_of_requests():
    """The benchmark's first cycle: 1000 dead containers stopped 0.2 s apart, windows of ±2 s:
    a few dozen asked, not a thousand."""
    truth = {
        f"c{n:04d}": container(f"c{n:04d}", finished_at=ago(seconds=30 + n * 0.2))
        for n in range(1000)
    }
    lazy = snapshot(
        containers=[windowed(c, timedelta(seconds=2), timedelta(seconds=2)) for c in truth.values()]
    )
    settings = container_settings(max_per_pod_container=0)
    asked: list[str] = []
    for _ in range(9):
        want = finish_times_needed(lazy, history(), settings, NOW)
        if not want:
            break
        asked += want
        lazy = with_finish_times(lazy, {i: truth[i].finished_at for i in want})
    assert 0 < len(asked) <= 40
    assert "c0000" in asked


# -- nothing changes ------------------------------------------------------------------------------

STATES = [ContainerState.EXITED] * 6 + [
    ContainerState.RUNNING,
    ContainerState.CREATED,
    ContainerState.DEAD,
]
UNITS = [pod_labels("p1", "app"), pod_labels("p2", "app"), COMPOSE, {}]


@st.composite
def nodes(draw):
    """Containers of three images, many created in the same few seconds, each listed with a
    window around its true finish time; history for some images; settings of every kind."""
    seconds = draw(st.lists(st.integers(0, 3 * 86400), min_size=1, max_size=5))
    truth = []
    for n in range(draw(st.integers(0, 14))):
        created = ago(seconds=draw(st.sampled_from(seconds)))
        state = draw(st.sampled_from(STATES))
        ran = state in (ContainerState.EXITED, ContainerState.DEAD)
        finished = None
        if ran:
            finished = min(NOW, created + timedelta(seconds=draw(st.integers(0, 3 * 86400))))
        labels = dict(draw(st.sampled_from(UNITS)))
        if draw(st.integers(0, 9)) == 0:
            labels["nodegc.io/keep"] = "true"
        truth.append(
            container(
                f"c{n:02d}",
                draw(st.sampled_from(["a", "b", "c"])),
                state,
                created=created,
                finished_at=finished,
                labels=labels,
                name=draw(st.sampled_from(["n1", "n2", "n3"])),
            )
        )
    listed = []
    for c in truth:
        if c.finished_at is None or (draw(st.booleans()) and draw(st.booleans())):
            listed.append(c)  # exact (cached) or never ran
            continue
        before = timedelta(seconds=draw(st.sampled_from([0, 1, 60, 3600, 86400])))
        after = timedelta(seconds=draw(st.sampled_from([0, 2, 60, 3600, 86400])))
        listed.append(windowed(c, before, after))
    records = {}
    for image_id in "abc":
        if draw(st.booleans()):
            last = draw(
                st.one_of(st.none(), st.integers(0, 4 * 86400).map(lambda s: ago(seconds=s)))
            )
            records[image_id] = record(ago(days=10), last_used=last)
    settings = container_settings(
        minimum_age=draw(st.sampled_from([timedelta(0), timedelta(minutes=2), timedelta(hours=1)])),
        maximum_age=draw(st.sampled_from([timedelta(0), timedelta(hours=12), timedelta(days=2)])),
        max_per_pod_container=draw(st.integers(-1, 2)),
        max_dead_containers=draw(st.integers(-1, 5)),
    )
    images = [image(i, 100, tags=[f"{i}:1"]) for i in "abc"]
    disk = fs(1000, 50)  # under pressure: image GC ranks every image by last use
    return (
        snapshot(disk, images, truth),
        snapshot(disk, images, listed),
        history(**records),
        settings,
        draw(st.sampled_from([1, 2, 8])),
    )


def _decisions(p):
    return (
        {d.container.id: (d.action, d.reason, d.evict_unit) for d in p.containers.decisions},
        [(d.image.id, d.action, d.reason) for d in p.images.decisions],
    )


@hypothesis.settings(max_examples=400)
@given(nodes())
def test_property_asking_only_what_is_needed_changes_no_decision_and_no_history(node):
    """The plan and the history after asking for the wanted finish times equal those made with
    every finish time known."""
    exact, lazy, hist, settings, batch = node
    truth = {c.id: c for c in exact.containers}
    resolved = resolve(lazy, truth, hist, settings, batch)
    assert observe(hist, resolved, NOW) == observe(hist, exact, NOW)
    images = image_settings(minimum_age=timedelta(0))
    after = observe(hist, exact, NOW)
    assert _decisions(plan(resolved, after, images, settings, NOW)) == _decisions(
        plan(exact, after, images, settings, NOW)
    )


# -- what the report shows ------------------------------------------------------------------------


def test_the_report_shows_the_window_while_the_exact_time_is_unknown():
    """JSON gives finished_after/finished_before (finished_at null); the table says "≥ 4h ago"."""
    exact = container("exact", finished_at=ago(hours=2))
    vague = replace(
        container("vague", created=ago(days=2)),
        finished_after=ago(hours=5),
        finished_before=ago(hours=4),
    )
    p = plan(
        snapshot(fs(1000, 500), [image("img", 100)], [exact, vague]),
        history(),
        image_settings(),
        container_settings(),
        NOW,
    )

    rows = {d["id"]: d for d in plan_json(p)["containers"]["decisions"]}
    assert rows["vague"]["finished_at"] is None
    assert (rows["vague"]["finished_after"], rows["vague"]["finished_before"]) == (
        "2025-06-01T07:00:00Z",
        "2025-06-01T08:00:00Z",
    )
    assert rows["exact"]["finished_at"] == "2025-06-01T10:00:00Z"
    assert rows["exact"]["finished_after"] is None
    table = plan_table(p)
    assert "≥ 4h ago" in table and "  2h ago" in table
