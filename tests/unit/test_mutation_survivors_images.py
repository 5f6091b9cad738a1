"""Tests for mutants of nodegc/policy that survived the unit suite (bench/mutate.py, run by
hand; bench/results/mutation-2026-12-07.md lists every survivor and what became of it).

Each pins a behaviour the README, the issue or the kubelet defines, through
tests/unit/_policy_calls.py; each docstring names the mutant it kills (module:line as of main
2e6de7a, the kind and the change).
"""

from __future__ import annotations

from datetime import timedelta

from nodegc.model import Action, FilesystemStats, Layer, Reason, RuntimeEvent
from tests.unit._policy_calls import (
    learnt_with,
    plan_images_with,
    target_met_with,
    uses_from_events_with,
)
from tests.unit.builders import NOW, ago, fs, history, image, record

MIB = 1024 * 1024


def disk(*, used_percent: int, inodes_used_percent: int) -> FilesystemStats:
    """1000 bytes and 1000 inodes, used as told."""
    return FilesystemStats(
        "/d", 1000, 1000 - 10 * used_percent, 1000, 1000 - 10 * inodes_used_percent
    )


def test_an_inode_only_gc_is_done_at_the_inode_low_threshold_whatever_the_bytes():
    """Inode pressure alone (bytes below the high threshold, above the low): once inode usage is
    at the inode low threshold the target is met; the bytes were never asked for.
    Kills images.py:55 drop-term `plan.bytes_to_free and`: `if not bytes_met(...)` alone."""
    before = disk(used_percent=82, inodes_used_percent=96)
    plan = plan_images_with(before, [])
    assert plan.inodes_to_free and not plan.bytes_to_free
    after = disk(used_percent=82, inodes_used_percent=80)
    assert target_met_with(after, plan)


def test_a_tag_without_a_tag_part_names_its_whole_repository():
    """`busybox` (an engine may list a name without `:tag`) is the repository `busybox`, not
    `busybo`: with one release kept per repository, an image tagged `busybox` is not superseded
    by a newer `busybo:1`.
    Kills superseded.py:40 boundary `colon > name.rfind("/")` -> `>=` (no colon and no slash:
    the last character cut as if it were the tag)."""
    old = image("old", tags=["busybox"])
    new = image("new", tags=["busybo:1"])
    hist = history(old=record(ago(days=3)), new=record(ago(days=1)))
    plan = plan_images_with(fs(1000, 900), [old, new], hist=hist, keep_per_repository=1)
    assert not [d for d in plan.removals if d.reason is Reason.SUPERSEDED]
    assert {d.image.id: d.action for d in plan.decisions} == {
        "old": Action.KEEP,
        "new": Action.KEEP,
    }


def test_a_sample_of_exactly_one_mib_is_learnt_from():
    """The least a sample must free to be learnt from is 1 MiB, that much included (cost.py:
    MIN_SAMPLE_BYTES): a removal that freed exactly 1 MiB on the ledger and on the disk teaches
    the factor.
    Kills cost.py:22 off-by-one `1024 * 1024` -> `1025 * 1024` (and `1024 * 1025`)."""
    assert learnt_with(1.0, MIB, 2 * MIB) == 2.0
    assert learnt_with(1.0, 2 * MIB, MIB) == 0.5
    assert learnt_with(1.0, MIB - 1, 2 * MIB) is None


def test_an_event_that_names_no_image_is_left_out():
    """A container event with no image reference (`image_ref` "") and no listed image id names
    no image: it marks nothing used, even when the engine lists an image whose (malformed) tag
    is `:latest`.
    Kills history.py:115 drop-if `if not reference: return None` (the empty reference read as
    `:latest` and resolved)."""
    odd = image("sha256:" + "a" * 64, tags=[":latest"])
    event = RuntimeEvent("container", "start", "c1", None, NOW - timedelta(hours=1))
    assert uses_from_events_with([event], [odd]) == {}


def test_an_image_whose_layers_have_no_size_frees_its_listed_size():
    """CRI tells an image's layers (chain ids) but not their sizes: the accounting estimates
    them from the listed size, so removing the image alone is planned to free what it lists
    (and the disk's need is met by it).
    Kills images.py:121 drop-if `elif any(size is None): unknown = True` (sizes left unknown:
    the image planned to free 0 bytes)."""
    unsized = image("img", 300)
    layers = {"img": (Layer("base", None), Layer("top", None))}
    plan = plan_images_with(fs(1000, 100), [unsized], layers=layers)  # 90%: 100 bytes wanted
    (removal,) = plan.removals
    assert removal.frees_bytes == 300
    assert plan.target_reachable
