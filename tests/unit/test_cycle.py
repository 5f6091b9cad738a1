"""The Collector over the stateful FakeRuntime: observe, plan, act, report — with a fake clock
and a fake disk whose usage follows the fake's images."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from nodegc.collect.cycle import Collector
from nodegc.model import Action, ContainerState, Outcome, Reason
from nodegc.runtime import Conflict, RuntimeError_, RuntimeUnavailable
from nodegc.state.store import StateDir
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import NOW, ago, container, image, make_settings

FS_PATH = "/fake/var/lib/docker"
COMPOSE = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}


class Disk:
    """The fake's own disk model (a 1000-byte filesystem: fixed other use plus every layer a
    remaining image holds), recording the paths measured."""

    def __init__(self, runtime: FakeRuntime, other_used: int, capacity: int = 1000) -> None:
        self.runtime = runtime
        self.other_used = other_used
        self.capacity = capacity
        self.paths: list[str] = []

    def __call__(self, path: str):
        self.paths.append(path)
        self.runtime.other_used_bytes = self.other_used
        self.runtime.capacity_bytes = self.capacity
        return self.runtime.measure(path)


class Rig:
    def __init__(self, tmp_path, clock) -> None:
        self.fake = FakeRuntime()
        self.clock = clock
        self.state = StateDir(tmp_path / "state")
        self.tmp_path = tmp_path
        self.disk = Disk(self.fake, other_used=0)

    def collector(self, *, listeners=(), **settings_kw) -> Collector:
        settings = make_settings(self.state.path, FS_PATH, **settings_kw)
        return Collector(
            settings,
            self.fake,
            self.state,
            clock=self.clock,
            measure=self.disk,
            listeners=listeners,
        )

    def inventory(self):
        return dict(self.fake.images), dict(self.fake.containers)

    def removal_calls(self) -> list[str]:
        return [c for c in self.fake.calls if c.startswith("remove_")]


@pytest.fixture
def rig(tmp_path, clock) -> Rig:
    return Rig(tmp_path, clock)


def three_unused_images(rig: Rig, other_used: int) -> None:
    """Images a, b, c (100 bytes each), never used, first seen (pulled) a < b < c."""
    for n, image_id in enumerate("abc"):
        rig.fake.add_image(image(image_id, 100, tags=[f"{image_id}:1"]), tagged_at=ago(days=5 - n))
    rig.disk.other_used = other_used


def outcomes(results) -> list[tuple[str, Outcome]]:
    return [(r.id, r.outcome) for r in results]


# -- report (the dry run) -------------------------------------------------------------------------


def test_report_removes_nothing(rig):
    """report() plans removals but the runtime's inventory is unchanged and no removal is asked."""
    three_unused_images(rig, other_used=700)  # usage 100%: wants 200 bytes
    rig.fake.add_container(container("dead", "a", created=ago(days=3), finished_at=ago(days=3)))
    rig.fake.add_container(container("dead2", "a", created=ago(days=2), finished_at=ago(days=2)))
    before = rig.inventory()
    p = rig.collector(containers={"max_per_pod_container": 0}).report()
    assert [d.container.id for d in p.containers.removals] == ["dead2", "dead"]
    # "a" was used (its dead containers finished 2-3 days ago): never-used b and c go first.
    assert [d.image.id for d in p.images.removals] == ["b", "c"]
    assert rig.inventory() == before
    assert rig.removal_calls() == []


def test_report_measures_the_configured_filesystem_path(rig):
    """images.filesystem_path is what is measured; the runtime's data root is not asked."""
    three_unused_images(rig, other_used=0)
    rig.collector().report()
    assert rig.disk.paths == [FS_PATH]
    assert "data_root" not in rig.fake.calls


def test_dry_run_cycle_removes_nothing(rig):
    """cycle(dry_run=True) returns the plan and leaves the runtime alone."""
    three_unused_images(rig, other_used=700)
    before = rig.inventory()
    report = rig.collector().cycle(dry_run=True)
    assert [d.image.id for d in report.image_plan.removals] == ["a", "b"]
    assert report.results == []
    assert rig.inventory() == before
    assert rig.removal_calls() == []


