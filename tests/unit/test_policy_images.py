"""Image GC policy: the kubelet's LRU eviction down to the low threshold, plus pins and ages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from nodegc import policy
from nodegc.config import ImageSettings
from nodegc.model import Action, ContainerState, FilesystemStats, Reason
from nodegc.policy.images import Counted, bytes_to_free, plan_images
from tests.unit.builders import (
    NOW,
    ago,
    by_id,
    container,
    container_settings,
    fs,
    history,
    ids,
    image,
    image_settings,
    record,
    snapshot,
)

CAPACITY = 1000


def disk_wanting(wanted: int) -> FilesystemStats:
    """A 1000-byte filesystem at or above 85% whose kubelet target (low 80) is `wanted` bytes."""
    assert 50 <= wanted <= 200, "usage must stay >= 85% for the default high threshold"
    return fs(CAPACITY, 200 - wanted)


def plan(images, *, disk=None, containers=(), hist=None, settings=None, **kw):
    return plan_images(
        disk if disk is not None else disk_wanting(100),
        list(images),
        list(containers),
        hist if hist is not None else history(),
        settings if settings is not None else image_settings(),
        NOW,
        **kw,
    )


def reasons(image_plan) -> dict[str, tuple[Action, Reason]]:
    return {d.image.id: (d.action, d.reason) for d in image_plan.decisions}


def removed(image_plan) -> list[str]:
    return ids(image_plan.removals)


# -- the disk rule's arithmetic -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "available", "expected"),
    [
        (1000, 150, 85),  # exactly 15% free
        (1000, 151, 85),  # 15.1% free: floor(15.1) = 15
        (1000, 159, 85),  # 15.9% free: floor, not round
        (1000, 149, 86),
        (3, 1, 67),  # floor(33.3) = 33
        (1000, 0, 100),
        (1000, 1000, 0),
    ],
)
def test_usage_percent_is_100_minus_floor_of_available_percent(capacity, available, expected):
    """usage_percent = 100 - floor(available * 100 / capacity), the kubelet's figure."""
    assert fs(capacity, available).usage_percent == expected


def test_usage_percent_of_zero_capacity_is_an_error():
    """A filesystem reporting no capacity cannot be reasoned about."""
    with pytest.raises(ValueError, match="capacity of 0"):
        _ = fs(0, 0).usage_percent


@pytest.mark.parametrize(
    ("capacity", "available", "high", "low", "expected"),
    [
        (1000, 100, 85, 80, 100),  # 1000*20/100 - 100
        (1000, 150, 85, 80, 50),  # exactly at high
        (1000, 0, 85, 80, 200),
        (999, 100, 85, 80, 99),  # 999*20 // 100 = 199 (integer arithmetic)
        (1000, 100, 90, 50, 400),
        (1000, 151, 85, 80, 49),  # 84.9% free rounds to usage 85: still triggered
    ],
)
def test_bytes_to_free_is_capacity_times_100_minus_low_over_100_minus_available(
    capacity, available, high, low, expected
):
    """bytes_to_free = capacity*(100-low)/100 - available once usage >= high."""
    assert bytes_to_free(fs(capacity, available), high, low) == expected


def test_bytes_to_free_is_zero_just_below_high():
    """At 84% usage with high 85 the disk rule asks for nothing."""
    assert bytes_to_free(fs(1000, 160), 85, 80) == 0


def test_bytes_to_free_is_zero_when_high_is_100_even_on_a_full_disk():
    """high = 100 turns the disk rule off."""
    assert bytes_to_free(fs(1000, 0), 100, 80) == 0


def test_plan_reports_usage_and_bytes_to_free():
    """The plan carries the thresholds, the usage and the target it worked to."""
    p = plan([image("a")], disk=fs(1000, 120))
    assert (p.high_threshold_percent, p.low_threshold_percent) == (85, 80)
    assert (p.usage_percent, p.bytes_to_free) == (88, 80)


# -- below and above the high threshold -----------------------------------------------------------


