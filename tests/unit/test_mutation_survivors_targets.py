"""Tests for mutants of nodegc/policy/targets.py and the layer ledger (policy/space.py) that
survived the unit suite (bench/mutate.py; bench/results/mutation-2026-12-07.md). Each
docstring names the mutant it kills (module:line as of main 2e6de7a, the kind and the change).
Calls go through tests/unit/_policy_calls.py.
"""

from __future__ import annotations

from nodegc.model import FilesystemStats, Layer
from tests.unit._policy_calls import ledger_of, wanted_under, wanted_with, while_freeing_with


def inodes_used(percent: int) -> FilesystemStats:
    """Plenty of bytes free, `percent` of 1000 inodes used."""
    return FilesystemStats("/d", 1000, 900, 1000, 1000 - 10 * percent)


def test_once_inodes_were_wanted_later_plans_ask_down_to_the_inode_low_threshold():
    """The kubelet's hysteresis for inodes: once an image GC found inodes wanted, its later
    plans ask for inodes while inode usage is above the inode low threshold, though below the
    inode high threshold (at exactly low + 1 it still asks; at low it is done).
    Kills targets.py:152 drop-if `if found_inodes and inode_high < 100` (no inode hysteresis)
    and targets.py:153 off-by-one `inode_low + 1` -> `+ 2`."""
    rule = {"inode_high_threshold_percent": 85, "inode_low_threshold_percent": 80}
    assert wanted_with(inodes_used(81), **rule).inodes == 0  # below high: no trigger
    later = while_freeing_with(found_bytes=False, found_inodes=True, **rule)
    assert wanted_under(inodes_used(81), later).inodes == 10
    assert wanted_under(inodes_used(80), later).inodes == 0


def test_inode_hysteresis_stays_off_with_the_inode_threshold_off():
    """Inode high threshold 100 turns the inode rule off, and later plans too.
    Kills targets.py:152 drop-term `found_inodes and` / boundary `< 100` -> `<= 100`."""
    rule = {"inode_high_threshold_percent": 100, "inode_low_threshold_percent": 80}
    later = while_freeing_with(found_bytes=True, found_inodes=True, **rule)
    assert wanted_under(inodes_used(99), later).inodes == 0
    later = while_freeing_with(
        found_bytes=True,
        found_inodes=False,
        inode_high_threshold_percent=85,
        inode_low_threshold_percent=80,
    )
    assert wanted_under(inodes_used(84), later).inodes == 0


def test_a_removed_holder_frees_nothing_more_and_an_unknown_one_nothing():
    """Ledger: removing a holder twice frees nothing the second time, and a holder the ledger
    does not know frees nothing (policy/space.py: `remove` "nothing when already removed or
    unknown").
    Kills space.py:100 and-or `holder in self._gone or holder not in self._holdings` -> `and`
    (a removed holder counted again as freeing what the other holder keeps; an unknown one a
    KeyError)."""
    shared = Layer("L", 100)
    ledger = ledger_of({"a": [shared], "b": [shared]})
    assert ledger.remove("a").bytes == 0
    assert ledger.frees("a").bytes == 0
    assert ledger.remove("a").bytes == 0
    assert ledger.frees("nobody").bytes == 0
    assert ledger.frees("b").bytes == 100
