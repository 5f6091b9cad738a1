"""History: first sightings and last uses learnt from snapshots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodegc.model import ContainerState, History, ImageRecord
from nodegc.policy.history import observe
from tests.unit.builders import NOW, ago, container, history, image, record, snapshot


def test_empty_history_begins_now():
    """History.empty(now): since = now and no records."""
    h = History.empty(NOW)
    assert (h.since, dict(h.images)) == (NOW, {})


def test_new_image_without_evidence_is_first_seen_now():
    """An image seen for the first time with no other evidence: first_seen = now, never used."""
    h = observe(History.empty(ago(days=1)), snapshot(images=[image("a")]), NOW)
    assert h.images == {"a": ImageRecord(first_seen=NOW, last_used=None)}


def test_new_image_first_seen_at_its_tag_time_when_earlier():
    """The runtime's tag (pull) time is evidence of an earlier sighting."""
    h = observe(
        History.empty(NOW), snapshot(images=[image("a")]), NOW, tagged_at={"a": ago(days=3)}
    )
    assert h.images["a"].first_seen == ago(days=3)


def test_tag_time_in_the_future_does_not_move_first_seen_past_now():
    """A tag time after now (clock skew) leaves first_seen at now."""
    h = observe(
        History.empty(NOW), snapshot(images=[image("a")]), NOW, tagged_at={"a": NOW + timedelta(1)}
    )
    assert h.images["a"].first_seen == NOW


def test_new_image_first_seen_at_its_earliest_container_creation():
    """A container made from the image proves it was there when the container was created."""
    cs = [
        container("c1", "a", created=ago(days=5), finished_at=ago(days=4)),
        container("c2", "a", created=ago(days=2), finished_at=ago(days=1)),
    ]
    h = observe(History.empty(NOW), snapshot(images=[image("a")], containers=cs), NOW)
    assert h.images["a"].first_seen == ago(days=5)


def test_new_image_first_seen_is_the_earliest_of_all_evidence():
    """Tag time and container creation both count; the earliest wins."""
    cs = [container("c1", "a", created=ago(days=2))]
    h = observe(
        History.empty(NOW),
        snapshot(images=[image("a")], containers=cs),
        NOW,
        tagged_at={"a": ago(days=6)},
    )
    assert h.images["a"].first_seen == ago(days=6)


def test_known_image_keeps_its_first_seen_despite_earlier_evidence():
    """Once recorded, first_seen never changes."""
    old = history(ago(days=10), a=record(ago(days=1)))
    cs = [container("c1", "a", created=ago(days=5))]
    h = observe(
        old, snapshot(images=[image("a")], containers=cs), NOW, tagged_at={"a": ago(days=9)}
    )
    assert h.images["a"].first_seen == ago(days=1)


@pytest.mark.parametrize(
    "state",
    [
        ContainerState.RUNNING,
        ContainerState.PAUSED,
        ContainerState.RESTARTING,
        ContainerState.REMOVING,
        ContainerState.UNKNOWN,
    ],
)
def test_image_of_a_live_container_is_used_now(state):
    """A container that is not dead uses its image now."""
    cs = [container("c1", "a", state, created=ago(days=5))]
    h = observe(History.empty(NOW), snapshot(images=[image("a")], containers=cs), NOW)
    assert h.images["a"].last_used == NOW


def test_image_of_a_dead_container_was_last_used_when_it_finished():
    """An exited container's finish time, not the scan time, is the image's last use."""
    cs = [container("c1", "a", created=ago(days=5), finished_at=ago(days=4))]
    h = observe(History.empty(NOW), snapshot(images=[image("a")], containers=cs), NOW)
    assert h.images["a"].last_used == ago(days=4)


@pytest.mark.parametrize("state", [ContainerState.CREATED, ContainerState.EXITED])
def test_dead_container_without_finish_time_used_its_image_at_creation(state):
    """No finish time (never started): the creation time is the evidence."""
    cs = [container("c1", "a", state, created=ago(days=5), finished_at=None)]
    h = observe(History.empty(NOW), snapshot(images=[image("a")], containers=cs), NOW)
    assert h.images["a"].last_used == ago(days=5)


def test_latest_evidence_among_containers_wins():
    """Several dead containers of one image: the latest finish is the last use."""
    cs = [
        container("c1", "a", created=ago(days=9), finished_at=ago(days=8)),
        container("c2", "a", created=ago(days=7), finished_at=ago(days=2)),
        container("c3", "a", created=ago(days=6), finished_at=ago(days=5)),
    ]
    h = observe(History.empty(NOW), snapshot(images=[image("a")], containers=cs), NOW)
    assert h.images["a"].last_used == ago(days=2)


