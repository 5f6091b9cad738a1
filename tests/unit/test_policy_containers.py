"""Container GC policy: dead containers by per-unit and global caps, the kubelet's way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodegc.model import Action, ContainerState, Reason
from nodegc.policy.containers import evict_unit, plan_containers
from tests.unit.builders import NOW, ago, by_id, container, container_settings, ids, pod_labels

COMPOSE = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}


def gc(pod: str, name: str, created: int, state=ContainerState.EXITED, cid=None):
    """The kubelet test's makeGCContainer(pod, container, attempt, createdAt, state): a container
    of unit (pod, name) created `created` minutes after a fixed origin a day ago."""
    at = ago(days=1) + timedelta(minutes=created)
    return container(
        cid or f"{pod}-{name}-{created}",
        "img",
        state,
        created=at,
        finished_at=at + timedelta(seconds=30) if state is ContainerState.EXITED else None,
        labels=pod_labels(pod, name),
    )


def plan(containers, **settings):
    return plan_containers(list(containers), container_settings(**settings), NOW)


def kept_ids(p) -> set[str]:
    return {d.container.id for d in p.decisions if d.action is Action.KEEP}


def removed_ids(p) -> set[str]:
    return set(ids(p.removals))


def reasons(p):
    return {d.container.id: (d.action, d.reason) for d in p.decisions}


# -- never removed --------------------------------------------------------------------------------


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
def test_containers_that_are_not_dead_are_kept_running(state):
    """Running, paused, restarting (any not-dead state) are kept as running, even with cap 0."""
    c = container("c", state=state, created=ago(days=100))
    p = plan([c], max_per_pod_container=0, max_dead_containers=0, maximum_age=timedelta(hours=1))
    assert reasons(p) == {"c": (Action.KEEP, Reason.RUNNING)}


@pytest.mark.parametrize(
    "state", [ContainerState.EXITED, ContainerState.DEAD, ContainerState.CREATED]
)
def test_dead_states_are_candidates(state):
    """Exited, dead and created (never started) containers are collectable."""
    c = container("c", state=state, created=ago(days=2), finished_at=None)
    p = plan([c], max_per_pod_container=0)
    assert reasons(p) == {"c": (Action.REMOVE, Reason.PER_UNIT_CAP)}


@pytest.mark.parametrize("value", ["true", "True"])
def test_keep_label_keeps_a_dead_container(value):
    """nodegc.io/keep=true keeps a dead container whatever the caps and ages."""
    c = container("c", created=ago(days=100), labels={"nodegc.io/keep": value})
    p = plan([c], max_per_pod_container=0, max_dead_containers=0, maximum_age=timedelta(hours=1))
    assert reasons(p) == {"c": (Action.KEEP, Reason.KEEP_LABEL)}


def test_keep_label_false_does_not_keep():
    """nodegc.io/keep=false is no protection."""
    c = container("c", created=ago(days=2), labels={"nodegc.io/keep": "false"})
    assert reasons(plan([c], max_per_pod_container=0)) == {
        "c": (Action.REMOVE, Reason.PER_UNIT_CAP)
    }


def test_kept_by_label_does_not_count_against_the_unit_cap():
    """A keep-labelled container is outside the unit: the newest unlabelled one is still kept."""
    labelled = container("keep", created=ago(hours=1), labels={**COMPOSE, "nodegc.io/keep": "true"})
    older = container("older", created=ago(hours=3), labels=COMPOSE)
    oldest = container("oldest", created=ago(hours=4), labels=COMPOSE)
    p = plan([labelled, older, oldest])
    assert reasons(p) == {
        "keep": (Action.KEEP, Reason.KEEP_LABEL),
        "older": (Action.KEEP, Reason.WITHIN_CAP),
        "oldest": (Action.REMOVE, Reason.PER_UNIT_CAP),
    }


# -- ages -----------------------------------------------------------------------------------------


def test_stopped_at_is_finish_time_else_creation():
    """stopped_at: finished_at when known, created otherwise."""
    assert container("a", created=ago(days=2), finished_at=ago(hours=1)).stopped_at == ago(hours=1)
    assert container("b", created=ago(days=2), finished_at=None).stopped_at == ago(days=2)


def test_too_young_is_measured_from_finish_time():
    """Created long ago but finished 30 s ago: too young for minimum_age 1m."""
    c = container("c", created=ago(days=2), finished_at=ago(seconds=30))
    p = plan([c], minimum_age=timedelta(minutes=1), max_per_pod_container=0)
    assert reasons(p) == {"c": (Action.KEEP, Reason.TOO_YOUNG)}


def test_finished_long_enough_ago_is_not_too_young():
    """Finished 2 minutes ago with minimum_age 1m: a candidate."""
    c = container("c", created=ago(days=2), finished_at=ago(minutes=2))
    p = plan([c], minimum_age=timedelta(minutes=1), max_per_pod_container=0)
    assert reasons(p) == {"c": (Action.REMOVE, Reason.PER_UNIT_CAP)}


def test_too_young_is_measured_from_creation_when_never_finished():
    """No finish time: the creation time decides."""
    young = container("young", created=ago(seconds=30), finished_at=None, name="a")
    old = container("old", created=ago(minutes=5), finished_at=None, name="b")
    p = plan([young, old], minimum_age=timedelta(minutes=1), max_per_pod_container=0)
    assert reasons(p) == {
        "young": (Action.KEEP, Reason.TOO_YOUNG),
        "old": (Action.REMOVE, Reason.PER_UNIT_CAP),
    }


def test_maximum_age_removes_dead_containers_stopped_longer_ago():
    """Stopped longer ago than maximum_age: removed for age even with no cap at all."""
    stale = container("stale", created=ago(days=3), finished_at=ago(hours=2), name="a")
    fresh = container("fresh", created=ago(days=3), finished_at=ago(minutes=30), name="b")
    p = plan([stale, fresh], maximum_age=timedelta(hours=1), max_per_pod_container=-1)
    assert reasons(p) == {
        "stale": (Action.REMOVE, Reason.AGE),
        "fresh": (Action.KEEP, Reason.WITHIN_CAP),
    }


def test_maximum_age_zero_removes_nothing_for_age():
    """maximum_age 0s is off."""
    c = container("c", created=ago(days=300), finished_at=ago(days=300))
    assert reasons(plan([c], max_per_pod_container=-1)) == {"c": (Action.KEEP, Reason.WITHIN_CAP)}


def test_too_young_containers_do_not_count_against_the_unit_cap():
    """A too-young dead container is outside the cap: the newest older one is still kept."""
    young = container("young", created=ago(hours=1), finished_at=ago(seconds=10), labels=COMPOSE)
    mid = container("mid", created=ago(hours=2), finished_at=ago(hours=2), labels=COMPOSE)
    old = container("old", created=ago(hours=3), finished_at=ago(hours=3), labels=COMPOSE)
    p = plan([young, mid, old], minimum_age=timedelta(minutes=1))
    assert reasons(p) == {
        "young": (Action.KEEP, Reason.TOO_YOUNG),
        "mid": (Action.KEEP, Reason.WITHIN_CAP),
        "old": (Action.REMOVE, Reason.PER_UNIT_CAP),
    }


def test_too_young_containers_do_not_count_against_the_global_cap():
    """Global cap 1 with one too-young and one old dead container: the old one is within cap."""
    young = container("young", created=ago(hours=1), finished_at=ago(seconds=10), name="a")
    old = container("old", created=ago(hours=3), finished_at=ago(hours=3), name="b")
    p = plan([young, old], minimum_age=timedelta(minutes=1), max_dead_containers=1)
    assert reasons(p) == {
        "young": (Action.KEEP, Reason.TOO_YOUNG),
        "old": (Action.KEEP, Reason.WITHIN_CAP),
    }


# -- evict units ----------------------------------------------------------------------------------


def test_evict_unit_from_kubelet_labels():
    """(pod uid, container name) from io.kubernetes.* labels."""
    c = container("c", labels={**pod_labels("uid-1", "app"), **COMPOSE}, name="k8s_app_x")
    assert evict_unit(c) == "pod:uid-1/app"


def test_evict_unit_from_compose_labels():
    """Compose (project, service) when there are no kubelet labels (nor a replica number)."""
    assert evict_unit(container("c", labels=COMPOSE, name="shop-web-1")) == "compose:shop/web"


def replica(n: int, created: int, **labels: str):
    at = ago(days=1) + timedelta(minutes=created)
    return container(
        f"web-{n}-{created}",
        labels={**COMPOSE, "com.docker.compose.container-number": str(n), **labels},
        name=f"shop-web-{n}",
        created=at,
        finished_at=at + timedelta(seconds=30),
    )


def test_compose_replicas_are_units_of_their_own():
    """A service scaled to 3 and stopped keeps one dead container per replica, not one in all:
    `compose start` brings every replica back (with a (project, service) unit, 1 and 2 went)."""
    p = plan([replica(1, 1), replica(2, 2), replica(3, 3)], max_per_pod_container=1)
    assert removed_ids(p) == set()
    assert {d.evict_unit for d in p.decisions} == {
        "compose:shop/web/1",
        "compose:shop/web/2",
        "compose:shop/web/3",
    }


def test_a_replica_s_older_dead_containers_still_go():
    """Within a replica's unit the cap holds: its older dead container goes, the other
    replica's stays."""
    p = plan([replica(1, 1), replica(1, 5), replica(2, 2)], max_per_pod_container=1)
    assert removed_ids(p) == {"web-1-1"}