# -- one full cycle -------------------------------------------------------------------------------


def _containers_then_images(rig: Rig) -> None:
    # Two dead containers of one compose service: the older goes (1 per unit); its image "old"
    # is then unused and goes for space; "new" stays in use by the newer container.
    rig.fake.add_image(image("old", 100), tagged_at=ago(days=5))
    rig.fake.add_image(image("new", 100), tagged_at=ago(days=4))
    rig.fake.add_container(
        container("c-old", "old", created=ago(days=3), finished_at=ago(days=3), labels=COMPOSE)
    )
    rig.fake.add_container(
        container("c-new", "new", created=ago(days=1), finished_at=ago(days=1), labels=COMPOSE)
    )
    rig.disk.other_used = 700  # used 900: usage 90%, wants 100 bytes


def test_cycle_removes_containers_before_images(rig):
    """All container removals are asked for before any image removal."""
    _containers_then_images(rig)
    rig.collector().cycle()
    assert rig.removal_calls() == ["remove_container c-old", "remove_image old"]


def test_image_of_a_container_removed_this_cycle_goes_this_cycle(rig):
    """An image whose only (dead) container the cycle removed is removed in the same cycle."""
    _containers_then_images(rig)
    report = rig.collector().cycle()
    assert outcomes(report.container_results) == [("c-old", Outcome.REMOVED)]
    assert outcomes(report.image_results) == [("old", Outcome.REMOVED)]
    assert set(rig.fake.images) == {"new"}
    assert set(rig.fake.containers) == {"c-new"}
    assert report.image_bytes_freed == 100
    assert report.target_reached


def test_cycle_plan_shows_the_image_going_with_its_container(rig):
    """The cycle's opening plan already counts on the container removals (dependents first)."""
    _containers_then_images(rig)
    report = rig.collector().cycle()
    assert [d.image.id for d in report.plan.images.removals] == ["old"]
    assert [d.image.id for d in report.image_plan.removals] == ["old"]


def test_filesystem_is_measured_again_after_the_cycle(rig):
    """filesystem_after shows the freed bytes."""
    _containers_then_images(rig)
    report = rig.collector().cycle()
    assert report.filesystem_before.available_bytes == 100
    assert report.filesystem_after is not None
    assert report.filesystem_after.available_bytes == 200


def test_containers_only_cycle_leaves_images(rig):
    """cycle(images=False) removes containers and asks for no image removal."""
    _containers_then_images(rig)
    report = rig.collector().cycle(images=False)
    assert rig.removal_calls() == ["remove_container c-old"]
    assert report.image_results == []


def test_images_only_cycle_keeps_images_of_listed_dead_containers(rig):
    """cycle(containers=False): no container goes, so its image stays in use."""
    _containers_then_images(rig)
    report = rig.collector().cycle(containers=False)
    assert rig.removal_calls() == []
    assert report.container_results == []
    decisions = {d.image.id: (d.action, d.reason) for d in report.image_plan.decisions}
    assert decisions["old"] == (Action.KEEP, Reason.IN_USE)


def test_listeners_hear_every_result_in_order(rig):
    """Each removal result is passed to the listeners, containers first."""
    _containers_then_images(rig)
    heard = []
    rig.collector(listeners=[heard.append]).cycle()
    assert [(r.kind, r.id, r.reason, r.outcome) for r in heard] == [
        ("container", "c-old", Reason.PER_UNIT_CAP, Outcome.REMOVED),
        ("image", "old", Reason.SPACE, Outcome.REMOVED),
    ]


def test_removed_image_result_carries_its_size_and_name(rig):
    """An image result names the image by tag and counts its bytes."""
    three_unused_images(rig, other_used=600)  # wants 100
    report = rig.collector().cycle()
    (result,) = report.image_results
    assert (result.kind, result.id, result.name, result.size_bytes) == ("image", "a", "a:1", 100)


# -- failures and skips ---------------------------------------------------------------------------


def _three_dead_containers(rig: Rig) -> None:
    rig.fake.add_image(image("img", 10), tagged_at=ago(days=9))
    for n, cid in enumerate(["c1", "c2", "c3"]):
        rig.fake.add_container(
            container(cid, "img", created=ago(days=3 - n), finished_at=ago(days=3 - n))
        )


