"""The fill-rate estimate and the lookahead rule (policy/fillrate.py), without a disk."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from nodegc.model import FilesystemStats
from nodegc.policy import fillrate
from tests.unit.builders import fs, image_settings

CAP = 1_000_000


def feed(availables: list[int], step: float = 1.0) -> tuple[fillrate.FillRate, FilesystemStats]:
    rate = None
    for i, free in enumerate(availables):
        disk = fs(CAP, free)
        rate = fillrate.update(rate, disk, i * step)
    assert rate is not None
    return rate, disk


def test_a_steady_writer_is_measured_at_its_rate() -> None:
    rate, _ = feed([500_000 - 1000 * i for i in range(10)])
    assert abs(rate.bytes_per_second - 1000) < 1e-6


def test_time_until_high_and_full() -> None:
    settings = image_settings(high_threshold_percent=85, low_threshold_percent=80)
    rate, disk = feed([300_000 - 1000 * i for i in range(6)])  # 295,000 free, 1000 B/s
    # usage >= 85% once available <= 159,999 (1,000,000 * 16 / 100 - 1).
    assert fillrate.seconds_until_high(disk, settings, rate) == (295_000 - 159_999) / 1000
    assert fillrate.seconds_until_full(disk, rate) == 295.0


def test_minimum_free_counts_as_the_trigger_when_it_comes_first() -> None:
    settings = image_settings(high_threshold_percent=100, minimum_free=200_000)
    rate, disk = feed([300_000 - 1000 * i for i in range(6)])
    assert fillrate.seconds_until_high(disk, settings, rate) == (295_000 - 199_999) / 1000


def test_projected_only_within_the_lookahead_and_only_when_on() -> None:
    rate, disk = feed([300_000 - 1000 * i for i in range(6)])  # 135 s to the threshold
    on = image_settings(lookahead=timedelta(seconds=200))
    assert fillrate.projected(disk, on, rate)
    assert not fillrate.projected(disk, image_settings(lookahead=timedelta(seconds=100)), rate)
    assert not fillrate.projected(disk, image_settings(), rate)  # 0s: off


def test_not_before_enough_measurements() -> None:
    rate, disk = feed([300_000, 200_000, 100_000 + 60_000])
    assert not rate.ready
    assert not fillrate.projected(disk, image_settings(lookahead=timedelta(hours=1)), rate)


@given(st.lists(st.integers(0, 5000), min_size=2, max_size=30))
def test_never_on_a_flat_or_falling_disk(frees: list[int]) -> None:
    """Free space that never shrinks projects nothing, whatever the lookahead."""
    availables, free = [], 200_000
    for step in frees:
        free += step
        availables.append(free)
    rate, disk = feed(availables)
    assert rate.bytes_per_second <= 0
    assert not fillrate.projected(disk, image_settings(lookahead=timedelta(days=300)), rate)
    assert fillrate.seconds_until_full(disk, rate) is None


def test_already_triggered_is_not_projected() -> None:
    rate, disk = feed([150_000 - 1000 * i for i in range(6)])  # 85% and more already
    assert not fillrate.projected(disk, image_settings(lookahead=timedelta(hours=1)), rate)
    assert fillrate.seconds_until_high(disk, image_settings(), rate) == 0.0


def test_a_projected_cycle_plans_as_if_high_had_been_crossed(tmp_path, clock) -> None:
    """Collector.projected (set by the daemon's lookahead): usage 82% is below the high
    threshold 85% but above the low one 80%: the cycle frees down to 80%, trigger `projected`,
    and the flag is spent. Without it the same disk frees nothing."""
    from tests.unit.test_cycle import Rig, three_unused_images

    rig = Rig(tmp_path, clock)
    three_unused_images(rig, other_used=520)  # 520 + 300 = 820 of 1000: 82%
    plain = rig.collector().cycle(containers=False)
    assert not plain.image_results and plain.image_plan.trigger == ""
    gc = rig.collector()
    gc.projected = True
    report = gc.cycle(containers=False)
    assert report.image_plan.trigger == "projected"
    assert [r.id for r in report.image_results] == ["a"]  # 720 of 1000: 72% <= 80%
    assert gc.projected is False
