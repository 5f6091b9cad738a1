"""Layer accounting (policy/space.py), the planner over shared layers, and the closed loop over
the fake runtime, whose disk is the union of the layers its remaining images hold."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodegc.collect.cycle import Collector
from nodegc.model import Action, ContainerState, Image, Layer, Outcome, Reason
from nodegc.policy.images import Counted, image_holdings, plan_images, target_met
from nodegc.policy.space import Freed, Ledger, estimate_sizes
from nodegc.runtime import Conflict
from nodegc.state.store import StateDir
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import (
    NOW,
    ago,
    container,
    history,
    image,
    image_settings,
    make_settings,
    record,
)

MiB = 1 << 20
FS_PATH = "/fake/var/lib/docker"


def L(key: str, size: int, inodes: int | None = 0) -> Layer:
    return Layer(key=key, size_bytes=size, inodes=inodes)


# -- the ledger ---------------------------------------------------------------------------------


def test_a_shared_layer_is_freed_by_the_last_holder_only():
    ledger = Ledger({"a": [L("base", 40), L("a", 3)], "b": [L("base", 40), L("b", 3)]})
    assert ledger.frees("a") == Freed(3, 0)
    assert ledger.remove("a") == Freed(3, 0)
    assert ledger.frees("b") == Freed(43, 0)
    assert ledger.remove("b") == Freed(43, 0)
    assert ledger.remove("b") == Freed(0, 0)  # twice: nothing more
    assert ledger.held() == Freed(0, 0)


def test_inodes_are_unknown_when_a_freed_layer_does_not_tell_them():
    ledger = Ledger({"a": [L("x", 1, None), L("y", 1, 5)]})
    assert ledger.frees("a") == Freed(2, None)
    ledger = Ledger({"a": [L("x", 1, None), L("y", 1, 5)], "b": [L("x", 1, None)]})
    assert ledger.frees("a") == Freed(1, 5)  # the unknown one stays with b


def test_a_layer_listed_twice_by_one_holder_counts_once():
    ledger = Ledger({"a": [L("x", 7), L("x", 7)]})
    assert ledger.held() == Freed(7, 0)
    assert ledger.remove("a") == Freed(7, 0)


def test_other_kinds_of_holders_keep_an_image_layer():
    """A holder of another kind (a build cache record) sharing a layer: the image alone frees
    only what it holds alone."""
    ledger = Ledger({"image:a": [L("l1", 30), L("l2", 1)]})
    ledger.add("cache:r", [L("l1", 30)])
    assert ledger.remove("image:a") == Freed(1, 0)
    assert ledger.remove("cache:r") == Freed(30, 0)


def test_estimated_sizes_are_exact_when_the_base_is_an_image():
    """CRI: only totals. A base image of 40 and two images on it of 43 and 45: the base prefix
    is 40 and each child's own layer is the rest."""
    stacks = {
        "base": [Layer("c0", None)],
        "a": [Layer("c0", None), Layer("ca", None)],
        "b": [Layer("c0", None), Layer("cb", None)],
    }
    out = estimate_sizes(stacks, {"base": 40, "a": 43, "b": 45})
    assert [x.size_bytes for x in out["a"]] == [40, 3]
    assert [x.size_bytes for x in out["b"]] == [40, 5]
    assert [x.size_bytes for x in out["base"]] == [40]


def test_estimated_sizes_never_overstate_what_a_removal_frees():
    """Without the base image, the shared prefix is estimated as the smallest total holding it:
    a removal is said to free at most what it really frees."""
    stacks = {
        "a": [Layer("c0", None), Layer("ca", None)],
        "b": [Layer("c0", None), Layer("cb", None)],
    }
    out = estimate_sizes(stacks, {"a": 43, "b": 45})
    assert sum(x.size_bytes for x in out["a"]) == 43
    assert sum(x.size_bytes for x in out["b"]) == 45
    ledger = Ledger(out)
    assert ledger.frees("a").bytes == 0  # really 3: understated, never overstated
    assert ledger.frees("b").bytes == 2  # really 5


# -- the planner over shared layers ----------------------------------------------------------------


