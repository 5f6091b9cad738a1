"""nodegc.metrics: names, labels and values on an injected registry."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from nodegc import __version__
from nodegc.daemon.metrics import Metrics
from nodegc.model import (
    Container,
    ContainerState,
    FilesystemStats,
    Image,
    Outcome,
    Reason,
    RemovalResult,
    Snapshot,
)

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, node="node-a")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def removal(
    kind: str = "image",
    outcome: Outcome = Outcome.REMOVED,
    reason: Reason = Reason.SPACE,
    size: int = 0,
) -> RemovalResult:
    return RemovalResult(
        kind=kind,
        id="sha256:" + "a" * 64,
        name="x",
        reason=reason,
        outcome=outcome,
        size_bytes=size,
    )


def fs(capacity: int = 1000, available: int = 400) -> FilesystemStats:
    return FilesystemStats(
        path="/var/lib/docker",
        capacity_bytes=capacity,
        available_bytes=available,
        inodes_total=500,
        inodes_free=123,
    )


def test_default_registry_is_private_not_global() -> None:
    """Without a registry, Metrics registers on a new one, never prometheus_client.REGISTRY."""
    m = Metrics()
    assert m.registry is not REGISTRY
    assert REGISTRY.get_sample_value("nodegc_runtime_up") is None


def test_two_instances_on_separate_registries_do_not_clash() -> None:
    """Each registry holds its own metrics: a value set through one is not seen in the other."""
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first).runtime_up(True)
    Metrics(second).runtime_up(False)
    assert first.get_sample_value("nodegc_runtime_up") == 1
    assert second.get_sample_value("nodegc_runtime_up") == 0


def test_exposition_parses_and_names_every_contract_metric(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """The text exposition parses and contains every metric of the contract."""
    text = generate_latest(registry).decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    expected = {
        "nodegc_cycle_duration_seconds_bucket",
        "nodegc_cycle_duration_seconds_count",
        "nodegc_cycle_duration_seconds_sum",
        "nodegc_cycles_total",
        "nodegc_last_success_timestamp_seconds",
        "nodegc_removed_total",
        "nodegc_removal_failures_total",
        "nodegc_removal_skips_total",
        "nodegc_bytes_freed_total",
        "nodegc_filesystem_capacity_bytes",
        "nodegc_filesystem_available_bytes",
        "nodegc_filesystem_usage_ratio",
        "nodegc_filesystem_inodes",
        "nodegc_filesystem_inodes_free",
        "nodegc_images",
        "nodegc_image_bytes",
        "nodegc_containers",
        "nodegc_dead_containers",
        "nodegc_runtime_up",
        "nodegc_disk_pressure",
        "nodegc_info",
    }
    assert expected <= names


def test_label_children_exist_from_the_start(metrics: Metrics, registry: CollectorRegistry) -> None:
    """Series for both kinds (and each removal reason) read 0 before anything happened."""
    for kind in ("image", "container"):
        assert value(registry, "nodegc_cycles_total", kind=kind, result="success") == 0
        assert value(registry, "nodegc_cycles_total", kind=kind, result="failure") == 0
        assert value(registry, "nodegc_cycle_duration_seconds_count", kind=kind) == 0
        assert value(registry, "nodegc_last_success_timestamp_seconds", kind=kind) == 0
        assert value(registry, "nodegc_removal_failures_total", kind=kind) == 0
        assert value(registry, "nodegc_removal_skips_total", kind=kind) == 0
    assert value(registry, "nodegc_removed_total", kind="image", reason="space") == 0
    assert value(registry, "nodegc_removed_total", kind="container", reason="per-unit-cap") == 0


def test_successful_cycle_counts_observes_and_stamps(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """A successful cycle bumps success, observes its duration and sets the last-success time."""
    metrics.cycle_finished("image", 1.5, True, 1_700_000_000.0)
    assert value(registry, "nodegc_cycles_total", kind="image", result="success") == 1
    assert value(registry, "nodegc_cycle_duration_seconds_sum", kind="image") == 1.5
    assert value(registry, "nodegc_cycle_duration_seconds_bucket", kind="image", le="2.5") == 1
    assert value(registry, "nodegc_last_success_timestamp_seconds", kind="image") == 1.7e9


def test_failed_cycle_keeps_last_success_time(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """A failed cycle counts as failure and leaves the last-success time where it was."""
    metrics.cycle_finished("container", 0.2, True, 100.0)
    metrics.cycle_finished("container", 0.3, False, 200.0)
    assert value(registry, "nodegc_cycles_total", kind="container", result="failure") == 1
    assert value(registry, "nodegc_last_success_timestamp_seconds", kind="container") == 100.0


def test_cycle_timestamp_may_be_a_datetime(metrics: Metrics, registry: CollectorRegistry) -> None:
    """An aware datetime is stored as Unix seconds."""
    metrics.cycle_finished("image", 0.1, True, T0)
    assert value(registry, "nodegc_last_success_timestamp_seconds", kind="image") == T0.timestamp()


def test_unknown_cycle_kind_is_rejected(metrics: Metrics) -> None:
    """A kind other than image or container is a programming error, not a new series."""
    with pytest.raises(ValueError, match="volume"):
        metrics.cycle_finished("volume", 1.0, True, 0.0)


def test_removed_image_counts_reason_and_bytes(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """A removed image bumps removed_total{image,reason}; bytes_freed moves only by what an
    image cycle measured (a removal's size is accounting, not a measurement)."""
    metrics.record_removal(removal("image", Outcome.REMOVED, Reason.AGE, size=4096))
    assert value(registry, "nodegc_removed_total", kind="image", reason="age") == 1
    assert value(registry, "nodegc_bytes_freed_total") == 0
    metrics.image_cycle_freed(1000)
    metrics.image_cycle_freed(-50)  # the disk filled faster than GC freed: nothing added
    assert value(registry, "nodegc_bytes_freed_total") == 1000


def test_removed_container_frees_no_image_bytes(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """A removed container counts under its reason and adds nothing to bytes_freed."""
    metrics.record_removal(removal("container", Outcome.REMOVED, Reason.GLOBAL_CAP, size=99))
    assert value(registry, "nodegc_removed_total", kind="container", reason="global-cap") == 1
    assert value(registry, "nodegc_bytes_freed_total") == 0


def test_failed_removal_counts_as_failure(metrics: Metrics, registry: CollectorRegistry) -> None:
    """A failed removal bumps removal_failures_total and not removed_total."""
    metrics.record_removal(removal("image", Outcome.FAILED))
    assert value(registry, "nodegc_removal_failures_total", kind="image") == 1
    assert value(registry, "nodegc_removed_total", kind="image", reason="space") == 0


def test_skipped_removal_counts_as_skip(metrics: Metrics, registry: CollectorRegistry) -> None:
    """A skipped removal bumps removal_skips_total."""
    metrics.record_removal(removal("container", Outcome.SKIPPED, Reason.AGE))
    assert value(registry, "nodegc_removal_skips_total", kind="container") == 1


def test_filesystem_gauges(metrics: Metrics, registry: CollectorRegistry) -> None:
    """Capacity, available, inodes and the used ratio come from FilesystemStats."""
    metrics.observe_filesystem(fs(capacity=1000, available=400), 85)
    assert value(registry, "nodegc_filesystem_capacity_bytes") == 1000
    assert value(registry, "nodegc_filesystem_available_bytes") == 400
    assert value(registry, "nodegc_filesystem_usage_ratio") == pytest.approx(0.6)
    assert value(registry, "nodegc_filesystem_inodes") == 500
    assert value(registry, "nodegc_filesystem_inodes_free") == 123


def test_disk_pressure_at_the_high_threshold(metrics: Metrics, registry: CollectorRegistry) -> None:
    """Usage equal to the high threshold is pressure (the kubelet's >=)."""
    metrics.observe_filesystem(fs(capacity=100, available=15), 85)
    assert value(registry, "nodegc_disk_pressure") == 1


def test_no_disk_pressure_below_the_high_threshold(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """Usage one percent below the high threshold clears pressure."""
    metrics.observe_filesystem(fs(capacity=100, available=15), 85)
    metrics.observe_filesystem(fs(capacity=100, available=16), 85)
    assert value(registry, "nodegc_disk_pressure") == 0


def test_threshold_100_means_no_pressure(metrics: Metrics, registry: CollectorRegistry) -> None:
    """A high threshold of 100 (image GC by usage off) never reports pressure, even when full."""
    metrics.observe_filesystem(fs(capacity=100, available=0), 100)
    assert value(registry, "nodegc_disk_pressure") == 0


def test_zero_capacity_sets_ratio_nan(metrics: Metrics, registry: CollectorRegistry) -> None:
    """A filesystem without capacity yields a NaN ratio instead of an exception."""
    metrics.observe_filesystem(fs(capacity=0, available=0), 85)
    ratio = value(registry, "nodegc_filesystem_usage_ratio")
    assert ratio is not None and math.isnan(ratio)


def test_snapshot_counts(metrics: Metrics, registry: CollectorRegistry) -> None:
    """Images, image bytes, containers and dead containers come from the snapshot."""
    states = [ContainerState.RUNNING, ContainerState.EXITED, ContainerState.CREATED]
    snapshot = Snapshot(
        taken_at=T0,
        filesystem=fs(),
        images=(Image(id="sha256:1", size_bytes=10), Image(id="sha256:2", size_bytes=32)),
        containers=tuple(
            Container(id=f"c{n}", name=f"c{n}", image_id="sha256:1", state=s, created=T0)
            for n, s in enumerate(states)
        ),
    )
    metrics.observe_snapshot(snapshot)
    assert value(registry, "nodegc_images") == 2
    assert value(registry, "nodegc_image_bytes") == 42
    assert value(registry, "nodegc_containers") == 3
    assert value(registry, "nodegc_dead_containers") == 2


def test_runtime_up_toggles(metrics: Metrics, registry: CollectorRegistry) -> None:
    """runtime_up(True) sets 1 and runtime_up(False) sets 0."""
    metrics.runtime_up(True)
    assert value(registry, "nodegc_runtime_up") == 1
    metrics.runtime_up(False)
    assert value(registry, "nodegc_runtime_up") == 0


def test_info_names_version_node_and_runtime(metrics: Metrics, registry: CollectorRegistry) -> None:
    """set_info replaces the single info series with the runtime's name."""
    metrics.set_info("docker 27.1.1")
    info = [
        s
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
        if s.name == "nodegc_info"
    ]
    assert [(s.labels, s.value) for s in info] == [
        ({"version": __version__, "node": "node-a", "runtime": "docker 27.1.1"}, 1.0)
    ]