def test_below_high_threshold_nothing_is_removed():
    """Below the high threshold every unpinned, unused image is kept as below-threshold."""
    hist = history(a=record(ago(days=9)), b=record(ago(days=8), ago(days=7)))
    p = plan([image("a"), image("b")], disk=fs(1000, 200), hist=hist)  # usage 80%
    assert p.bytes_to_free == 0
    assert reasons(p) == {
        "a": (Action.KEEP, Reason.BELOW_THRESHOLD),
        "b": (Action.KEEP, Reason.BELOW_THRESHOLD),
    }
    assert p.target_reachable


def test_at_high_threshold_least_recently_used_go_first_until_target():
    """At/above high: LRU order, removing until the planned bytes reach bytes_to_free."""
    hist = history(
        new=record(ago(days=10), ago(hours=1)),
        mid=record(ago(days=10), ago(days=2)),
        old=record(ago(days=10), ago(days=5)),
    )
    images = [image("new", 60), image("mid", 60), image("old", 60)]
    p = plan(images, disk=disk_wanting(100), hist=hist)
    assert removed(p) == ["old", "mid"]
    assert all(d.reason is Reason.SPACE for d in p.removals)
    assert reasons(p)["new"] == (Action.KEEP, Reason.TARGET_REACHED)
    assert p.bytes_planned == 120


def test_space_removals_stop_exactly_when_target_is_met():
    """Once planned bytes equal bytes_to_free, the next image is kept (target-reached)."""
    hist = history(
        a=record(ago(days=9), ago(days=3)),
        b=record(ago(days=9), ago(days=2)),
        c=record(ago(days=9), ago(days=1)),
    )
    p = plan([image("a", 50), image("b", 50), image("c", 50)], disk=disk_wanting(100), hist=hist)
    assert removed(p) == ["a", "b"]
    assert reasons(p)["c"] == (Action.KEEP, Reason.TARGET_REACHED)


def test_one_large_lru_image_covers_the_target_alone():
    """A single LRU image bigger than the target is the only removal."""
    hist = history(a=record(ago(days=9), ago(days=3)), b=record(ago(days=9), ago(days=2)))
    p = plan([image("b", 10), image("a", 500)], disk=disk_wanting(100), hist=hist)
    assert removed(p) == ["a"]


def test_never_used_images_go_before_used_ones_in_first_seen_order():
    """Never-used images are evicted first (oldest first sighting first), then used ones by LRU."""
    hist = history(
        used_long_ago=record(ago(days=30), ago(days=20)),
        never_recent=record(ago(hours=1)),
        never_old=record(ago(days=3)),
    )
    images = [image("used_long_ago", 50), image("never_recent", 50), image("never_old", 50)]
    p = plan(images, disk=disk_wanting(150), hist=hist)
    assert removed(p) == ["never_old", "never_recent", "used_long_ago"]


def test_lru_ties_are_broken_by_first_seen_then_id():
    """Equal last use: earlier first sighting goes first; equal again: lower id goes first."""
    used = ago(days=2)
    hist = history(
        b=record(ago(days=5), used),
        a=record(ago(days=5), used),
        z=record(ago(days=6), used),
    )
    images = [image("b", 50), image("a", 50), image("z", 50)]
    p = plan(images, disk=disk_wanting(150), hist=hist)
    assert removed(p) == ["z", "a", "b"]


def test_order_does_not_depend_on_the_listing_order():
    """The same inventory in any listing order gives the same removals."""
    hist = history(**{i: record(ago(days=5)) for i in "abcd"})
    images = [image(i, 40) for i in "dcba"]
    assert removed(plan(images, disk=disk_wanting(100), hist=hist)) == ["a", "b", "c"]
    assert removed(plan(images[::-1], disk=disk_wanting(100), hist=hist)) == ["a", "b", "c"]


def test_not_enough_removable_images_leaves_target_unreachable():
    """Candidates together short of the target: all go, and target_reachable is False."""
    hist = history(a=record(ago(days=5)), b=record(ago(days=4)))
    p = plan([image("a", 30), image("b", 30)], disk=disk_wanting(100), hist=hist)
    assert removed(p) == ["a", "b"]
    assert p.bytes_planned == 60
    assert not p.target_reachable