def eight_on_one_base(fake: FakeRuntime) -> list[str]:
    """The issue's case: eight unused images on one 40 MiB base, 3 MiB of their own each."""
    ids = []
    for n in range(8):
        i = fake.add_image(
            image(f"img{n}", tags=[f"app{n}:1"]),
            tagged_at=ago(days=10 - n),
            layers=[L("base", 40 * MiB, 400), L(f"own{n}", 3 * MiB, 30)],
        )
        ids.append(i.id)
    return ids


def test_the_plan_counts_what_each_removal_really_frees():
    """Eight images of 43 MiB listed each, 64 MiB on disk: to free 24 MiB all eight must go
    (the base comes back only with the last), not one."""
    fake = FakeRuntime(capacity_bytes=100 * MiB)
    ids = eight_on_one_base(fake)
    disk = fake.measure(FS_PATH)
    assert disk.usage_percent == 64
    settings = image_settings(high_threshold_percent=60, low_threshold_percent=40)
    p = plan_images(
        disk,
        list(fake.images.values()),
        [],
        history(),
        settings,
        NOW,
        counted=Counted(layers=fake.image_layers(ids)),
    )
    removals = p.removals
    assert [d.image.id for d in removals] == ids  # LRU: first pulled first
    assert [d.frees_bytes for d in removals] == [3 * MiB] * 7 + [43 * MiB]
    assert all(d.unique_size_bytes == 3 * MiB for d in p.decisions)
    assert p.bytes_planned == 64 * MiB
    assert disk.usage_percent_after(p.bytes_planned) == 0


def test_the_walk_stops_when_really_freed_bytes_cover_the_need():
    fake = FakeRuntime(capacity_bytes=100 * MiB)
    ids = eight_on_one_base(fake)
    settings = image_settings(high_threshold_percent=60, low_threshold_percent=58)  # wants 6 MiB
    p = plan_images(
        fake.measure(FS_PATH),
        list(fake.images.values()),
        [],
        history(),
        settings,
        NOW,
        counted=Counted(layers=fake.image_layers(ids)),
    )
    assert [d.image.id for d in p.removals] == ids[:2]
    assert p.bytes_planned == 6 * MiB
    assert {d.reason for d in p.decisions if d.action is Action.KEEP} == {Reason.TARGET_REACHED}


def test_a_base_held_by_an_image_in_use_is_not_counted():
    """The unreachable case: the base stays with the image in use, so removing the other seven
    frees 21 MiB; the plan says so and does not claim the target."""
    fake = FakeRuntime(capacity_bytes=100 * MiB)
    ids = eight_on_one_base(fake)
    fake.add_container(container("web", ids[7], ContainerState.RUNNING))
    settings = image_settings(high_threshold_percent=60, low_threshold_percent=30)
    p = plan_images(
        fake.measure(FS_PATH),
        list(fake.images.values()),
        list(fake.containers.values()),
        history(),
        settings,
        NOW,
        counted=Counted(layers=fake.image_layers(ids)),
    )
    assert len(p.removals) == 7
    assert p.bytes_planned == 21 * MiB
    assert not p.target_reachable


def test_children_go_just_before_their_parent_and_a_parent_of_an_image_in_use_stays():
    """Classic-builder chains: `child` built on `parent`; `kid2` on `parent2` is in use."""
    fake = FakeRuntime(capacity_bytes=1000)
    fake.add_image(image("parent"), tagged_at=ago(days=9), layers=[L("p", 100)])
    fake.add_image(image("other"), tagged_at=ago(days=8), layers=[L("o", 100)])
    fake.add_image(
        Image("child", parent_id="parent"), tagged_at=ago(days=1), layers=[L("p", 100), L("c", 50)]
    )
    fake.add_image(image("parent2"), tagged_at=ago(days=7), layers=[L("p2", 100)])
    fake.add_image(
        Image("kid2", parent_id="parent2"), tagged_at=ago(days=6), layers=[L("p2", 100), L("k", 1)]
    )
    fake.add_container(container("c", "kid2", ContainerState.RUNNING))
    fake.other_used_bytes = 590  # 941 of 1000 used: wants 141 to reach 80%
    settings = image_settings()
    seen = {"parent": 9, "other": 8, "parent2": 7, "kid2": 6, "child": 1}
    p = plan_images(
        fake.measure(FS_PATH),
        list(fake.images.values()),
        list(fake.containers.values()),
        history(**{i: record(ago(days=d)) for i, d in seen.items()}),
        settings,
        NOW,
        counted=Counted(layers=fake.image_layers(list(fake.images))),
    )
    # `parent` is the least recently used: its child goes just before it, and 150 cover 141.
    assert [d.image.id for d in p.removals] == ["child", "parent"]
    assert [d.frees_bytes for d in p.removals] == [50, 100]
    reasons = {d.image.id: d.reason for d in p.decisions}
    assert reasons["other"] is Reason.TARGET_REACHED
    assert reasons["parent2"] is Reason.PARENT_OF_IN_USE
    assert reasons["kid2"] is Reason.IN_USE