def test_compose_run_containers_are_one_unit_apart_from_the_replicas():
    """`compose run` containers (oneoff=True, numbered too) are one (project, service, one-off)
    unit: the newest is kept, the older ones go, and replica 1 is not capped with them."""
    runs = [replica(1, n, **{"com.docker.compose.oneoff": "True"}) for n in (10, 11, 12)]
    p = plan([replica(1, 1), *runs], max_per_pod_container=1)
    assert {d.evict_unit for d in p.decisions} == {"compose:shop/web/1", "compose:shop/web/run"}
    assert removed_ids(p) == {"web-1-10", "web-1-11"}


def test_evict_unit_falls_back_to_the_name():
    """No labels: the container's own name."""
    assert evict_unit(container("c", name="builder")) == "name:builder"


def test_evict_unit_needs_both_kubelet_labels():
    """A pod uid without a container name is not a kubelet unit."""
    c = container("c", labels={"io.kubernetes.pod.uid": "uid-1"}, name="n")
    assert evict_unit(c) == "name:n"


def test_decisions_carry_the_evict_unit():
    """Each decision names the unit it was capped in."""
    p = plan([container("c", labels=COMPOSE)])
    assert p.decisions[0].evict_unit == "compose:shop/web"


def test_same_container_name_in_two_pods_are_separate_units():
    """Units are per pod uid: one dead container in each of two pods are both kept."""
    p = plan([gc("pod-a", "app", 1), gc("pod-b", "app", 2)])
    assert kept_ids(p) == {"pod-a-app-1", "pod-b-app-2"}