def test_high_100_disables_the_disk_rule_on_a_full_disk():
    """With high = 100 nothing goes for space even at 100% usage."""
    p = plan(
        [image("a", 500)],
        disk=fs(1000, 0),
        settings=image_settings(high_threshold_percent=100),
        hist=history(a=record(ago(days=5))),
    )
    assert p.bytes_to_free == 0
    assert reasons(p) == {"a": (Action.KEEP, Reason.BELOW_THRESHOLD)}


# -- in use ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(ContainerState))
def test_image_used_by_a_container_in_any_state_is_kept_in_use(state):
    """Any container, running or dead, keeps its image; used_by names it."""
    hist = history(a=record(ago(days=5)), b=record(ago(days=4)))
    p = plan(
        [image("a", 100), image("b", 100)],
        containers=[container("c1", "a", state)],
        hist=hist,
    )
    d = by_id(p.decisions)["a"]
    assert (d.action, d.reason, d.used_by) == (Action.KEEP, Reason.IN_USE, ("c1",))
    assert removed(p) == ["b"]


def test_used_by_lists_every_container_of_the_image():
    """used_by lists all containers that reference the image."""
    p = plan(
        [image("a")],
        containers=[container("c1", "a", ContainerState.RUNNING), container("c2", "a")],
        hist=history(a=record(ago(days=5))),
    )
    assert by_id(p.decisions)["a"].used_by == ("c1", "c2")


def test_in_use_wins_over_maximum_age():
    """An image used by a container is kept even when it is past maximum_age."""
    p = plan(
        [image("a")],
        containers=[container("c1", "a")],
        hist=history(ago(days=365), a=record(ago(days=100), ago(days=90))),
        settings=image_settings(maximum_age=timedelta(days=1)),
    )
    assert reasons(p) == {"a": (Action.KEEP, Reason.IN_USE)}


def test_leaving_container_no_longer_keeps_its_image():
    """plan_images: a container listed in leaving_containers does not keep its image in use."""
    p = plan(
        [image("a", 100)],
        containers=[container("c1", "a")],
        hist=history(a=record(ago(days=5))),
        counted=Counted(leaving_containers={"c1"}),
    )
    assert reasons(p) == {"a": (Action.REMOVE, Reason.SPACE)}


def _dead_pair_snapshot():
    # Two dead containers of one compose service: the older one goes (max 1 per unit), so the
    # image only it used becomes removable.
    unit = {"com.docker.compose.project": "p", "com.docker.compose.service": "web"}
    older = container("c-old", "img-old", created=ago(days=3), finished_at=ago(days=3), labels=unit)
    newer = container("c-new", "img-new", created=ago(days=1), finished_at=ago(days=1), labels=unit)
    return snapshot(
        disk_wanting(100),
        [image("img-old", 100), image("img-new", 100)],
        [older, newer],
    )


def test_dependents_first_frees_the_image_of_a_container_the_plan_removes():
    """policy.plan: an image whose only container this plan removes goes in the same plan."""
    hist = history(**{"img-old": record(ago(days=3)), "img-new": record(ago(days=1))})
    p = policy.plan(_dead_pair_snapshot(), hist, image_settings(), container_settings(), NOW)
    assert ids(p.containers.removals) == ["c-old"]
    assert removed(p.images) == ["img-old"]
    assert reasons(p.images)["img-new"] == (Action.KEEP, Reason.IN_USE)


def test_without_dependents_first_every_listed_container_keeps_its_image():
    """policy.plan(scope=Scope(dependents_first=False)): the container still listed keeps its
    image in use (with the caps as the only rule: under pressure a dead container may go, see
    test_pressure.py)."""
    hist = history(**{"img-old": record(ago(days=3)), "img-new": record(ago(days=1))})
    p = policy.plan(
        _dead_pair_snapshot(),
        hist,
        image_settings(),
        container_settings(remove_under_disk_pressure=False),
        NOW,
        scope=policy.Scope(dependents_first=False),
    )
    assert ids(p.containers.removals) == ["c-old"]
    assert removed(p.images) == []
    assert by_id(p.images.decisions)["img-old"].used_by == ("c-old",)