def test_an_old_parent_goes_for_age_only_with_its_children():
    fake = FakeRuntime()
    fake.add_image(image("parent"), layers=[L("p", 10)])
    fake.add_image(Image("child", parent_id="parent"), layers=[L("p", 10), L("c", 1)])
    hist = history(
        ago(days=100),
        parent=record(ago(days=50)),
        child=record(ago(days=1)),
    )
    settings = image_settings(maximum_age=timedelta(days=7))
    p = plan_images(
        fake.measure(FS_PATH),
        list(fake.images.values()),
        [],
        hist,
        settings,
        NOW,
        counted=Counted(layers=fake.image_layers(list(fake.images))),
    )
    assert p.removals == ()


def test_inode_pressure_alone_removes_for_inodes():
    fake = FakeRuntime(capacity_bytes=100 * MiB, inodes_total=4000)
    ids = eight_on_one_base(fake)
    fake.other_used_inodes = 3300  # 3300 + 400 + 8*30 = 3940 of 4000: 99% used
    disk = fake.measure(FS_PATH)
    assert disk.inode_usage_percent == 99 and disk.usage_percent == 64
    p = plan_images(
        disk,
        list(fake.images.values()),
        [],
        history(),
        image_settings(),  # bytes 85/80: no byte pressure; inodes 95/90
        NOW,
        counted=Counted(layers=fake.image_layers(ids)),
    )
    assert p.bytes_to_free == 0 and p.inodes_to_free == 4000 * 10 // 100 - 60
    # 340 inodes: 30 per image until the base's 400 come back with the last one.
    assert [d.reason for d in p.removals] == [Reason.INODES] * 8
    assert p.inodes_planned == 640
    assert p.target_reachable


def test_unknown_inode_counts_plan_every_candidate_for_the_loop_to_stop():
    fake = FakeRuntime(capacity_bytes=100 * MiB, inodes_total=4000)
    ids = eight_on_one_base(fake)
    fake.other_used_inodes = 3300
    fake.tells_layer_inodes = False
    p = plan_images(
        fake.measure(FS_PATH),
        list(fake.images.values()),
        [],
        history(),
        image_settings(),
        NOW,
        counted=Counted(layers=fake.image_layers(ids)),
    )
    assert len(p.removals) == 8 and p.inodes_planned is None


# -- the closed loop --------------------------------------------------------------------------


def collector(tmp_path, fake: FakeRuntime, workers: int = 1, **images) -> Collector:
    settings = make_settings(tmp_path / "state", FS_PATH, images=images)
    runtime = settings.runtime.model_copy(update={"max_concurrent_removals": workers})
    settings = settings.model_copy(update={"runtime": runtime})
    return Collector(
        settings, fake, StateDir(tmp_path / "state"), clock=lambda: NOW, measure=fake.measure
    )


def test_once_removes_exactly_what_reaches_low_and_reports_what_the_disk_shows(tmp_path):
    """The issue's measured case on the fake: 91% with 85/80. The plan takes all eight (the base
    comes back only with the last); once ends at or below 80%, and bytes_freed is the disk's."""
    fake = FakeRuntime(capacity_bytes=500 * MiB)
    eight_on_one_base(fake)
    fake.other_used_bytes = 391 * MiB  # 391 + 64 = 455 MiB used: 91%; 55 MiB to reach 80%
    gc = collector(tmp_path, fake, high_threshold_percent=85, low_threshold_percent=80)
    before = fake.measure(FS_PATH)
    plan = gc.report()
    report = gc.cycle()
    after = fake.measure(FS_PATH)
    assert after.usage_percent <= 80
    assert report.target_reached
    assert report.image_bytes_freed == after.available_bytes - before.available_bytes == 64 * MiB
    assert sum(r.size_bytes for r in report.image_results) == 64 * MiB
    assert len(plan.images.removals) == 8
    assert before.usage_percent_after(plan.images.bytes_planned) == after.usage_percent == 79