def test_container_removal_conflict_is_skipped_and_the_pass_goes_on(rig):
    """Conflict (it runs again): skipped, and the other containers are still removed."""
    _three_dead_containers(rig)
    rig.fake.fail_removal["c2"] = Conflict("container c2: it is running")
    report = rig.collector(containers={"max_per_pod_container": 0}).cycle()
    assert outcomes(report.container_results) == [
        ("c3", Outcome.REMOVED),
        ("c2", Outcome.SKIPPED),
        ("c1", Outcome.REMOVED),
    ]
    assert set(rig.fake.containers) == {"c2"}
    assert report.failures == []


def test_container_started_again_before_removal_is_skipped(rig):
    """A container that runs again when its turn comes is refused by the runtime: skipped."""
    _three_dead_containers(rig)
    rig.fake.before_remove = lambda oid: (
        rig.fake.set_state("c1", ContainerState.RUNNING) if oid == "c1" else None
    )
    report = rig.collector(containers={"max_per_pod_container": 0}).cycle()
    skipped = [r for r in report.container_results if r.outcome is Outcome.SKIPPED]
    assert [r.id for r in skipped] == ["c1"]
    assert "in use now" in skipped[0].detail
    assert set(rig.fake.containers) == {"c1"}


def test_container_removal_is_logged_with_its_name(rig, caplog):
    """With INFO logging on, a removed container is logged (naming it) and the cycle completes."""
    _containers_then_images(rig)
    with caplog.at_level(logging.INFO, logger="nodegc.collect.removal"):
        report = rig.collector().cycle()
    assert outcomes(report.container_results) == [("c-old", Outcome.REMOVED)]
    messages = [r.getMessage() for r in caplog.records if r.name == "nodegc.collect.removal"]
    assert "container removed: c-old (c-old)" in messages


def test_runtime_error_is_reported_failed_and_counted(rig):
    """A removal failing with RuntimeError_ is failed, in report.failures, and the pass goes on."""
    _three_dead_containers(rig)
    rig.fake.fail_removal["c3"] = RuntimeError_("container c3: driver error")
    report = rig.collector(containers={"max_per_pod_container": 0}).cycle()
    assert outcomes(report.container_results) == [
        ("c3", Outcome.FAILED),
        ("c2", Outcome.REMOVED),
        ("c1", Outcome.REMOVED),
    ]
    assert [(r.id, r.detail) for r in report.failures] == [("c3", "container c3: driver error")]


def test_failed_image_removal_does_not_stop_the_image_pass(rig):
    """An image removal failing mid-pass: the next planned image is still removed."""
    three_unused_images(rig, other_used=700)  # wants 200: a and b planned
    rig.fake.fail_removal["a"] = RuntimeError_("image a: layer busy")
    report = rig.collector().cycle()
    assert outcomes(report.image_results)[:2] == [("a", Outcome.FAILED), ("b", Outcome.REMOVED)]
    assert [r.id for r in report.failures] == ["a"]
    assert "a" in rig.fake.images


def test_after_a_failed_image_the_next_pass_reaches_the_target(rig):
    """The image failing in the first pass is avoided in the next, which takes the next LRU one."""
    three_unused_images(rig, other_used=700)  # wants 200
    rig.fake.fail_removal["a"] = RuntimeError_("image a: layer busy")
    report = rig.collector().cycle()
    assert outcomes(report.image_results) == [
        ("a", Outcome.FAILED),
        ("b", Outcome.REMOVED),
        ("c", Outcome.REMOVED),
    ]
    assert set(rig.fake.images) == {"a"}
    assert report.target_reached


def test_skipped_image_is_replaced_by_the_next_lru_image(rig):
    """An image that gains a container just before removal is skipped; the next pass plans again
    and removes the next least recently used image, so the target is still reached."""
    three_unused_images(rig, other_used=600)  # wants 100: only a is planned

    def start_container_on_a(object_id: str) -> None:
        if object_id == "a":
            rig.fake.add_container(container("late", "a", ContainerState.RUNNING, created=NOW))

    rig.fake.before_remove = start_container_on_a
    report = rig.collector().cycle()
    assert outcomes(report.image_results) == [("a", Outcome.SKIPPED), ("b", Outcome.REMOVED)]
    assert set(rig.fake.images) == {"a", "c"}
    assert report.image_bytes_freed == 100
    assert report.target_reached
    assert report.failures == []