# -- per-unit cap ---------------------------------------------------------------------------------


def _three_in_one_unit():
    return [gc("foo", "bar", 2), gc("foo", "bar", 1), gc("foo", "bar", 0)]


@pytest.mark.parametrize(
    ("cap", "kept"),
    [
        (1, {"foo-bar-2"}),
        (2, {"foo-bar-2", "foo-bar-1"}),
        (0, set()),
        (-1, {"foo-bar-2", "foo-bar-1", "foo-bar-0"}),
        (5, {"foo-bar-2", "foo-bar-1", "foo-bar-0"}),
    ],
)
def test_per_unit_cap_keeps_the_newest_n_by_creation(cap, kept):
    """max_per_pod_container N keeps the N newest of a unit (0 keeps none, -1 keeps all)."""
    p = plan(_three_in_one_unit(), max_per_pod_container=cap)
    assert kept_ids(p) == kept
    assert {d.reason for d in p.removals} <= {Reason.PER_UNIT_CAP}
    assert removed_ids(p) == {c.id for c in _three_in_one_unit()} - kept


def test_per_unit_cap_orders_by_creation_not_by_finish():
    """The newest by creation is kept even when an older-created one finished later."""
    created_late = container(
        "late", created=ago(hours=1), finished_at=ago(minutes=50), labels=COMPOSE
    )
    created_early = container(
        "early", created=ago(hours=5), finished_at=ago(minutes=10), labels=COMPOSE
    )
    p = plan([created_early, created_late])
    assert reasons(p) == {
        "late": (Action.KEEP, Reason.WITHIN_CAP),
        "early": (Action.REMOVE, Reason.PER_UNIT_CAP),
    }


