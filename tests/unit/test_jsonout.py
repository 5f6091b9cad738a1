"""`--output json`'s encoder: the same document as json.dumps, one decision per line."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from nodegc.cli import jsonout

# Any text an engine can hand over: lone surrogates too (JSON's "\ud800" reads back as one).
text = st.text() | st.text(st.characters(categories=["Cs", "Cc", "Lu", "Zs"]))
leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | text
    | st.floats(allow_nan=False, allow_infinity=False)
)


def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


documents = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=30,
)


@given(documents)
def test_parses_back_to_the_same_document(value: Any) -> None:
    assert json.loads(jsonout.dumps(value)) == json.loads(json.dumps(value))


def test_outline_indented_and_one_decision_per_line() -> None:
    data = {
        "images": {"decisions": [{"id": "a", "tags": ["x:1"]}, {"id": "b", "tags": []}]},
        "containers": {"decisions": []},
        "label": "\x1b[31m",
    }
    text = jsonout.dumps(data)
    assert text.splitlines() == [
        "{",
        '  "images": {',
        '    "decisions": [',
        '      {"id": "a", "tags": ["x:1"]},',
        '      {"id": "b", "tags": []}',
        "    ]",
        "  },",
        '  "containers": {',
        '    "decisions": []',
        "  },",
        '  "label": "\\u001b[31m"',
        "}",
    ]


@given(st.lists(st.dictionaries(st.text(), st.text() | st.integers(), max_size=3), max_size=4))
def test_any_text_is_written_as_printable_ascii(decisions: list[dict[str, Any]]) -> None:
    """Whatever an engine's names hold (non-ASCII, DEL, C1 controls, bidi overrides), the
    document is printable ASCII and newlines, as `json.dumps` writes it, and reads back equal."""
    odd = [{"name": "\x7f"}, {"name": "\x9b31m"}, {"name": "\u202eé"}, {"size": 2**70}]
    odd += [{"name": "\ud800", "used": float("inf")}, {None: "\udfff"}]  # what msgspec refuses
    value = {"decisions": [*decisions, *odd]}
    text = jsonout.dumps(value)
    assert all(" " <= ch <= "~" or ch == "\n" for ch in text), text
    read = json.loads(text, parse_constant=_no_constants)
    assert read == {
        "decisions": [*decisions, *odd[:4], {"name": "\ud800", "used": None}, {"null": "\udfff"}]
    }


@given(st.sampled_from([float("inf"), float("-inf"), float("nan")]))
def test_a_number_that_is_not_finite_is_null_strict_json(number: float) -> None:
    """JSON has no Infinity or NaN (`json.dumps` writes them, `jq` refuses the document)."""
    value = {"usage_percent": number, "filesystems": [{"usage_percent": number, "name": "é"}]}
    text = jsonout.dumps(value)
    parsed = json.loads(text, parse_constant=_no_constants)
    assert parsed == {"usage_percent": None, "filesystems": [{"usage_percent": None, "name": "é"}]}