def test_image_passes_are_bounded(rig):
    """An engine that offers a new candidate after every refused removal: the cycle still ends."""
    three_unused_images(rig, other_used=600)  # wants 100
    attempts: list[str] = []

    def refuse_and_offer_another(image_id: str) -> None:
        attempts.append(image_id)
        assert len(attempts) < 50, "image GC kept planning new passes within one cycle"
        n = len(attempts)
        rig.fake.add_image(image(f"new{n}", 100, tags=[f"new{n}:1"]), tagged_at=ago(days=9))
        rig.fake.fail_removal[image_id] = Conflict(f"image {image_id}: in use")

    rig.fake.before_remove = refuse_and_offer_another
    report = rig.collector().cycle()
    assert len(attempts) <= 10
    assert all(r.outcome is Outcome.SKIPPED for r in report.image_results)
    assert not report.target_reached


def test_runtime_unavailable_while_listing_raises_and_removes_nothing(rig):
    """The engine down during the listing: RuntimeUnavailable, and no removal is asked."""
    _containers_then_images(rig)
    before = rig.inventory()
    collector = rig.collector()
    rig.fake.unavailable = True
    with pytest.raises(RuntimeUnavailable):
        collector.cycle()
    rig.fake.unavailable = False
    assert rig.inventory() == before
    assert rig.removal_calls() == []


def test_container_listing_failing_after_images_listed_removes_nothing(rig, monkeypatch):
    """A partial listing (images listed, containers not) is never acted on."""
    _containers_then_images(rig)
    before = rig.inventory()

    def broken():
        raise RuntimeUnavailable("list_containers: timed out")

    monkeypatch.setattr(rig.fake, "list_containers", broken)
    with pytest.raises(RuntimeUnavailable, match="timed out"):
        rig.collector().cycle()
    assert rig.inventory() == before
    assert rig.removal_calls() == []


# -- history across cycles and processes ----------------------------------------------------------


def test_history_persists_between_collectors(rig):
    """A second Collector over the same state directory remembers first sightings and since."""
    rig.fake.add_image(image("a", 100))
    rig.collector().report()
    rig.clock.advance(hours=1)
    second = rig.collector()
    assert second.history.since == NOW
    assert second.history.images["a"].first_seen == NOW


def test_minimum_age_survives_a_restart(rig):
    """An image too young at first sight becomes removable after minimum_age, even across a
    restart, because its first sighting was saved."""
    rig.fake.add_image(image("a", 100))
    rig.disk.other_used = 800  # wants 100
    first = rig.collector(images={"minimum_age": "2m"}).cycle()
    assert outcomes(first.image_results) == []
    assert {d.image.id: d.reason for d in first.image_plan.decisions} == {"a": Reason.TOO_YOUNG}
    rig.clock.advance(minutes=3)
    second = rig.collector(images={"minimum_age": "2m"}).cycle()
    assert outcomes(second.image_results) == [("a", Outcome.REMOVED)]


def test_last_use_from_a_removed_container_is_remembered(rig):
    """The finish time learnt before a container is removed stays as the image's last use."""
    _containers_then_images(rig)
    rig.collector().cycle(images=False)
    rig.clock.advance(minutes=1)
    later = rig.collector()
    later.report()
    assert later.history.images["old"].last_used == ago(days=3)


def test_cycle_saves_history_to_the_state_directory(rig):
    """After a cycle the state directory holds history with every listed image."""
    three_unused_images(rig, other_used=0)
    rig.collector().cycle()
    loaded = rig.state.load_history(NOW + timedelta(hours=1))
    assert set(loaded.images) == {"a", "b", "c"}
    assert loaded.images["a"].first_seen == ago(days=5)


