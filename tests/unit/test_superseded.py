"""images.keep_per_repository: superseded releases go whatever the disk — over the FakeRuntime
through the Collector (report and cycle), on a calm disk (nothing asked for space)."""

from __future__ import annotations

import pytest

from nodegc.cli.render import plan_json, plan_table
from nodegc.collect.cycle import Collector
from nodegc.config import ConfigError, load_settings
from nodegc.model import Action, ContainerState, Reason
from nodegc.policy.images import familiar_forms
from nodegc.policy.superseded import repository
from nodegc.state.store import StateDir
from nodegc.testing.fake import FakeRuntime
from tests.unit.builders import ago, container, image, make_settings

FS_PATH = "/fake/var/lib/docker"


class Rig:
    def __init__(self, tmp_path, clock) -> None:
        self.fake = FakeRuntime()
        self.fake.capacity_bytes = 100_000  # 100 bytes an image: far below any threshold
        self.state = StateDir(tmp_path / "state")
        self.clock = clock

    def release(self, name: str, days_ago: float, **kw) -> str:
        """An image tagged `name`, tagged (pulled) `days_ago` days ago."""
        self.fake.add_image(
            image(f"id-{name}", 100, tags=[name], **kw), tagged_at=ago(days=days_ago)
        )
        return f"id-{name}"

    def collector(self, keep: int, **images) -> Collector:
        settings = make_settings(
            self.state.path, FS_PATH, images={"keep_per_repository": keep, **images}
        )
        return Collector(
            settings, self.fake, self.state, clock=self.clock, measure=self.fake.measure
        )

    def decided(self, keep: int, **images) -> dict[str, tuple[Action, Reason]]:
        plan = self.collector(keep, **images).report()
        return {
            d.image.tags[0] if d.image.tags else d.image.id: (d.action, d.reason)
            for d in plan.images.decisions
        }


@pytest.fixture
def rig(tmp_path, clock) -> Rig:
    return Rig(tmp_path, clock)


def releases(rig: Rig, count: int, repo: str = "app") -> None:
    """`repo:1` .. `repo:count`, one a day, the highest the newest."""
    for n in range(1, count + 1):
        rig.release(f"{repo}:{n}", days_ago=count + 1 - n)


SUPERSEDED = (Action.REMOVE, Reason.SUPERSEDED)


def test_exactly_n_releases_are_all_kept(rig):
    """The boundary: N images of a repository, N kept (a mutation to `>=` removes one)."""
    releases(rig, 3)
    assert SUPERSEDED not in rig.decided(3).values()


def test_one_release_more_than_n_removes_the_oldest_whatever_the_disk(rig):
    """N + 1: the oldest goes, reason superseded, with the disk far below the thresholds."""
    releases(rig, 4)
    decided = rig.decided(3)
    assert [tag for tag, d in decided.items() if d == SUPERSEDED] == ["app:1"]


def test_a_cycle_removes_the_superseded_releases_from_the_engine(rig):
    """Not only planned: a cycle removes them on a calm disk (the closed loop does not leave them
    out as 'not needed'), and keeps the newest N."""
    releases(rig, 5)
    report = rig.collector(2).cycle()
    assert {r.name for r in report.image_results if r.reason is Reason.SUPERSEDED} == {
        "app:1",
        "app:2",
        "app:3",
    }
    assert sorted(i.tags[0] for i in rig.fake.images.values()) == ["app:4", "app:5"]


def test_an_image_a_stopped_container_uses_stays_and_counts_among_the_newest(rig):
    """In use by an exited container: kept in-use; it is one of the repository's images, so the
    newest N are counted over all of them."""
    releases(rig, 3)
    rig.fake.add_container(container("c", "id-app:1", ContainerState.EXITED))
    decided = rig.decided(1)
    assert decided["app:1"] == (Action.KEEP, Reason.IN_USE)
    assert decided["app:2"] == SUPERSEDED
    assert decided["app:3"][1] is not Reason.SUPERSEDED


def test_a_pinned_release_stays(rig):
    """images.pinned wins over superseded."""
    releases(rig, 3)
    decided = rig.decided(1, pinned=["app:1"])
    assert decided["app:1"] == (Action.KEEP, Reason.PINNED)
    assert decided["app:2"] == SUPERSEDED


