"""Properties over image families: classic parent chains (a child's layers extend its parent's,
`parent_id` names the parent), siblings on one parent, and images of different families sharing
base layers; some in use, pinned or too young (which keeps every ancestor). Over the fake
runtime, whose disk is the union of the layers its remaining images hold and which refuses a
parent while a child is there:

- the plan never removes a parent before its child, nor a parent whose child stays;
- what the plan says each removal frees (bytes and inodes) is what the fake frees;
- one `once` reaches the low thresholds exactly when removing every image no rule keeps would.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from nodegc.collect.cycle import Collector
from nodegc.model import Action, ContainerState, Image, Layer, Outcome
from nodegc.policy.images import Counted, plan_images
from nodegc.state.store import StateDir
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import NOW, ago, container, history, image_settings, make_settings, record

FS_PATH = "/fake/var/lib/docker"
PINNED = {"nodegc.io/pinned": "true"}
MINIMUM_AGE = timedelta(hours=1)


@st.composite
def families(draw):
    """A fake node of image families, and the image settings to plan with."""
    fake = FakeRuntime(capacity_bytes=3000, inodes_total=4000)
    bases = [
        Layer(f"base{b}", draw(st.integers(0, 200)), draw(st.integers(0, 200))) for b in range(3)
    ]
    made: list[str] = []
    records = {}
    for k in range(draw(st.integers(1, 10))):
        own = Layer(f"own{k}", draw(st.integers(0, 150)), draw(st.integers(0, 150)))
        # A child of the image made last (chains), of an earlier one (siblings), or a root on a
        # prefix of the shared bases.
        how = draw(st.sampled_from(["root", "chain", "chain", "sibling"])) if made else "root"
        parent = (
            "" if how == "root" else (made[-1] if how == "chain" else draw(st.sampled_from(made)))
        )
        stack = [*fake.layers[parent], own] if parent else [*bases[: draw(st.integers(0, 3))], own]
        young = draw(st.integers(0, 5)) == 0
        first_seen = (
            ago(minutes=draw(st.integers(1, 59))) if young else ago(days=draw(st.integers(1, 40)))
        )
        fake.add_image(
            Image(
                f"i{k}",
                tags=(f"app{k}:1",),
                parent_id=parent,
                labels=PINNED if draw(st.integers(0, 7)) == 0 else {},
            ),
            tagged_at=first_seen,
            layers=stack,
        )
        last_used = None
        if not young and draw(st.booleans()):
            last_used = min(NOW, first_seen + timedelta(days=draw(st.integers(0, 40))))
        records[f"i{k}"] = record(first_seen, last_used)
        made.append(f"i{k}")
    for c in range(draw(st.integers(0, 2))):
        state = draw(st.sampled_from([ContainerState.RUNNING, ContainerState.EXITED]))
        fake.add_container(container(f"c{c}", draw(st.sampled_from(made)), state))
    used, inodes = fake.held()
    fake.capacity_bytes = max(fake.capacity_bytes, used + 1)
    fake.other_used_bytes = draw(st.integers(0, fake.capacity_bytes - used))
    fake.other_used_inodes = draw(st.integers(0, max(0, fake.inodes_total - inodes)))
    high = draw(st.integers(2, 100))
    inode_high = draw(st.sampled_from([100, 95, 60, 30]))
    settings = {
        "high_threshold_percent": high,
        "low_threshold_percent": draw(st.integers(1, high - 1)),
        "inode_high_threshold_percent": inode_high,
        "inode_low_threshold_percent": draw(st.integers(1, inode_high - 1)),
        "minimum_age": MINIMUM_AGE,
    }
    maximum_age = draw(st.sampled_from([timedelta(0), timedelta(days=10)]))
    return fake, settings, records, maximum_age


def plan_of(fake: FakeRuntime, settings: dict, records: dict, maximum_age: timedelta):
    return plan_images(
        fake.measure(FS_PATH),
        list(fake.images.values()),
        list(fake.containers.values()),
        history(ago(days=400), **records),
        image_settings(**settings, maximum_age=maximum_age),
        NOW,
        counted=Counted(layers=fake.image_layers(list(fake.images))),
    )


def first_sighting(fake: FakeRuntime, image_id: str):
    """When a first cycle takes the image to have arrived: its tag time, or the creation of a
    container made from it when earlier (policy.history's rule)."""
    made = [c.created for c in fake.containers.values() if c.image_id == image_id]
    return min([fake.tagged_at[image_id], *made])


def stays(fake: FakeRuntime) -> set[str]:
    """Independently of the policy: the images no rule may remove (pinned, used by a running
    container, first seen less than the minimum age ago) and every ancestor of one."""
    kept = set()
    for i in fake.images.values():
        # Dead containers go under disk pressure (and the images they leave): only a live one
        # keeps its image for good.
        in_use = any(c.image_id == i.id and not c.state.is_dead for c in fake.containers.values())
        young = NOW - first_sighting(fake, i.id) < MINIMUM_AGE
        if in_use or young or i.labels == PINNED:
            kept.add(i.id)
    for image_id in list(kept):
        parent = fake.images[image_id].parent_id
        while parent:
            kept.add(parent)
            parent = fake.images[parent].parent_id
    return kept


@given(families())
def test_property_a_parent_never_goes_before_its_child_nor_while_a_child_stays(family):
    fake, settings, records, maximum_age = family
    p = plan_of(fake, settings, records, maximum_age)
    order = [d.image.id for d in p.removals]
    removed = set(order)
    for image_id in order:
        for child in (i for i in fake.images.values() if i.parent_id == image_id):
            assert child.id in removed, f"{image_id} planned while its child {child.id} stays"
            assert order.index(child.id) < order.index(image_id), (child.id, image_id)
    assert not removed & stays(fake)


@given(families())
def test_property_what_each_family_removal_frees_is_what_the_fake_frees(family):
    fake, settings, records, maximum_age = family
    p = plan_of(fake, settings, records, maximum_age)
    for d in p.removals:
        before = fake.measure(FS_PATH)
        fake.remove_image(d.image)  # the fake refuses a parent before its children
        after = fake.measure(FS_PATH)
        assert after.available_bytes - before.available_bytes == d.frees_bytes, d.image.id
        assert after.inodes_free - before.inodes_free == d.frees_inodes, d.image.id
    assert all(d.frees_bytes == 0 for d in p.decisions if d.action is Action.KEEP)


def reachable(fake: FakeRuntime, p) -> bool:
    """Would removing every image no rule keeps bring both figures to their low thresholds?"""
    trial = FakeRuntime(capacity_bytes=fake.capacity_bytes, inodes_total=fake.inodes_total)
    trial.other_used_bytes, trial.other_used_inodes = fake.other_used_bytes, fake.other_used_inodes
    for image_id in stays(fake):
        trial.add_image(fake.images[image_id], layers=fake.layers[image_id])
    disk = trial.measure(FS_PATH)
    ok = not p.bytes_to_free or disk.usage_percent <= p.low_threshold_percent
    return ok and (
        not p.inodes_to_free or disk.inode_usage_percent <= p.inode_low_threshold_percent
    )


@settings(max_examples=60)  # each example runs a whole cycle: the unit suite stays fast
@given(family=families())
def test_property_one_once_over_families_reaches_low_exactly_when_reachable(
    family, tmp_path_factory
):
    fake, settings, _records, _maximum_age = family
    state = tmp_path_factory.mktemp("state")
    first_sightings = {i: record(first_sighting(fake, i)) for i in fake.images}
    p = plan_of(fake, settings, first_sightings, timedelta(0))  # what a first cycle plans
    expected = reachable(fake, p)
    kept = stays(fake)
    config = make_settings(state, FS_PATH, images={**settings, "minimum_age": "1h"})
    gc = Collector(config, fake, StateDir(state), clock=lambda: NOW, measure=fake.measure)
    report = gc.cycle(containers=False)
    after = fake.measure(FS_PATH)
    assert all(r.outcome is Outcome.REMOVED for r in report.image_results)
    assert report.target_reached == expected
    if expected and p.bytes_to_free:
        assert after.usage_percent <= p.low_threshold_percent
    if expected and p.inodes_to_free:
        assert after.inode_usage_percent <= p.inode_low_threshold_percent
    assert not {r.id for r in report.image_results} & kept
