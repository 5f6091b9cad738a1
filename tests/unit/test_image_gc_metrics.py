"""The image GC families with the kubelet's names (KEP-6053): one behaviour per test, each on a
fresh registry of its own (client_python's tests/test_core.py style)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from nodegc.collect.cycle import CycleReport
from nodegc.daemon.metrics import Metrics
from nodegc.model import (
    Action,
    ContainerPlan,
    FilesystemStats,
    ImageDecision,
    ImagePlan,
    ImageRecord,
    Outcome,
    Plan,
    Reason,
    RemovalResult,
)
from tests.unit.builders import NOW, image

KEP_NAMES = (
    "nodegc_image_gc_attempts_total",
    "nodegc_image_gc_duration_seconds",
    "nodegc_image_gc_target_bytes",
    "nodegc_image_gc_freed_bytes",
    "nodegc_image_deletions_total",
    "nodegc_skipped_images_total",
    "nodegc_image_fs_usage_percent",
)


def fs(available: int, capacity: int = 1000) -> FilesystemStats:
    return FilesystemStats("/var/lib/docker", capacity, available, 500, 400)


def decision(name: str, action: Action, reason: Reason) -> ImageDecision:
    return ImageDecision(
        image(name, tags=[f"{name}:1"]), ImageRecord(first_seen=NOW), action, reason
    )


def removal(reason: Reason, outcome: Outcome, kind: str = "image", size: int = 0) -> RemovalResult:
    return RemovalResult(kind, "sha256:" + "a" * 64, "x", reason, outcome, size_bytes=size)


def report(
    before: int,
    after: int,
    decisions: Sequence[ImageDecision] = (),
    results: Sequence[RemovalResult] = (),
) -> CycleReport:
    """An image cycle on a 1000-byte filesystem (85/80) from `before` to `after` bytes available."""
    start = fs(before)
    wanted = max(0, 200 - before) if start.usage_percent >= 85 else 0
    plan = ImagePlan(85, 80, start.usage_percent, wanted, tuple(decisions))
    whole = Plan(now=NOW, filesystem=start, containers=ContainerPlan(()), images=plan)
    return CycleReport(
        dry_run=False,
        plan=whole,
        image_plan=plan,
        filesystem_before=start,
        filesystem_after=fs(after),
        image_results=list(results),
        images_before=start,
        images_after=fs(after),
    )


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def attempts(registry: CollectorRegistry, reason: str, result: str) -> float | None:
    labels = {"reason": reason, "result": result}
    return registry.get_sample_value("nodegc_image_gc_attempts_total", labels)


def test_every_family_is_exported_under_the_kubelets_name(registry: CollectorRegistry) -> None:
    """The exact names of KEP-6053, `kubelet_` read `nodegc_`, from the first scrape."""
    Metrics(registry)
    text = generate_latest(registry).decode()
    for name in KEP_NAMES:
        assert f"\n{name}" in text or text.startswith(name), name


def test_attempt_that_reaches_the_target_counts_space_success(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """Over the high threshold, brought to the low one: reason space, result success."""
    done = [removal(Reason.SPACE, Outcome.REMOVED)]
    metrics.cycle_finished("image", 1.0, True, 0.0, report(100, 250, results=done))
    assert attempts(registry, "space", "success") == 1
    assert attempts(registry, "space", "partial") == 0


def test_attempt_short_of_the_target_counts_partial(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """Over the high threshold, still above the low one after: partial (FreeDiskSpaceFailed)."""
    metrics.cycle_finished("image", 1.0, False, 0.0, report(100, 150))
    assert attempts(registry, "space", "partial") == 1


def test_attempt_that_failed_before_planning_counts_unknown_error(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """The engine did not answer: no plan, so no reason is known."""
    metrics.cycle_finished("image", 1.0, False, 0.0, None)
    assert attempts(registry, "unknown", "error") == 1


def test_attempt_with_a_failed_removal_counts_error(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """A removal the engine failed makes the attempt an error, even with the target reached."""
    failed = [removal(Reason.SPACE, Outcome.FAILED)]
    metrics.cycle_finished("image", 1.0, False, 0.0, report(100, 250, results=failed))
    assert attempts(registry, "space", "error") == 1


def test_attempt_below_the_thresholds_with_nothing_to_do_counts_none_noop(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """The periodic cycle on a calm disk: reason none, result noop."""
    metrics.cycle_finished("image", 1.0, True, 0.0, report(600, 600))
    assert attempts(registry, "none", "noop") == 1


def test_attempt_below_the_thresholds_removing_old_images_counts_age(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """Below the thresholds, maximum-age removals set the attempt going: reason age."""
    old = [decision("old", Action.REMOVE, Reason.AGE)]
    done = [removal(Reason.AGE, Outcome.REMOVED)]
    metrics.cycle_finished("image", 1.0, True, 0.0, report(600, 700, old, done))
    assert attempts(registry, "age", "success") == 1


def test_container_cycles_are_not_image_gc_attempts(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """Only image cycles count as image GC attempts."""
    metrics.cycle_finished("container", 1.0, True, 0.0)
    count = "nodegc_image_gc_duration_seconds_count"
    assert registry.get_sample_value(count, {"result": "noop"}) == 0
    assert (
        sum(
            attempts(registry, reason, result) or 0
            for reason in ("space", "inodes", "age", "superseded", "none", "unknown")
            for result in ("success", "partial", "noop", "error")
        )
        == 0
    )


def test_duration_observes_the_attempts_seconds_under_its_result(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """One observation of the attempt's wall time, labelled with its result."""
    metrics.cycle_finished("image", 2.5, True, 0.0, report(600, 600))
    labels = {"result": "noop"}
    assert registry.get_sample_value("nodegc_image_gc_duration_seconds_count", labels) == 1
    assert registry.get_sample_value("nodegc_image_gc_duration_seconds_sum", labels) == 2.5