@pytest.mark.parametrize("workers", [1, 4])
def test_the_loop_goes_on_past_the_plan_when_the_disk_took_back_less(tmp_path, workers):
    """The runtime says each image frees 3 MiB but the disk gives back less (another writer):
    the loop keeps going down the LRU order within the same cycle until the disk is at low."""
    fake = FakeRuntime(capacity_bytes=100 * MiB)
    ids = eight_on_one_base(fake)

    def someone_writes(_image_id: str) -> None:
        fake.other_used_bytes += 2 * MiB

    fake.before_remove = someone_writes
    gc = collector(
        tmp_path, fake, workers=workers, high_threshold_percent=60, low_threshold_percent=58
    )
    report = gc.cycle()
    assert [d.image.id for d in report.image_plan.removals] == ids[:2]
    removed = [r.id for r in report.image_results if r.outcome is Outcome.REMOVED]
    # Each nets 1 MiB: six to get 6 MiB back (with four in flight, the in-flight ones are
    # waited for and measured before going on; at most the others in flight go past).
    assert set(removed) == set(ids[: len(removed)])  # a prefix of the LRU order
    assert 6 <= len(removed) <= 6 + workers - 1
    assert fake.measure(FS_PATH).usage_percent <= 58
    assert report.target_reached


def test_planned_removals_the_disk_no_longer_needs_are_left_out(tmp_path):
    fake = FakeRuntime(capacity_bytes=100 * MiB)
    ids = eight_on_one_base(fake)

    def someone_deletes(_image_id: str) -> None:
        fake.other_used_bytes = 0

    fake.other_used_bytes = 10 * MiB
    fake.before_remove = someone_deletes
    gc = collector(tmp_path, fake, high_threshold_percent=70, low_threshold_percent=66)
    report = gc.cycle()
    assert len(report.image_plan.removals) == 3  # 74% -> 66%: 8 MiB
    assert [r.id for r in report.image_results] == ids[:1]
    assert report.images_not_needed == set(ids[1:3])


def test_never_more_removals_past_the_target_than_in_flight(tmp_path):
    fake = FakeRuntime(capacity_bytes=100 * MiB)
    eight_on_one_base(fake)
    fake.other_used_bytes = 10 * MiB

    def free_it_all(_image_id: str) -> None:
        fake.other_used_bytes = 0

    fake.before_remove = free_it_all
    gc = collector(tmp_path, fake, workers=4, high_threshold_percent=70, low_threshold_percent=66)
    report = gc.cycle()
    # The first completion meets the target: at most the 3 others in flight went too.
    assert 1 <= len(report.image_results) <= 4


def test_unreachable_target_removes_what_it_can_and_says_so(tmp_path):
    fake = FakeRuntime(capacity_bytes=500 * MiB)
    ids = eight_on_one_base(fake)
    fake.add_container(container("web", ids[7], ContainerState.RUNNING))
    fake.other_used_bytes = 391 * MiB
    gc = collector(tmp_path, fake, high_threshold_percent=85, low_threshold_percent=80)
    report = gc.cycle()
    assert [r.id for r in report.image_results] == ids[:7]
    assert report.image_bytes_freed == 21 * MiB
    assert not report.target_reached
    assert fake.measure(FS_PATH).usage_percent > 80


def test_a_parent_whose_child_stays_is_skipped_without_asking_the_engine(tmp_path):
    fake = FakeRuntime(capacity_bytes=1000)
    fake.add_image(image("parent"), tagged_at=ago(days=9), layers=[L("p", 100)])
    fake.add_image(
        Image("child", parent_id="parent"), tagged_at=ago(days=1), layers=[L("p", 100), L("c", 50)]
    )
    fake.other_used_bytes = 800
    fake.fail_removal["child"] = Conflict("child: in use")
    report = collector(tmp_path, fake).cycle()
    assert [(r.id, r.outcome) for r in report.image_results] == [
        ("child", Outcome.SKIPPED),
        ("parent", Outcome.SKIPPED),
    ]
    assert "remove_image parent" not in fake.calls
    assert "built on it stays" in report.image_results[1].detail