def test_creation_ties_are_broken_by_stop_time():
    """Equal creation times (Docker lists them to the second): the later stop counts as newer."""
    t = ago(hours=2)
    first = container("z-first", created=t, finished_at=ago(hours=1, minutes=30), labels=COMPOSE)
    restart = container("a-restart", created=t, finished_at=ago(hours=1), labels=COMPOSE)
    assert reasons(plan([first, restart])) == {
        "a-restart": (Action.KEEP, Reason.WITHIN_CAP),
        "z-first": (Action.REMOVE, Reason.PER_UNIT_CAP),
    }


def test_creation_and_stop_ties_are_broken_by_id():
    """Equal creation and stop times: the higher id counts as newer, every time."""
    t = ago(hours=2)
    a = container("a", created=t, labels=COMPOSE)
    b = container("b", created=t, labels=COMPOSE)
    assert kept_ids(plan([a, b])) == {"b"}
    assert kept_ids(plan([b, a])) == {"b"}


def test_decisions_are_listed_newest_first():
    """The plan lists containers newest first by creation."""
    p = plan([gc("foo", "bar", 0), gc("foo", "bar", 2), gc("foo", "bar", 1)])
    assert ids(p.decisions) == ["foo-bar-2", "foo-bar-1", "foo-bar-0"]


# -- kubelet's TestContainerGC cases (kuberuntime_gc_test.go) -------------------------------------


def test_kubelet_all_containers_removed_when_max_containers_is_zero():
    """kubelet: "all containers should be removed when max container limit is 0"."""
    p = plan([gc("foo", "bar", 0)], max_per_pod_container=1, max_dead_containers=0)
    assert reasons(p) == {"foo-bar-0": (Action.REMOVE, Reason.GLOBAL_CAP)}


def test_kubelet_max_containers_without_per_unit_limit():
    """kubelet: "max containers should be complied when no max per pod container limit is set"."""
    cs = [gc("foo", "bar", n) for n in (4, 3, 2, 1, 0)]
    p = plan(cs, max_per_pod_container=-1, max_dead_containers=4)
    assert kept_ids(p) == {"foo-bar-4", "foo-bar-3", "foo-bar-2", "foo-bar-1"}
    assert reasons(p)["foo-bar-0"] == (Action.REMOVE, Reason.GLOBAL_CAP)


def test_kubelet_nothing_removed_without_limits():
    """kubelet: "no containers should be removed if both ... limits are not set"."""
    cs = [gc("foo", "bar", n) for n in (2, 1, 0)]
    p = plan(cs, max_per_pod_container=-1, max_dead_containers=-1)
    assert removed_ids(p) == set()


def test_kubelet_recently_stopped_containers_not_removed():
    """kubelet: "recently started containers should not be removed" (nodegc: recently stopped)."""
    cs = [
        container(f"c{n}", created=ago(days=1), finished_at=ago(seconds=n), labels=COMPOSE)
        for n in (1, 2, 3)
    ]
    p = plan(cs, minimum_age=timedelta(minutes=1))
    assert {r for _, r in reasons(p).values()} == {Reason.TOO_YOUNG}
    assert removed_ids(p) == set()