def test_new_image_first_sighting_uses_the_runtime_tag_time(rig):
    """The tag (pull) time the runtime reports is the first sighting of a new image."""
    rig.fake.add_image(image("a", 100), tagged_at=ago(hours=6))
    collector = rig.collector()
    collector.report()
    assert collector.history.images["a"].first_seen == ago(hours=6)


def test_image_without_container_is_not_marked_used_by_a_cycle(rig):
    """A cycle does not invent a use: never-used images stay never used."""
    three_unused_images(rig, other_used=0)
    collector = rig.collector()
    collector.cycle()
    assert {r.last_used for r in collector.history.images.values()} == {None}


def test_concurrent_removals_still_report_in_plan_order(rig):
    """With several removals in flight, results come back in the plan's order."""
    _three_dead_containers(rig)
    report = rig.collector(
        runtime={"max_concurrent_removals": 4}, containers={"max_per_pod_container": 0}
    ).cycle()
    assert [r.id for r in report.container_results] == ["c3", "c2", "c1"]
    assert rig.fake.containers == {}


def test_fake_disk_follows_the_fake_inventory(rig):
    """(The rig itself) removing an image from the fake frees its bytes on the fake disk."""
    three_unused_images(rig, other_used=600)
    assert rig.disk("/x").available_bytes == 100
    del rig.fake.images["a"]
    assert rig.disk("/x").available_bytes == 200
    assert replace(rig.disk("/x"), path="/y").path == "/y"


# -- finish times: asked for only where a decision depends on them --------------------------------


def _dead_fleet(rig: Rig, n: int) -> None:
    """`n` dead containers of image "a", each its own unit, stopped a minute apart; the fake
    lists each finish time as a ±1 minute window, as an engine's listing would."""
    rig.fake.add_image(image("a", 100, tags=["a:1"]), tagged_at=ago(days=5))
    for k in range(n):
        rig.fake.add_container(
            container(f"d{k:03d}", "a", created=ago(days=3), finished_at=ago(hours=2, minutes=k))
        )
    rig.fake.finish_window = timedelta(minutes=1)


def test_first_cycle_asks_only_for_the_finish_times_it_needs(rig):
    """100 dead containers, none near an age limit: a few times are asked for, not 100."""
    _dead_fleet(rig, 100)

    report = rig.collector(containers={"max_per_pod_container": 0}).cycle()

    assert len(report.container_results) == 100
    assert all(r.outcome is Outcome.REMOVED for r in report.container_results)
    assert 0 < len(rig.fake.finish_times_asked) <= 16


def test_last_use_is_exact_though_most_finish_times_were_never_asked(rig):
    """The image's last use is its latest container's exact stop, as if every time were known."""
    _dead_fleet(rig, 50)
    collector = rig.collector(containers={"max_per_pod_container": 0})

    collector.observe()

    assert collector.history.images["a"].last_used == ago(hours=2)
    assert "d000" in rig.fake.finish_times_asked


def test_a_finish_time_near_the_minimum_age_is_asked_for_and_decides(rig):
    """A window across the minimum age: the exact time is asked for; 3 minutes is old enough."""
    rig.fake.add_image(image("a", 100, tags=["a:1"]), tagged_at=ago(days=5))
    rig.fake.add_container(container("old", "a", created=ago(hours=1), finished_at=ago(minutes=3)))
    rig.fake.add_container(
        container("young", "a", created=ago(hours=1), finished_at=ago(minutes=1), name="y")
    )
    rig.fake.finish_window = timedelta(minutes=2)

    report = rig.collector(containers={"max_per_pod_container": 0, "minimum_age": "2m"}).cycle()

    assert sorted(rig.fake.finish_times_asked) == ["old", "young"]
    assert [r.id for r in report.container_results] == ["old"]


def test_finish_times_unavailable_removes_nothing(rig, monkeypatch):
    """The engine failing while finish times are asked for: the cycle raises, nothing goes."""
    _dead_fleet(rig, 10)

    def broken(ids):
        raise RuntimeUnavailable("finish times: timed out")

    monkeypatch.setattr(rig.fake, "finish_times", broken)
    before = rig.inventory()

    with pytest.raises(RuntimeUnavailable):
        rig.collector(containers={"max_per_pod_container": 0}).cycle()
    assert rig.inventory() == before
