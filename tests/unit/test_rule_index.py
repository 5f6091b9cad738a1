"""docs/architecture.md's rule index stays true: every reason nodegc prints has a row, every
function a row names exists, every test a row names exists (a moved function or a renamed test
fails here until the index follows)."""

from __future__ import annotations

import ast
import importlib
import re
from functools import cache
from pathlib import Path

import pytest

from nodegc.model import REMOVAL_REASONS, Reason

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
TICKED = re.compile(r"`([^`]+)`")


@cache
def rows() -> dict[str, tuple[str, list[str], list[str]]]:
    """reason -> (kinds, functions named, tests named), from the table between the markers."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("<!-- rule-index:start -->")
    end = text.index("<!-- rule-index:end -->")
    out: dict[str, tuple[str, list[str], list[str]]] = {}
    for line in text[start:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        reason, kinds, decided, pinned = cells
        out[TICKED.findall(reason)[0]] = (kinds, TICKED.findall(decided), TICKED.findall(pinned))
    return out


def _resolve(dotted: str) -> object:
    """The object a dotted name names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@cache
def _test_names(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))


def test_every_reason_has_a_row():
    assert set(rows()) == {r.value for r in Reason}


def test_every_removal_reason_row_names_each_kind_it_removes():
    for kind, reasons in REMOVAL_REASONS.items():
        for reason in reasons:
            assert kind in rows()[reason.value][0], (kind, reason)


@pytest.mark.parametrize("reason", sorted(r.value for r in Reason))
def test_every_function_named_exists_and_is_callable(reason):
    _kinds, functions, _tests = rows()[reason]
    for name in functions:
        assert callable(_resolve(name)) or isinstance(_resolve(name), property), name


@pytest.mark.parametrize("reason", sorted(r.value for r in Reason))
def test_every_test_named_exists(reason):
    _kinds, _functions, tests = rows()[reason]
    for name in tests:
        path, _, func = name.partition("::")
        assert (ROOT / path).is_file(), name
        assert func in _test_names(ROOT / path), name


def test_every_reason_a_rule_gives_is_pinned_by_a_test():
    """Only a reason no rule gives may name no function and no test."""
    for reason, (_kinds, functions, tests) in rows().items():
        assert bool(functions) == bool(tests), reason
    unpinned = {reason for reason, (_k, functions, _t) in rows().items() if not functions}
    assert unpinned == {Reason.FAILED_THIS_CYCLE.value}