def test_kubelet_oldest_removed_when_per_unit_limit_exceeded():
    """kubelet: "oldest containers should be removed when per pod container limit exceeded"."""
    p = plan(_three_in_one_unit(), max_per_pod_container=1)
    assert kept_ids(p) == {"foo-bar-2"}
    assert removed_ids(p) == {"foo-bar-1", "foo-bar-0"}


def test_kubelet_running_containers_not_removed():
    """kubelet: "running containers should not be removed" (and do not count against the cap)."""
    cs = [gc("foo", "bar", 2), gc("foo", "bar", 1), gc("foo", "bar", 0, ContainerState.RUNNING)]
    p = plan(cs, max_per_pod_container=1)
    assert kept_ids(p) == {"foo-bar-2", "foo-bar-0"}
    assert reasons(p)["foo-bar-0"] == (Action.KEEP, Reason.RUNNING)
    assert removed_ids(p) == {"foo-bar-1"}


def test_kubelet_nothing_removed_within_limits():
    """kubelet: "no containers should be removed when limits are not exceeded"."""
    p = plan([gc("foo", "bar", 1), gc("foo", "bar", 0)], max_per_pod_container=2)
    assert removed_ids(p) == set()


def test_kubelet_per_unit_cap_applies_per_uid_and_container_name():
    """kubelet: "max container count should apply per (UID, container) pair"."""
    units = [("foo", "bar"), ("foo1", "baz"), ("foo2", "bar")]
    cs = [gc(pod, name, n) for pod, name in units for n in (2, 1, 0)]
    p = plan(cs, max_per_pod_container=2)
    assert removed_ids(p) == {"foo-bar-0", "foo1-baz-0", "foo2-bar-0"}
    assert {d.reason for d in p.removals} == {Reason.PER_UNIT_CAP}


def test_kubelet_global_cap_keeps_one_from_every_unit():
    """kubelet: "max limit should apply and try to keep from every pod"."""
    cs = [gc(f"foo{u}", f"bar{u}", n) for u in range(5) for n in (1, 0)]
    p = plan(cs, max_per_pod_container=10, max_dead_containers=5)
    assert kept_ids(p) == {f"foo{u}-bar{u}-1" for u in range(5)}
    assert {d.reason for d in p.removals} == {Reason.GLOBAL_CAP}


def test_kubelet_oldest_removed_when_global_limit_exceeded():
    """kubelet: "oldest pods should be removed if limit exceeded" (8 units, cap 5): every unit
    is trimmed to 1, then the 3 globally oldest of what is left go."""
    cs = [
        gc("foo", "bar", 20), gc("foo", "bar", 10),
        gc("foo1", "bar1", 21), gc("foo1", "bar1", 11),
        gc("foo2", "bar2", 12),
        gc("foo3", "bar3", 1),
        gc("foo4", "bar4", 13),
        gc("foo5", "bar5", 2),
        gc("foo6", "bar6", 22), gc("foo6", "bar6", 9),
        gc("foo7", "bar7", 3),
    ]  # fmt: skip
    p = plan(cs, max_per_pod_container=2, max_dead_containers=5)
    assert kept_ids(p) == {
        "foo-bar-20",
        "foo1-bar1-21",
        "foo2-bar2-12",
        "foo4-bar4-13",
        "foo6-bar6-22",
    }
    assert {d.reason for d in p.removals} == {Reason.GLOBAL_CAP}


# -- global cap -----------------------------------------------------------------------------------


def test_global_cap_spreads_evenly_over_units():
    """2 units with 3 dead each, cap 4: each unit is trimmed to its 2 newest."""
    cs = [gc(u, "c", n) for u in ("a", "b") for n in (3, 2, 1)]
    p = plan(cs, max_per_pod_container=-1, max_dead_containers=4)
    assert kept_ids(p) == {"a-c-3", "a-c-2", "b-c-3", "b-c-2"}
    assert reasons(p)["a-c-1"] == (Action.REMOVE, Reason.GLOBAL_CAP)
    assert reasons(p)["b-c-1"] == (Action.REMOVE, Reason.GLOBAL_CAP)