def test_a_release_younger_than_the_minimum_age_stays(rig):
    """minimum_age wins: app:2 (2 days) is superseded by app:3 but younger than 3 days."""
    releases(rig, 3)
    decided = rig.decided(1, minimum_age="72h")
    assert decided["app:1"] == SUPERSEDED
    assert decided["app:2"] == (Action.KEEP, Reason.TOO_YOUNG)


def test_an_image_tagged_in_two_repositories_stays_while_newest_in_one(rig):
    """Superseded in `app`, but the newest of `tools`: removing it would take `tools` away."""
    releases(rig, 3)
    rig.fake.add_image(image("id-both", 100, tags=["app:0", "tools:1"]), tagged_at=ago(days=9))
    decided = {d.image.id: d.reason for d in rig.collector(1).report().images.decisions}
    assert decided["id-both"] is not Reason.SUPERSEDED
    assert decided["id-app:1"] is Reason.SUPERSEDED


def test_untagged_images_are_never_superseded(rig):
    """A dangling image belongs to no repository."""
    releases(rig, 2)
    rig.fake.add_image(image("dangling", 100), tagged_at=ago(days=30))
    decided = {d.image.id: d.reason for d in rig.collector(1).report().images.decisions}
    assert decided["dangling"] is not Reason.SUPERSEDED


def test_other_repositories_are_counted_on_their_own(rig):
    """Two repositories of two releases each, N = 2: nothing goes."""
    releases(rig, 2, "app")
    releases(rig, 2, "web")
    assert SUPERSEDED not in rig.decided(2).values()


def test_zero_turns_it_off(rig):
    """The default, 0: ten releases, none superseded."""
    releases(rig, 10)
    assert SUPERSEDED not in rig.decided(0).values()


def test_every_spelling_of_a_repository_is_one_repository():
    """busybox, docker.io/library/busybox and index.docker.io/library/busybox are one."""
    names = {"busybox:1", "docker.io/library/busybox:2", "index.docker.io/library/busybox:3"}
    assert {repository(n, familiar_forms) for n in names} == {"docker.io/library/busybox"}
    assert repository("registry.example:5000/team/app:1", familiar_forms) == (
        "registry.example:5000/team/app"
    )
    assert repository("<none>:<none>", familiar_forms) is None


def test_the_dry_run_shows_superseded_in_the_table_and_the_json(rig):
    """`report`: the reason is in the JSON decisions and on the table's line."""
    releases(rig, 2)
    plan = rig.collector(1).report()
    rows = {d["tags"][0]: d for d in plan_json(plan)["images"]["decisions"]}
    assert (rows["app:1"]["action"], rows["app:1"]["reason"]) == ("remove", "superseded")
    line = next(line for line in plan_table(plan).splitlines() if "app:1" in line)
    assert "superseded" in line.split()


@pytest.mark.parametrize("value", [-1, 10001])
def test_keep_per_repository_out_of_range_is_refused_naming_the_field(value):
    """0..10000: anything else is a configuration error naming images.keep_per_repository."""
    with pytest.raises(ConfigError, match=r"images\.keep_per_repository"):
        load_settings(None, {"images": {"keep_per_repository": value}}, environ={})


def test_keep_per_repository_reads_from_the_environment():
    """NODEGC_IMAGES__KEEP_PER_REPOSITORY=5."""
    env = {"NODEGC_IMAGES__KEEP_PER_REPOSITORY": "5"}
    assert load_settings(None, None, environ=env).images.keep_per_repository == 5


def test_releases_first_seen_at_one_instant_rank_together_and_a_tie_keeps_them(rig):
    """Five releases found at one instant (no tag time: `docker load`), N = 2: none goes — the
    order between them is unknown; two newer ones arriving later supersede all five."""
    for n in range(1, 6):
        rig.fake.add_image(image(f"id-app:{n}", 100, tags=[f"app:{n}"]))
    assert SUPERSEDED not in rig.decided(2).values()
    rig.clock.advance(hours=1)
    for n in (6, 7):
        rig.fake.add_image(image(f"id-app:{n}", 100, tags=[f"app:{n}"]))
    decided = rig.decided(2)
    assert sorted(tag for tag, d in decided.items() if d == SUPERSEDED) == [
        f"app:{n}" for n in range(1, 6)
    ]