# -- pinned ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "patterns"),
    [
        pytest.param({"tags": ["myapp:1.2"]}, ["myapp:*"], id="glob-on-tag"),
        pytest.param(
            {"tags": ["other:1"], "digests": ["myapp@sha256:abcdef"]},
            ["myapp@sha256:*"],
            id="glob-on-digest",
        ),
        pytest.param({"tags": ["busybox:1.36"]}, ["docker.io/library/busybox:*"], id="qualified"),
        pytest.param({"tags": ["myorg/app:2"]}, ["docker.io/myorg/app:*"], id="qualified-user"),
        pytest.param({"tags": ["busybox:1.36"]}, ["busybox:1.36"], id="exact"),
        pytest.param({"tags": ["x:1", "keepme:1"]}, ["keepme:*"], id="any-of-several-tags"),
    ],
)
def test_image_matching_a_pin_pattern_is_kept_pinned(kwargs, patterns):
    """A glob in `pinned` matching any tag or digest (in any familiar form) keeps the image."""
    p = plan(
        [image("a", 500, **kwargs), image("b", 500)],
        hist=history(a=record(ago(days=5)), b=record(ago(days=4))),
        settings=image_settings(pinned=patterns),
    )
    assert reasons(p)["a"] == (Action.KEEP, Reason.PINNED)
    assert removed(p) == ["b"]


def test_familiar_pattern_pins_a_fully_qualified_tag():
    """Pattern "busybox:*" also pins an image the runtime lists as docker.io/library/busybox:1.36
    (containerd and CRI print fully qualified references)."""
    p = plan(
        [image("a", 500, tags=["docker.io/library/busybox:1.36"])],
        hist=history(a=record(ago(days=5))),
        settings=image_settings(pinned=["busybox:*"]),
    )
    assert reasons(p)["a"] == (Action.KEEP, Reason.PINNED)


def test_user_repo_pattern_pins_its_fully_qualified_tag():
    """Pattern "myorg/app:*" also pins an image listed as docker.io/myorg/app:2."""
    p = plan(
        [image("a", 500, tags=["docker.io/myorg/app:2"])],
        hist=history(a=record(ago(days=5))),
        settings=image_settings(pinned=["myorg/app:*"]),
    )
    assert reasons(p)["a"] == (Action.KEEP, Reason.PINNED)


def test_pattern_not_matching_does_not_pin():
    """A pattern for another repository leaves the image to the LRU rule."""
    p = plan(
        [image("a", 500, tags=["busybox:1.36"])],
        hist=history(a=record(ago(days=5))),
        settings=image_settings(pinned=["alpine:*", "docker.io/library/busybox:1.35"]),
    )
    assert reasons(p)["a"] == (Action.REMOVE, Reason.SPACE)


@pytest.mark.parametrize("value", ["true", "True", "TRUE"])
def test_pinned_label_true_keeps_the_image(value):
    """Label nodegc.io/pinned=true (any case) pins the image."""
    p = plan(
        [image("a", 500, labels={"nodegc.io/pinned": value})],
        hist=history(a=record(ago(days=5))),
    )
    assert reasons(p)["a"] == (Action.KEEP, Reason.PINNED)


@pytest.mark.parametrize("value", ["false", "", "yes"])
def test_pinned_label_other_values_do_not_pin(value):
    """Only "true" pins: other label values leave the image removable."""
    p = plan(
        [image("a", 500, labels={"nodegc.io/pinned": value})],
        hist=history(a=record(ago(days=5))),
    )
    assert reasons(p)["a"] == (Action.REMOVE, Reason.SPACE)


def test_runtime_pinned_image_is_kept():
    """The runtime's own pin (CRI `pinned`) keeps the image."""
    p = plan([image("a", 500, runtime_pinned=True)], hist=history(a=record(ago(days=5))))
    assert reasons(p)["a"] == (Action.KEEP, Reason.PINNED)


@pytest.mark.parametrize("tag", ["registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.2"])
def test_default_settings_pin_the_pause_image(tag):
    """The default pin list keeps the sandbox (pause) image."""
    p = plan(
        [image("pause", 500, tags=[tag]), image("b", 500)],
        hist=history(pause=record(ago(days=5)), b=record(ago(days=4))),
        settings=ImageSettings(minimum_age=timedelta(0)),
    )
    assert reasons(p)["pause"] == (Action.KEEP, Reason.PINNED)
    assert removed(p) == ["b"]