def test_global_cap_below_unit_count_keeps_one_per_unit_then_removes_oldest():
    """3 units, cap 2: every unit trimmed to 1 (max(1, 2 // 3)), then the oldest of those goes."""
    cs = [gc("a", "c", 30), gc("a", "c", 5), gc("b", "c", 20), gc("c", "c", 10), gc("c", "c", 4)]
    p = plan(cs, max_per_pod_container=-1, max_dead_containers=2)
    assert kept_ids(p) == {"a-c-30", "b-c-20"}
    assert reasons(p) == {
        "a-c-30": (Action.KEEP, Reason.WITHIN_CAP),
        "b-c-20": (Action.KEEP, Reason.WITHIN_CAP),
        "c-c-10": (Action.REMOVE, Reason.GLOBAL_CAP),
        "a-c-5": (Action.REMOVE, Reason.GLOBAL_CAP),
        "c-c-4": (Action.REMOVE, Reason.GLOBAL_CAP),
    }


def test_global_cap_trim_then_oldest_leaves_exactly_the_cap():
    """After the even trim the globally oldest go until the total equals the cap."""
    # 3 units of 2, cap 4: trimmed to 1 each (4 // 3 = 1) = 3 <= 4, nothing more goes.
    cs = [gc(u, "c", n) for u, base in (("a", 30), ("b", 20), ("c", 10)) for n in (base, base - 1)]
    p = plan(cs, max_per_pod_container=-1, max_dead_containers=4)
    assert kept_ids(p) == {"a-c-30", "b-c-20", "c-c-10"}


def test_global_cap_not_exceeded_removes_nothing():
    """Total at the cap: nothing goes for the global cap."""
    cs = [gc(u, "c", n) for u in ("a", "b") for n in (2, 1)]
    p = plan(cs, max_per_pod_container=-1, max_dead_containers=4)
    assert removed_ids(p) == set()
    assert {r for _, r in reasons(p).values()} == {Reason.WITHIN_CAP}


def test_global_cap_counts_after_the_per_unit_cap():
    """Per-unit trimming happens first; the global cap sees only what it left."""
    cs = [gc(u, "c", n) for u in ("a", "b") for n in (3, 2, 1)]
    p = plan(cs, max_per_pod_container=1, max_dead_containers=2)
    assert kept_ids(p) == {"a-c-3", "b-c-3"}
    assert {d.reason for d in p.removals} == {Reason.PER_UNIT_CAP}


def test_age_removals_do_not_count_against_the_global_cap():
    """Containers removed for age are gone before the caps are applied."""
    stale = container("stale", created=ago(days=5), finished_at=ago(days=5), name="x")
    keep = container("keep", created=ago(hours=2), finished_at=ago(hours=2), name="y")
    p = plan([stale, keep], maximum_age=timedelta(days=1), max_dead_containers=1)
    assert reasons(p) == {
        "stale": (Action.REMOVE, Reason.AGE),
        "keep": (Action.KEEP, Reason.WITHIN_CAP),
    }


# -- properties -----------------------------------------------------------------------------------

UNIT_LABELS = [
    pod_labels("p1", "app"),
    pod_labels("p2", "app"),
    COMPOSE,
    {},
]


@st.composite
def fleets(draw):
    n = draw(st.integers(0, 12))
    cs = []
    for i in range(n):
        created = ago(minutes=draw(st.integers(0, 60 * 48)))
        finished = draw(
            st.one_of(
                st.none(),
                st.integers(0, 60 * 48).map(lambda m, c=created: c + timedelta(minutes=m)),
            )
        )
        if finished is not None:
            finished = min(finished, NOW)
        labels = dict(draw(st.sampled_from(UNIT_LABELS)))
        if draw(st.integers(0, 9)) == 0:
            labels["nodegc.io/keep"] = "true"
        cs.append(
            container(
                f"c{i:02d}",
                "img",
                draw(st.sampled_from(list(ContainerState))),
                created=created,
                finished_at=finished,
                labels=labels,
                name=draw(st.sampled_from(["n1", "n2", "n3"])),
            )
        )
    min_age = draw(st.sampled_from([timedelta(0), timedelta(minutes=1), timedelta(hours=1)]))
    max_age = draw(st.sampled_from([timedelta(0), timedelta(hours=12), timedelta(days=5)]))
    s = container_settings(
        minimum_age=min_age,
        maximum_age=max_age,
        max_per_pod_container=draw(st.integers(-1, 3)),
        max_dead_containers=draw(st.integers(-1, 6)),
    )
    return cs, s


