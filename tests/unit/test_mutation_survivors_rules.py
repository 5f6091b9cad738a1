"""Tests for mutants of nodegc/policy (containers, sandboxes, fill rate, layer accounting,
superseded releases) that survived the unit suite (bench/mutate.py;
bench/results/mutation-2026-12-07.md). Each docstring names the mutant it kills (module:line as
of main 2e6de7a, the kind and the change). Calls go through tests/unit/_policy_calls.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from nodegc.model import (
    LABEL_KEEP,
    Action,
    ContainerState,
    FilesystemPlan,
    FilesystemStats,
    Layer,
    LayerStore,
    Reason,
    Sandbox,
)
from tests.unit._policy_calls import (
    fill_rate_after,
    learnt_with,
    ledger_of,
    plan_containers_with,
    plan_images_with,
    plan_sandboxes_with,
    short_text_of,
    store_costs_with,
)
from tests.unit.builders import NOW, ago, container, fs, history, image, record

HOUR = timedelta(hours=1)
MIB = 1024 * 1024


def sandbox(sandbox_id: str, created_ago: timedelta, labels: dict[str, str]) -> Sandbox:
    return Sandbox(sandbox_id, "web", "default", "u1", 0, False, NOW - created_ago, labels)


def test_a_keep_labelled_sandbox_stays_though_superseded_old_and_empty():
    """nodegc.io/keep=true keeps a pod sandbox (README: the keep label) even when a newer
    sandbox of its pod supersedes it and it is old, not ready and empty.
    Kills sandboxes.py:76 drop-if `if keep_labelled(s.labels)` (it went as `superseded`)."""
    kept = sandbox("old", 3 * HOUR, {LABEL_KEEP: "true"})
    newer = sandbox("new", 2 * HOUR, {})
    plan = plan_sandboxes_with([kept, newer], minimum_age=HOUR)
    reasons = {d.sandbox.id: (d.action, d.reason) for d in plan.decisions}
    assert reasons["old"] == (Action.KEEP, Reason.KEEP_LABEL)
    assert reasons["new"] == (Action.KEEP, Reason.NEWEST_OF_POD)


def test_the_fill_rate_is_smoothed_from_the_third_measurement_on():
    """The rate is an exponentially weighted average (ALPHA 0.3 for the newest rate) once there
    is a rate to average with: the first rate (second measurement) is taken as it is, the next
    one is 0.3 x new + 0.7 x previous.
    Kills fillrate.py:46 drop-if `if previous.samples > 1` (no smoothing) and the boundary
    `>` -> `>=` (the first rate averaged with a 0 that was never measured)."""
    rate = fill_rate_after([(0.0, fs(10_000, 5_000)), (10.0, fs(10_000, 4_000))])
    assert rate is not None and rate.bytes_per_second == pytest.approx(100.0)
    rate = fill_rate_after(
        [(0.0, fs(10_000, 5_000)), (10.0, fs(10_000, 4_000)), (20.0, fs(10_000, 4_000))]
    )
    assert rate is not None and rate.bytes_per_second == pytest.approx(70.0)


def test_a_holder_added_again_holds_only_its_new_layers():
    """Ledger.add: a holder added again replaces its layers (policy/space.py), so the layer it
    no longer holds comes back with the image that still holds it.
    Kills space.py:67 drop-if `if holder in self._holdings and holder not in self._gone` (the
    old layers stayed counted as held)."""
    shared, other = Layer("L", 100), Layer("M", 50)
    ledger = ledger_of({"img": [shared]})
    ledger.add("cache", [shared])
    assert ledger.frees("img").bytes == 0
    ledger.add("cache", [other])
    assert ledger.frees("img").bytes == 100
    assert ledger.frees("cache").bytes == 50


def test_tags_with_an_empty_repository_name_are_no_repository():
    """A tag whose name part is empty (`:1`, as an untrusted engine may list) names no
    repository: two such images do not supersede one another.
    Kills superseded.py:42 drop-term `not name or` (an empty name taken as a repository)."""
    old, new = image("old", tags=[":1"]), image("new", tags=[":2"])
    hist = history(old=record(ago(days=3)), new=record(ago(days=1)))
    plan = plan_images_with(fs(1000, 900), [old, new], hist=hist, keep_per_repository=1)
    assert [d.image.id for d in plan.removals] == []


def test_a_compose_project_label_without_a_service_is_no_compose_unit():
    """A container with a compose project label but no service label is its own unit (by its
    name, README: evict units): two such containers with different names do not cap each other.
    Kills containers.py:44 and-or `project and service` -> `or` (both in one compose unit)."""
    labels = {"com.docker.compose.project": "shop"}
    a = container("a", created=ago(hours=3), finished_at=ago(hours=2), labels=labels)
    b = container("b", created=ago(hours=5), finished_at=ago(hours=4), labels=labels)
    plan = plan_containers_with([a, b], max_per_pod_container=1)
    assert {d.container.id: d.reason for d in plan.decisions} == {
        "a": Reason.WITHIN_CAP,
        "b": Reason.WITHIN_CAP,
    }


def test_an_image_with_a_layer_of_unknown_size_teaches_no_cost():
    """Docker's containerd image store: the content bytes of an image are spread over its
    layers only when every snapshot size is told; a layer of unknown size stays unknown (the
    accounting estimates it), and the image's known layers keep their told size.
    Kills space.py:211 drop-if `if not stack or any(size is None): continue` (the unknown layer
    given a cost, the known one the whole content)."""
    layers = {"img": (Layer("a", 100), Layer("b", None))}
    costed = store_costs_with(LayerStore.CONTENT_AND_SNAPSHOT, [image("img", 300)], layers)
    assert [layer.size_bytes for layer in costed["img"]] == [100, None]


def test_two_measurements_at_the_same_instant_change_no_estimate():
    """A measurement taken at the same time as the last one (no time elapsed) teaches no rate:
    the estimate stays as it was (no division by zero).
    Kills fillrate.py:43 boundary `elapsed <= 0` -> `< 0`."""
    two = [(0.0, fs(10_000, 5_000)), (10.0, fs(10_000, 4_000))]
    before = fill_rate_after(two)
    after = fill_rate_after([*two, (10.0, fs(10_000, 3_000))])
    assert after == before


def _short_plan(filesystem: FilesystemStats, *, bytes_to_free: int, inodes_to_free: int):
    return FilesystemPlan(filesystem, 85, 80, 85, 80, bytes_to_free, inodes_to_free, ())


def test_a_filesystem_short_of_both_targets_is_said_short_of_both():
    """FreeDiskSpaceFailed for a filesystem without images that asked for bytes and inodes
    names its usage (bytes) and its inode usage, both.
    Kills filesystems.py:151 and-or `plan.bytes_to_free or not plan.inodes_to_free` -> `and`
    (the byte part left out when inodes were asked for too)."""
    disk = FilesystemStats("/var/log", 1000, 50, 1000, 50)
    text = short_text_of(_short_plan(disk, bytes_to_free=400, inodes_to_free=300), disk)
    assert "filesystem /var/log (measured) is 95% used" in text
    assert "inodes of /var/log (measured) are 95% used" in text


def test_a_filesystem_measured_by_path_alone_is_named_measured():
    """A filesystem with no roles told (measured by path alone) is named `(measured)` in the
    FreeDiskSpaceFailed words (README: the line names its roles).
    Kills filesystems.py:143 drop-term `", ".join(roles) or "measured"` (empty parentheses)."""
    disk = FilesystemStats("/var/log", 1000, 50, 1000, 900)
    text = short_text_of(_short_plan(disk, bytes_to_free=400, inodes_to_free=0), disk)
    assert text.startswith("filesystem /var/log (measured) is 95% used")


def test_measurements_a_second_apart_make_a_rate():
    """Any time elapsed between two measurements makes a rate, one second included.
    Kills fillrate.py:43 off-by-one `elapsed <= 0` -> `<= 1` (a second apart ignored)."""
    rate = fill_rate_after([(0.0, fs(10_000, 5_000)), (1.0, fs(10_000, 4_900))])
    assert rate is not None and rate.samples == 2
    assert rate.bytes_per_second == pytest.approx(100.0)


def test_a_factor_of_exactly_eight_is_learnt_and_one_past_it_is_not():
    """The cost factor learnt from a sample is taken for real between 0.5 and 8, both included
    (cost.py MIN_FACTOR, MAX_FACTOR); past 8 it is noise.
    Kills cost.py:47 boundary `sample <= MAX_FACTOR` -> `<`."""
    assert learnt_with(1.0, MIB, 8 * MIB) == 8.0
    assert learnt_with(1.0, MIB, 8 * MIB + 1024) is None
    assert learnt_with(1.0, 2 * MIB, MIB) == 0.5


def test_one_release_per_repository_keeps_only_the_newest():
    """images.keep_per_repository = 1: of two releases of one repository the older is
    superseded (whatever the disk).
    Kills superseded.py:63 off-by-one `keep_per_repository <= 0` -> `<= 1` (1 taken as off)."""
    old, new = image("old", tags=["busybox:1"]), image("new", tags=["busybox:2"])
    hist = history(old=record(ago(days=3)), new=record(ago(days=1)))
    plan = plan_images_with(fs(1000, 900), [old, new], hist=hist, keep_per_repository=1)
    assert [(d.image.id, d.reason) for d in plan.removals] == [("old", Reason.SUPERSEDED)]


def test_an_older_release_in_use_is_kept_in_use_not_superseded():
    """images.keep_per_repository never removes an image in use: an older release a running
    container uses stays (`in-use`) though a newer release supersedes it.
    Kills superseded.py:84 drop-term `i.id not in keep` (a kept image planned as superseded)."""
    old, new = image("old", tags=["app:1"]), image("new", tags=["app:2"])
    running = container("web", "old", state=ContainerState.RUNNING)
    hist = history(old=record(ago(days=3)), new=record(ago(days=1)))
    plan = plan_images_with(
        fs(1000, 900), [old, new], containers=[running], hist=hist, keep_per_repository=1
    )
    assert [d.image.id for d in plan.removals] == []
    assert [(d.image.id, d.action, d.reason) for d in plan.decisions if d.image.id == "old"] == [
        ("old", Action.KEEP, Reason.IN_USE)
    ]