def test_live_container_beats_dead_ones():
    """One running container among dead ones: used now."""
    cs = [
        container("c1", "a", created=ago(days=9), finished_at=ago(days=8)),
        container("c2", "a", ContainerState.RUNNING, created=ago(days=7)),
    ]
    h = observe(History.empty(NOW), snapshot(images=[image("a")], containers=cs), NOW)
    assert h.images["a"].last_used == NOW


def test_finish_time_in_the_future_counts_as_now():
    """A finish time after now (clock skew) is capped at now."""
    cs = [container("c1", "a", created=ago(days=1), finished_at=NOW + timedelta(hours=1))]
    h = observe(History.empty(NOW), snapshot(images=[image("a")], containers=cs), NOW)
    assert h.images["a"].last_used == NOW


def test_last_used_never_moves_backwards():
    """Older evidence from a dead container does not undo a later recorded use."""
    old = history(ago(days=10), a=record(ago(days=10), ago(hours=1)))
    cs = [container("c1", "a", created=ago(days=5), finished_at=ago(days=4))]
    h = observe(old, snapshot(images=[image("a")], containers=cs), NOW)
    assert h.images["a"].last_used == ago(hours=1)


def test_last_used_moves_forward_with_newer_evidence():
    """A later finish than the recorded last use replaces it."""
    old = history(ago(days=10), a=record(ago(days=10), ago(days=3)))
    cs = [container("c1", "a", created=ago(days=2), finished_at=ago(days=1))]
    h = observe(old, snapshot(images=[image("a")], containers=cs), NOW)
    assert h.images["a"].last_used == ago(days=1)


def test_recorded_use_survives_when_the_container_is_gone():
    """No container any more: the recorded last use stays."""
    old = history(ago(days=10), a=record(ago(days=10), ago(days=3)))
    h = observe(old, snapshot(images=[image("a")]), NOW)
    assert h.images["a"] == record(ago(days=10), ago(days=3))


def test_records_of_vanished_images_are_dropped():
    """An image no longer listed is forgotten (a re-pull is a new image)."""
    old = history(ago(days=10), a=record(ago(days=9)), gone=record(ago(days=9), ago(days=1)))
    h = observe(old, snapshot(images=[image("a")]), NOW)
    assert set(h.images) == {"a"}


def test_containers_of_unlisted_images_create_no_record():
    """Evidence about an image not in the listing adds no record."""
    cs = [container("c1", "ghost", ContainerState.RUNNING)]
    h = observe(History.empty(NOW), snapshot(images=[image("a")], containers=cs), NOW)
    assert set(h.images) == {"a"}


def test_since_is_preserved():
    """Observing never changes when history began."""
    start = ago(days=42)
    h = observe(history(start), snapshot(images=[image("a")]), NOW)
    assert h.since == start


def test_observe_does_not_mutate_the_old_history():
    """observe returns a new History; the input stays as it was."""
    old = history(ago(days=10), a=record(ago(days=9)))
    observe(old, snapshot(images=[image("b")]), NOW)
    assert dict(old.images) == {"a": record(ago(days=9))}


OFFSETS = st.integers(0, 60 * 24 * 30).map(lambda m: ago(minutes=m))


@st.composite
def evidence(draw):
    image_ids = ["a", "b", "c"]
    listed = draw(st.lists(st.sampled_from(image_ids), unique=True))
    records = {}
    for i in draw(st.lists(st.sampled_from(image_ids), unique=True)):
        first = draw(OFFSETS)
        last = draw(st.one_of(st.none(), OFFSETS.filter(lambda t, f=first: t >= f)))
        records[i] = record(first, last)
    cs = []
    for n in range(draw(st.integers(0, 5))):
        created = draw(OFFSETS)
        finished = draw(st.one_of(st.none(), OFFSETS.filter(lambda t, c=created: t >= c)))
        state = draw(st.sampled_from(list(ContainerState)))
        cs.append(container(f"c{n}", draw(st.sampled_from(image_ids)), state, created, finished))
    tagged = draw(st.dictionaries(st.sampled_from(image_ids), OFFSETS))
    return history(ago(days=60), **records), [image(i) for i in listed], cs, tagged


@given(evidence())
def test_property_records_follow_the_listing_and_never_go_back(ev):
    """Exactly the listed images have records; first_seen <= now; last_used never decreases."""
    old, images, cs, tagged = ev
    h = observe(old, snapshot(images=images, containers=cs), NOW, tagged)
    assert set(h.images) == {i.id for i in images}
    for image_id, rec in h.images.items():
        assert rec.first_seen <= NOW
        assert rec.last_used is None or rec.last_used <= NOW
        before = old.images.get(image_id)
        if before is not None:
            assert rec.first_seen == before.first_seen
            if before.last_used is not None:
                assert rec.last_used is not None and rec.last_used >= before.last_used