def test_pinned_wins_over_maximum_age():
    """A pinned image is kept even past maximum_age."""
    p = plan(
        [image("a", runtime_pinned=True)],
        hist=history(ago(days=365), a=record(ago(days=100))),
        settings=image_settings(maximum_age=timedelta(days=1)),
    )
    assert reasons(p) == {"a": (Action.KEEP, Reason.PINNED)}


# -- too young ------------------------------------------------------------------------------------


def test_image_first_seen_within_minimum_age_is_too_young():
    """An image first seen less than minimum_age ago is kept as too-young, however unused."""
    hist = history(young=record(ago(minutes=1)), old=record(ago(minutes=3)))
    p = plan(
        [image("young", 500), image("old", 50)],
        hist=hist,
        settings=image_settings(minimum_age=timedelta(minutes=2)),
    )
    assert reasons(p)["young"] == (Action.KEEP, Reason.TOO_YOUNG)
    assert removed(p) == ["old"]


def test_minimum_age_counts_from_first_seen_not_last_used():
    """An image first seen long ago but last used a second ago is not too young."""
    p = plan(
        [image("a", 500)],
        hist=history(a=record(ago(days=5), ago(seconds=1))),
        settings=image_settings(minimum_age=timedelta(minutes=2)),
    )
    assert reasons(p)["a"] == (Action.REMOVE, Reason.SPACE)


def test_image_exactly_minimum_age_old_is_no_longer_too_young():
    """The boundary: first seen exactly minimum_age ago may go."""
    p = plan(
        [image("a", 500)],
        hist=history(a=record(ago(minutes=2))),
        settings=image_settings(minimum_age=timedelta(minutes=2)),
    )
    assert reasons(p)["a"] == (Action.REMOVE, Reason.SPACE)


def test_image_without_history_record_counts_as_first_seen_now():
    """An image history has not recorded is as young as it gets: too-young, first_seen = now."""
    p = plan(
        [image("unknown", 500)],
        hist=history(),
        settings=image_settings(minimum_age=timedelta(seconds=1)),
    )
    d = by_id(p.decisions)["unknown"]
    assert (d.action, d.reason) == (Action.KEEP, Reason.TOO_YOUNG)
    assert d.record.first_seen == NOW
    assert d.record.last_used is None


# -- maximum age ----------------------------------------------------------------------------------


def _aged(since, rec, *, disk=None, max_age=timedelta(days=7)):
    return plan(
        [image("a", 10)],
        disk=disk if disk is not None else fs(1000, 900),  # usage 10%: no disk pressure
        hist=history(since, a=rec),
        settings=image_settings(maximum_age=max_age),
    )


def test_maximum_age_removes_unused_image_whatever_the_disk():
    """Last used longer ago than maximum_age: removed for age, even far below the threshold."""
    p = _aged(ago(days=30), record(ago(days=20), ago(days=8)))
    assert reasons(p) == {"a": (Action.REMOVE, Reason.AGE)}


def test_maximum_age_waits_until_history_covers_maximum_age():
    """History younger than maximum_age: the age rule does not act yet."""
    p = _aged(ago(days=6, hours=23), record(ago(days=20), ago(days=8)))
    assert reasons(p) == {"a": (Action.KEEP, Reason.BELOW_THRESHOLD)}


def test_maximum_age_acts_once_history_is_exactly_maximum_age_old():
    """History since exactly maximum_age ago is enough."""
    p = _aged(ago(days=7), record(ago(days=20), ago(days=8)))
    assert reasons(p) == {"a": (Action.REMOVE, Reason.AGE)}


def test_maximum_age_is_measured_from_last_used():
    """First seen long ago but used recently: not old."""
    p = _aged(ago(days=30), record(ago(days=20), ago(days=6)))
    assert reasons(p) == {"a": (Action.KEEP, Reason.BELOW_THRESHOLD)}