def test_layers_are_asked_once_per_image_id_and_kept_in_the_state_directory(tmp_path):
    fake = FakeRuntime(capacity_bytes=100 * MiB)
    eight_on_one_base(fake)
    collector(tmp_path, fake).cycle()
    assert fake.calls.count("image_layers") == 1
    collector(tmp_path, fake).cycle()  # a new process: from layers.json
    assert fake.calls.count("image_layers") == 1
    fake.add_image(image("late"), layers=[L("base", 40 * MiB), L("late", 1)])
    gc = collector(tmp_path, fake)
    gc.observe()
    assert fake.calls.count("image_layers") == 2
    assert set(StateDir(tmp_path / "state").load_layers()) == set(fake.images)


# -- properties: what the plan says is what the disk shows ----------------------------------------


@st.composite
def layered_inventories(draw):
    """Images on shared bases, some built on others (parent chains), some in use; a disk."""
    fake = FakeRuntime(capacity_bytes=draw(st.integers(200, 3000)), inodes_total=3000)
    bases = [L(f"base{b}", draw(st.integers(0, 200)), draw(st.integers(0, 200))) for b in range(3)]
    n = draw(st.integers(1, 9))
    made: list[str] = []
    for k in range(n):
        own = L(f"own{k}", draw(st.integers(0, 120)), draw(st.integers(0, 120)))
        parent = draw(st.sampled_from(["", *made])) if made and draw(st.booleans()) else ""
        if parent:
            stack = [*fake.layers[parent], own]
        else:
            depth = draw(st.integers(0, 2))
            stack = [*bases[:depth], own]
        fake.add_image(
            Image(f"i{k}", tags=(f"app{k}:1",), parent_id=parent),
            tagged_at=ago(days=draw(st.integers(1, 30))),
            layers=stack,
        )
        made.append(f"i{k}")
    for c in range(draw(st.integers(0, 2))):
        fake.add_container(container(f"c{c}", draw(st.sampled_from(made)), ContainerState.RUNNING))
    used, inodes = fake.held()
    fake.capacity_bytes = max(fake.capacity_bytes, used + 1)
    fake.other_used_bytes = draw(st.integers(0, fake.capacity_bytes - used))
    fake.other_used_inodes = draw(st.integers(0, max(0, 3000 - inodes)))
    high = draw(st.integers(2, 100))
    low = draw(st.integers(1, high - 1))
    inode_high = draw(st.sampled_from([100, 95, 60, 30]))
    inode_low = draw(st.integers(1, inode_high - 1))
    settings = {
        "high_threshold_percent": high,
        "low_threshold_percent": low,
        "inode_high_threshold_percent": inode_high,
        "inode_low_threshold_percent": inode_low,
    }
    return fake, settings


def _plan(fake: FakeRuntime, settings: dict):
    return plan_images(
        fake.measure(FS_PATH),
        list(fake.images.values()),
        list(fake.containers.values()),
        history(),
        image_settings(**settings),
        NOW,
        counted=Counted(layers=fake.image_layers(list(fake.images))),
    )


@given(layered_inventories())
def test_property_what_the_plan_says_each_removal_frees_is_what_the_fake_frees(inv):
    fake, settings = inv
    p = _plan(fake, settings)
    for d in p.removals:
        before = fake.measure(FS_PATH)
        fake.remove_image(d.image)  # raises if a parent went before its child
        after = fake.measure(FS_PATH)
        assert after.available_bytes - before.available_bytes == d.frees_bytes, d.image.id
        assert after.inodes_free - before.inodes_free == d.frees_inodes, d.image.id