@given(fleets())
def test_property_kept_dead_candidates_never_exceed_the_global_cap(fleet):
    """Dead containers kept within the caps number at most max_dead_containers (when set)."""
    cs, s = fleet
    p = plan_containers(cs, s, NOW)
    within = [d for d in p.decisions if d.reason is Reason.WITHIN_CAP]
    if s.max_dead_containers >= 0:
        assert len(within) <= s.max_dead_containers
    if s.max_per_pod_container >= 0:
        per_unit: dict[str, int] = {}
        for d in within:
            per_unit[d.evict_unit] = per_unit.get(d.evict_unit, 0) + 1
        assert all(n <= s.max_per_pod_container for n in per_unit.values())


@given(fleets())
def test_property_never_removes_a_container_that_is_not_dead(fleet):
    """Running, paused, restarting, removing or unknown containers are never removed."""
    cs, s = fleet
    p = plan_containers(cs, s, NOW)
    assert all(d.container.state.is_dead for d in p.removals)


@given(fleets())
def test_property_never_removes_too_young_or_keep_labelled(fleet):
    """Keep-labelled and recently stopped containers are never removed."""
    cs, s = fleet
    p = plan_containers(cs, s, NOW)
    for d in p.removals:
        assert d.container.labels.get("nodegc.io/keep") != "true"
        assert NOW - d.container.stopped_at >= s.minimum_age


@given(fleets())
def test_property_every_container_gets_exactly_one_decision(fleet):
    """One decision per listed container."""
    cs, s = fleet
    p = plan_containers(cs, s, NOW)
    assert sorted(ids(p.decisions)) == sorted(c.id for c in cs)
    assert set(by_id(p.decisions)) == {c.id for c in cs}


@given(fleets())
def test_property_caps_keep_the_newest_of_each_unit(fleet):
    """Within a unit, every container kept within the cap is newer (by creation, then stop
    time, then id) than every one removed for a cap."""
    cs, s = fleet
    p = plan_containers(cs, s, NOW)
    for unit in {d.evict_unit for d in p.decisions}:
        mine = [d for d in p.decisions if d.evict_unit == unit]
        kept = [d.container for d in mine if d.reason is Reason.WITHIN_CAP]
        capped = [d.container for d in mine if d.reason in (Reason.PER_UNIT_CAP, Reason.GLOBAL_CAP)]
        if kept and capped:
            age = [(c.created, c.stopped_at, c.id) for c in kept]
            capped_age = [(c.created, c.stopped_at, c.id) for c in capped]
            assert min(age) > max(capped_age)


def test_disk_pressure_removals_go_longest_stopped_first_whatever_the_listing_order() -> None:
    """The plan keeps the runtime's listing order (newest first on Podman and CRI); the removals
    for disk pressure go oldest first. Mutation caught: the plan's order taken as is (the
    matrix's Podman 5 and containerd 2 runs removed the five newest of eight)."""
    from datetime import UTC, datetime, timedelta

    from nodegc.model import Action, ContainerDecision, ContainerPlan, Reason
    from nodegc.policy.containers import pressure_removals
    from tests.unit.builders import container

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    listed = [
        container(f"c{k}", created=t0 + timedelta(seconds=k), finished_at=t0 + timedelta(seconds=k))
        for k in (3, 2, 1, 0)
    ]
    plan = ContainerPlan(
        (
            *(ContainerDecision(c, c.id, Action.REMOVE, Reason.DISK_PRESSURE) for c in listed),
            ContainerDecision(container("x"), "x", Action.KEEP, Reason.WITHIN_CAP),
        )
    )
    assert [d.container.id for d in pressure_removals(plan)] == ["c0", "c1", "c2", "c3"]