def test_maximum_age_is_measured_from_first_seen_when_never_used():
    """A never-used image counts its age from its first sighting."""
    assert reasons(_aged(ago(days=30), record(ago(days=8)))) == {"a": (Action.REMOVE, Reason.AGE)}
    assert reasons(_aged(ago(days=30), record(ago(days=6)))) == {
        "a": (Action.KEEP, Reason.BELOW_THRESHOLD)
    }


def test_image_unused_exactly_maximum_age_is_kept():
    """The boundary: not used for exactly maximum_age is not yet *longer* than it."""
    p = _aged(ago(days=30), record(ago(days=20), ago(days=7)))
    assert reasons(p) == {"a": (Action.KEEP, Reason.BELOW_THRESHOLD)}


def test_maximum_age_zero_never_removes_for_age():
    """maximum_age 0s turns the age rule off."""
    p = _aged(ago(days=3650), record(ago(days=3000)), max_age=timedelta(0))
    assert reasons(p) == {"a": (Action.KEEP, Reason.BELOW_THRESHOLD)}


def test_age_removals_count_towards_the_space_target():
    """Bytes planned for age count towards bytes_to_free: no extra image goes for space."""
    hist = history(
        ago(days=30),
        recent_never_used=record(ago(hours=1)),
        stale=record(ago(days=20), ago(days=10)),
    )
    p = plan(
        [image("recent_never_used", 100), image("stale", 100)],
        disk=disk_wanting(100),
        hist=hist,
        settings=image_settings(maximum_age=timedelta(days=7)),
    )
    assert reasons(p) == {
        "stale": (Action.REMOVE, Reason.AGE),
        "recent_never_used": (Action.KEEP, Reason.TARGET_REACHED),
    }
    assert p.bytes_planned == 100


# -- properties -----------------------------------------------------------------------------------

PIN_TAG_PREFIX = "keep/"
MIN_AGES = [timedelta(0), timedelta(minutes=2), timedelta(hours=3)]


@st.composite
def inventories(draw):
    """Random images, containers, history and settings, with independently checkable pins."""
    n = draw(st.integers(1, 10))
    image_ids = [f"img{i:02d}" for i in range(n)]
    images, records = [], {}
    for image_id in image_ids:
        kind = draw(st.sampled_from(["plain", "plain", "plain", "tag-pin", "label-pin", "rt-pin"]))
        tags = [f"{PIN_TAG_PREFIX}{image_id}:1"] if kind == "tag-pin" else [f"app/{image_id}:1"]
        images.append(
            image(
                image_id,
                draw(st.integers(0, 300)),
                tags=tags,
                labels={"nodegc.io/pinned": "true"} if kind == "label-pin" else {},
                runtime_pinned=kind == "rt-pin",
            )
        )
        if draw(st.booleans()) or draw(st.booleans()):
            first = ago(minutes=draw(st.integers(0, 60 * 24 * 30)))
            last = None
            if draw(st.booleans()):
                last = first + timedelta(minutes=draw(st.integers(0, 60 * 24 * 30)))
                last = min(last, NOW)
            records[image_id] = record(first, last)
    containers = []
    for i in range(draw(st.integers(0, 4))):
        containers.append(
            container(
                f"c{i}",
                draw(st.sampled_from(image_ids)),
                draw(st.sampled_from(list(ContainerState))),
            )
        )
    min_age = draw(st.sampled_from(MIN_AGES))
    max_age = draw(st.sampled_from([timedelta(0), timedelta(days=3), timedelta(days=20)]))
    high = draw(st.integers(1, 100))
    low = draw(st.integers(0, high - 1))
    settings = image_settings(
        high_threshold_percent=high,
        low_threshold_percent=low,
        minimum_age=min_age,
        maximum_age=max_age,
        pinned=[f"{PIN_TAG_PREFIX}*"],
    )
    capacity = draw(st.integers(1, 3000))
    disk = fs(capacity, draw(st.integers(0, capacity)))
    hist = history(ago(days=draw(st.sampled_from([0, 1, 10, 100]))), **records)
    return images, containers, hist, settings, disk


def _run(inv):
    images, containers, hist, settings, disk = inv
    return plan(images, disk=disk, containers=containers, hist=hist, settings=settings)