@given(layered_inventories())
def test_property_unique_size_is_what_removing_the_image_alone_frees(inv):
    fake, settings = inv
    p = _plan(fake, settings)
    for d in p.decisions:
        if d.action is Action.KEEP and d.reason in (Reason.IN_USE, Reason.PARENT_OF_IN_USE):
            continue
        trial = FakeRuntime(capacity_bytes=fake.capacity_bytes)
        for i in fake.images.values():
            trial.add_image(i, layers=fake.layers[i.id])
        before = trial.measure(FS_PATH).available_bytes
        del trial.images[d.image.id]
        assert trial.measure(FS_PATH).available_bytes - before == d.unique_size_bytes


def _reachable(fake: FakeRuntime, p) -> bool:
    """Independently: would removing every image not kept for good reach both targets?"""
    trial = FakeRuntime(capacity_bytes=fake.capacity_bytes, inodes_total=fake.inodes_total)
    trial.other_used_bytes, trial.other_used_inodes = fake.other_used_bytes, fake.other_used_inodes
    users = {c.image_id for c in fake.containers.values()}
    stay = set(users)
    for image_id in list(users):  # ancestors of an image in use stay
        parent = fake.images[image_id].parent_id
        while parent:
            stay.add(parent)
            parent = fake.images[parent].parent_id
    for i in fake.images.values():
        if i.id in stay:
            trial.add_image(i, layers=fake.layers[i.id])
    disk = trial.measure(FS_PATH)
    ok = not p.bytes_to_free or disk.usage_percent <= p.low_threshold_percent
    return ok and (
        not p.inodes_to_free or disk.inode_usage_percent <= p.inode_low_threshold_percent
    )


@given(inv=layered_inventories())
def test_property_one_once_reaches_low_when_reachable_with_no_removal_to_spare(
    inv, tmp_path_factory
):
    fake, settings = inv
    fake_layers = dict(fake.layers)
    p = _plan(fake, settings)
    reachable = _reachable(fake, p)
    gc = collector(tmp_path_factory.mktemp("state"), fake, **settings)
    report = gc.cycle(containers=False)
    after = fake.measure(FS_PATH)
    assert all(r.outcome is Outcome.REMOVED for r in report.image_results)
    assert report.target_reached == reachable
    if reachable and p.under_pressure:
        if p.bytes_to_free:
            assert after.usage_percent <= p.low_threshold_percent
        if p.inodes_to_free:
            assert after.inode_usage_percent <= p.inode_low_threshold_percent
        # Minimal: without its last removal the disk would not be there yet.
        *rest, _last = report.image_results
        trial = FakeRuntime(capacity_bytes=fake.capacity_bytes, inodes_total=fake.inodes_total)
        trial.other_used_bytes = fake.other_used_bytes
        trial.other_used_inodes = fake.other_used_inodes
        gone = {r.id for r in rest}
        for d in p.decisions:
            if d.image.id not in gone:
                trial.add_image(d.image, layers=fake_layers[d.image.id])
        assert not target_met(trial.measure(FS_PATH), p)
    assert report.image_bytes_freed == sum(r.size_bytes for r in report.image_results)


def test_image_holdings_default_to_one_private_layer_of_the_listed_size():
    out = image_holdings([image("a", 10)], {})
    assert [(x.key, x.size_bytes) for x in out["a"]] == [("a", 10)]


def test_inode_thresholds_are_validated_like_the_byte_thresholds():
    import pytest

    from nodegc.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=r"images\.inode_low_threshold_percent = 95"):
        load_settings(
            None,
            {"images": {"inode_high_threshold_percent": 90, "inode_low_threshold_percent": 95}},
        )
    with pytest.raises(ConfigError, match="inode_high_threshold_percent"):
        load_settings(None, {"images": {"inode_high_threshold_percent": 101}})
    off = load_settings(None, {"images": {"inode_high_threshold_percent": 100}})
    assert off.images.inode_high_threshold_percent == 100


def test_removals_in_flight_count_as_coming_so_none_goes_past_a_plan_that_holds(tmp_path):
    """Four in flight and a plan of two that the disk honours: exactly those two go (what is in
    flight is counted before going past the plan, and measured when done)."""
    fake = FakeRuntime(capacity_bytes=100 * MiB)
    ids = eight_on_one_base(fake)
    gc = collector(tmp_path, fake, workers=4, high_threshold_percent=60, low_threshold_percent=58)
    report = gc.cycle()
    assert [r.id for r in report.image_results] == ids[:2]
    assert report.target_reached