def test_target_bytes_observes_what_the_disk_rule_asked_for(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """At 90 % of 1000 bytes with low = 80: 200 - 100 available = 100 bytes asked for."""
    metrics.cycle_finished("image", 1.0, True, 0.0, report(100, 250))
    assert registry.get_sample_value("nodegc_image_gc_target_bytes_count") == 1
    assert registry.get_sample_value("nodegc_image_gc_target_bytes_sum") == 100


def test_target_bytes_is_not_observed_when_nothing_was_asked(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """A calm periodic cycle asks for no bytes: no observation (no flood of zeros)."""
    metrics.cycle_finished("image", 1.0, True, 0.0, report(600, 600))
    assert registry.get_sample_value("nodegc_image_gc_target_bytes_count") == 0


def test_freed_bytes_observes_the_statvfs_delta(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """What statvfs showed coming back (100 -> 250 available), not what the images listed."""
    done = [removal(Reason.SPACE, Outcome.REMOVED, size=999)]
    metrics.cycle_finished("image", 1.0, True, 0.0, report(100, 250, results=done))
    assert registry.get_sample_value("nodegc_image_gc_freed_bytes_sum") == 150


def test_deletions_count_image_removals_by_reason_and_result(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """success / error / skipped by the policy's reason; other kinds are not image deletions."""
    metrics.record_removal(removal(Reason.SPACE, Outcome.REMOVED))
    metrics.record_removal(removal(Reason.SPACE, Outcome.FAILED))
    metrics.record_removal(removal(Reason.AGE, Outcome.SKIPPED))
    metrics.record_removal(removal(Reason.AGE, Outcome.REMOVED, kind="container"))
    name = "nodegc_image_deletions_total"
    got = {
        (reason, result): registry.get_sample_value(name, {"reason": reason, "result": result})
        for reason in ("space", "age")
        for result in ("success", "error", "skipped")
    }
    assert got == {
        ("space", "success"): 1,
        ("space", "error"): 1,
        ("space", "skipped"): 0,
        ("age", "success"): 0,
        ("age", "error"): 0,
        ("age", "skipped"): 1,
    }


def test_skipped_images_count_the_plans_ineligible_images_by_reason(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """in_use, min_age, pinned, other; candidates kept because the target is met are not."""
    kept = [
        decision("used", Action.KEEP, Reason.IN_USE),
        decision("young", Action.KEEP, Reason.TOO_YOUNG),
        decision("pin", Action.KEEP, Reason.PINNED),
        decision("parent", Action.KEEP, Reason.PARENT_OF_IN_USE),
        decision("spare", Action.KEEP, Reason.TARGET_REACHED),
    ]
    metrics.cycle_finished("image", 1.0, True, 0.0, report(100, 250, kept))
    got = {
        reason: registry.get_sample_value("nodegc_skipped_images_total", {"reason": reason})
        for reason in ("in_use", "min_age", "pinned", "other")
    }
    assert got == {"in_use": 1, "min_age": 1, "pinned": 1, "other": 1}


def test_skipped_images_are_not_counted_when_gc_had_nothing_to_do(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """A calm periodic cycle considers no image for removal: nothing was skipped."""
    kept = [decision("used", Action.KEEP, Reason.IN_USE)]
    metrics.cycle_finished("image", 1.0, True, 0.0, report(600, 600, kept))
    assert registry.get_sample_value("nodegc_skipped_images_total", {"reason": "in_use"}) == 0


def test_fs_usage_percent_is_the_kubelets_figure(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """100 - floor(333 * 100 / 1000) = 67 (not the ratio 0.667)."""
    metrics.observe_filesystem(fs(333), 85)
    assert registry.get_sample_value("nodegc_image_fs_usage_percent") == 67


def test_fs_usage_percent_is_nan_without_a_capacity(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """A filesystem reporting no capacity: nothing can be said."""
    metrics.observe_filesystem(fs(0, capacity=0), 85)
    assert math.isnan(registry.get_sample_value("nodegc_image_fs_usage_percent") or 0.0)


def test_removed_bytes_add_each_removals_accounted_size_by_kind_and_reason(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """The bytes behind the dashboard's 'freed per kind and reason' panel; failures add none."""
    metrics.record_removal(removal(Reason.SPACE, Outcome.REMOVED, size=300))
    metrics.record_removal(removal(Reason.SPACE, Outcome.FAILED, size=700))
    metrics.record_removal(removal(Reason.AGE, Outcome.REMOVED, kind="build-cache", size=50))
    name = "nodegc_removed_bytes_total"
    assert registry.get_sample_value(name, {"kind": "image", "reason": "space"}) == 300
    assert registry.get_sample_value(name, {"kind": "build-cache", "reason": "age"}) == 50


def test_thresholds_in_effect_are_exported_for_the_dashboard(registry: CollectorRegistry) -> None:
    """The dashboard draws the thresholds each node really uses (a reload changes them)."""
    from nodegc.config import ImageSettings

    metrics = Metrics(registry)
    metrics.set_thresholds(ImageSettings(high_threshold_percent=75, low_threshold_percent=60))
    name = "nodegc_image_gc_threshold_percent"
    got = {
        (resource, level): registry.get_sample_value(name, {"resource": resource, "level": level})
        for resource in ("bytes", "inodes")
        for level in ("high", "low")
    }
    assert got == {
        ("bytes", "high"): 75,
        ("bytes", "low"): 60,
        ("inodes", "high"): 95,
        ("inodes", "low"): 90,
    }