def _first_seen(hist, image_id):
    rec = hist.images.get(image_id)
    return rec.first_seen if rec else NOW


def _protected(inv, img) -> bool:
    _images, containers, hist, settings, _disk = inv
    pinned = (
        img.runtime_pinned
        or img.labels.get("nodegc.io/pinned") == "true"
        or any(t.startswith(PIN_TAG_PREFIX) for t in img.tags)
    )
    in_use = any(c.image_id == img.id for c in containers)
    too_young = NOW - _first_seen(hist, img.id) < settings.minimum_age
    return pinned or in_use or too_young


def _lru_order(inv, candidates):
    hist = inv[2]

    def key(img):
        rec = hist.images.get(img.id)
        first = rec.first_seen if rec else NOW
        last = rec.last_used if rec else None
        return (last is not None, last or first, first, img.id)

    return sorted(candidates, key=key)


@given(inventories())
def test_property_pinned_in_use_or_too_young_images_are_never_removed(inv):
    """(a) No pinned, in-use or too-young image is ever removed."""
    p = _run(inv)
    for d in p.removals:
        assert not _protected(inv, d.image), d


@given(inventories())
def test_property_space_removals_are_a_prefix_of_the_lru_order_of_candidates(inv):
    """(b) Images removed for space are the first k candidates in LRU order."""
    p = _run(inv)
    age_ids = {d.image.id for d in p.decisions if d.reason is Reason.AGE}
    candidates = [i for i in inv[0] if not _protected(inv, i) and i.id not in age_ids]
    order = [i.id for i in _lru_order(inv, candidates)]
    space = [d.image.id for d in p.decisions if d.reason is Reason.SPACE]
    assert space == order[: len(space)]


AGE_BEHIND_SPACE = (
    # A never-used image first in LRU order, and a stale used one that the age rule removes.
    [image("recent", 100), image("stale", 100)],
    [],
    history(ago(days=30), recent=record(ago(hours=1)), stale=record(ago(days=20), ago(days=10))),
    image_settings(maximum_age=timedelta(days=7), pinned=[f"{PIN_TAG_PREFIX}*"]),
    disk_wanting(100),
)


@given(inventories())
@example(AGE_BEHIND_SPACE)
def test_property_space_removals_reach_the_target_minimally(inv):
    """(c) When reachable, planned >= bytes_to_free, and without the last space removal it would
    fall short."""
    p = _run(inv)
    space = [d for d in p.decisions if d.reason is Reason.SPACE]
    if not p.target_reachable:
        candidates = [i for i in inv[0] if not _protected(inv, i)]
        assert len(p.removals) == len(candidates)
        return
    assert p.bytes_planned >= p.bytes_to_free
    if space:
        assert p.bytes_planned - space[-1].image.size_bytes < p.bytes_to_free


@given(inventories())
def test_property_space_removals_reach_the_target_minimally_without_age_rule(inv):
    """(c, disk rule alone) With maximum_age off, space removals stop at the first image that
    brings the planned bytes to bytes_to_free."""
    images, containers, hist, settings, disk = inv
    settings = settings.model_copy(update={"maximum_age": timedelta(0)})
    p = _run((images, containers, hist, settings, disk))
    space = [d for d in p.decisions if d.reason is Reason.SPACE]
    if p.target_reachable:
        assert p.bytes_planned >= p.bytes_to_free
        if space:
            assert p.bytes_planned - space[-1].image.size_bytes < p.bytes_to_free
    else:
        assert {d.image.id for d in space} == {i.id for i in images if not _protected(inv, i)}


@given(inventories())
def test_property_every_image_gets_exactly_one_decision(inv):
    """(d) One decision per listed image, no more, no fewer."""
    p = _run(inv)
    assert sorted(d.image.id for d in p.decisions) == sorted(i.id for i in inv[0])


@given(inventories())
def test_property_below_threshold_only_age_removes(inv):
    """When the disk asks for nothing, every removal is for age."""
    p = _run(inv)
    if p.bytes_to_free == 0:
        assert {d.reason for d in p.removals} <= {Reason.AGE}
