"""Targets in bytes: the rules of policy/targets.py (percent and bytes, whichever asks for more
wins), the settings that hold them (sizes, refused values, exit 2), and the plan's header."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodegc.cli import main
from nodegc.cli.render import image_plan_json
from nodegc.cli.summaries import image_summary
from nodegc.collect.observe import TargetBeyondCapacity, check_targets
from nodegc.config import ConfigError, load_settings
from nodegc.config.sizes import format_size
from nodegc.policy import targets
from nodegc.policy.images import plan_images, target_met
from tests.unit.builders import NOW, fs, history, image, image_settings

GiB = 1 << 30


def test_sizes_parse_as_people_write_them() -> None:
    for text, value in [("20GiB", 20 * GiB), ("20Gi", 20 * GiB), ("500MB", 500_000_000),
                        ("1.5GiB", 3 * GiB // 2), ("123", 123), (0, 0), (4096, 4096)]:  # fmt: skip
        got = load_settings(overrides={"images": {"minimum_free": text}}).images.minimum_free
        assert int(got) == value, text


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (True, "not a boolean"),
        (-1, "negative"),
        ("-5GiB", "negative"),
        ("lots", "could not parse"),
        (1.5, "whole number"),
        ("2EiB", "1 EiB"),
    ],
)
def test_a_size_that_is_no_size_is_refused_naming_the_field(value: object, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(overrides={"images": {"minimum_free": value}})
    assert "images.minimum_free" in str(exc.value) and words in str(exc.value)


def test_target_below_minimum_is_refused_and_zero_means_minimum() -> None:
    with pytest.raises(ConfigError, match=r"images\.target_free = 1GiB: must be at least"):
        load_settings(overrides={"images": {"minimum_free": "2GiB", "target_free": "1GiB"}})
    s = load_settings(overrides={"images": {"minimum_free": "2GiB"}}).images
    assert targets.target_free(s) == 2 * GiB


def test_exit_2_for_a_bad_size_in_the_config_file(tmp_path, capsys) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[images]\nminimum_free = "twenty gigs"\n')
    assert main(["config", "--config", str(config)]) == 2
    assert "images.minimum_free = 'twenty gigs'" in capsys.readouterr().err


def test_sizes_round_trip_through_the_printed_config() -> None:
    assert [format_size(v) for v in (0, 20 * GiB, 1536 << 20, 1234)] == [
        0, "20GiB", "1536MiB", "1234B"
    ]  # fmt: skip


# -- the rules ----------------------------------------------------------------------------------

CAP = 100 * GiB


def disk(free: int):
    return fs(CAP, free)


def test_below_minimum_free_triggers_although_usage_is_low() -> None:
    s = image_settings(minimum_free=60 * GiB, target_free=70 * GiB)
    w = targets.wanted(disk(50 * GiB), s)  # 50% used: far below 85%
    assert w.trigger == targets.MINIMUM_FREE and w.bytes == 20 * GiB
    assert targets.pressure_kinds(disk(50 * GiB), s) == ("bytes",)
    s = image_settings(minimum_free=10 * GiB, target_free=15 * GiB, high_threshold_percent=100)
    assert targets.wanted(disk(9 * GiB), s).bytes == 6 * GiB
    assert targets.wanted(disk(10 * GiB), s).trigger == ""  # not below: at minimum_free


def test_whichever_asks_for_more_wins_and_is_named() -> None:
    # 90% used: percent asks for 20 - 10 = 10 GiB (to 80%); bytes for 12 - 10 = 2 GiB.
    s = image_settings(minimum_free=11 * GiB, target_free=12 * GiB)
    w = targets.wanted(disk(10 * GiB), s)
    assert (w.bytes, w.trigger) == (10 * GiB, targets.HIGH_THRESHOLD)
    # Bytes asks for more: 40 GiB target.
    s = image_settings(minimum_free=30 * GiB, target_free=40 * GiB)
    w = targets.wanted(disk(10 * GiB), s)
    assert (w.bytes, w.trigger) == (30 * GiB, targets.MINIMUM_FREE)
    # Percent triggers alone, but the amount is the larger: target_free counts too.
    s = image_settings(minimum_free=5 * GiB, target_free=40 * GiB)
    assert targets.wanted(disk(10 * GiB), s).bytes == 30 * GiB


@given(
    free=st.integers(0, 100),
    minimum=st.integers(0, 99),
    extra=st.integers(0, 50),
    high=st.integers(1, 100),
)
def test_the_amount_meets_both_targets_and_no_more(free, minimum, extra, high) -> None:
    """Freeing exactly what is wanted meets the byte targets; one byte less does not."""
    low = high - 1
    target = min(99, minimum + extra)
    s = image_settings(
        minimum_free=minimum * GiB,
        target_free=target * GiB,
        high_threshold_percent=high,
        low_threshold_percent=low,
    )
    d = disk(free * GiB)
    w = targets.wanted(d, s)
    if not w.bytes:
        return
    after = fs(CAP, d.available_bytes + w.bytes)
    assert targets.bytes_met(after, high, low, w.target_free_bytes)
    short = fs(CAP, d.available_bytes + w.bytes - 1)
    assert not targets.bytes_met(short, high, low, w.target_free_bytes)


def test_while_freeing_keeps_asking_down_to_target_free() -> None:
    s = image_settings(minimum_free=10 * GiB, target_free=15 * GiB, high_threshold_percent=100)
    later = targets.while_freeing(s, found_bytes=True, found_inodes=False)
    assert targets.wanted(disk(12 * GiB), s).bytes == 0  # above minimum_free: no trigger
    assert targets.wanted(disk(12 * GiB), later).bytes == 3 * GiB  # still short of target_free


def test_capacity_is_checked_naming_the_field() -> None:
    s = image_settings(minimum_free=100 * GiB, target_free=100 * GiB)
    with pytest.raises(TargetBeyondCapacity, match=r"images.minimum_free = .* capacity"):
        check_targets(s, [disk(1 * GiB)])
    check_targets(image_settings(minimum_free=1 * GiB), [disk(0)])


def test_the_plan_and_its_header_name_the_rule() -> None:
    s = image_settings(minimum_free=30 * GiB, target_free=40 * GiB, high_threshold_percent=95,
                       low_threshold_percent=90)  # fmt: skip
    d = disk(25 * GiB)  # 75% used: the percentages ask for nothing
    p = plan_images(d, [image("a", 10 * GiB)], [], history(), s, NOW)
    assert p.trigger == "minimum_free" and p.bytes_to_free == 15 * GiB
    assert image_plan_json(p, d)["trigger"] == "minimum_free"
    assert "below minimum_free" in image_summary(p, d)
    assert not target_met(fs(CAP, 39 * GiB), p) and target_met(fs(CAP, 40 * GiB), p)
    quiet = plan_images(disk(50 * GiB), [image("a")], [], history(), s, NOW)
    assert image_plan_json(quiet, disk(50 * GiB))["trigger"] is None
