"""The engine's JSON answers decoded fast (msgspec) and exactly as the json module decodes them,
whatever an untrusted engine sends (issue 20)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodegc.runtime.docker.decoding import loads

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(_JSON)
def test_loads_equals_the_json_module(value):
    body = json.dumps(value).encode()
    assert loads(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"Labels": {"a": "\\ud800"}}',  # a lone surrogate escape (msgspec refuses it)
        b'{"Size": NaN}',
        b"[1e400]",
        b"\xef\xbb\xbf[1]",  # a byte order mark
        b'{"Size": 123456789012345678901234567890}',  # past 64 bits
        b'[{"Id": "x", "Names": ["/\\u001b[31m"]}]',
    ],
)
def test_what_msgspec_refuses_decodes_as_before(body):
    assert loads(body) == json.loads(body)


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"", b"[1,]", b"[1] x"])
def test_what_neither_takes_raises_value_error(body):
    with pytest.raises(ValueError):
        loads(body)
