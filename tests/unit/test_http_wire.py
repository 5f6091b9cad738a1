"""The fault proxy's HTTP/1.1 (`nodegc.testing.http_wire`), on bytes: what it reads of a
request, what it relays of an answer, cut short or whole. The proxy's faults stand on these: a
request misread is a fault applied to the wrong call. Each test names the mutation it catches."""

from __future__ import annotations

import io
import json

import pytest

from nodegc.testing import http_wire


class _Client:
    """What the proxy sends to its client, collected."""

    def __init__(self) -> None:
        self.data = b""

    def sendall(self, data: bytes) -> None:
        self.data += data


def test_a_chunked_request_is_read_whole_and_its_path_has_no_query() -> None:
    """A chunked POST is read to its last chunk (the next request starts right after it), and
    `path` drops the query string rules are matched without. Mutation caught: the body read by
    Content-Length only (0: the chunks are taken for the next request), or `path` keeping the
    query."""
    raw = (
        b"POST /v1.41/build?t=x HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"
    )
    reader = io.BytesIO(raw)
    first = http_wire.read_request(reader)
    assert (first.method, first.target, first.path) == ("POST", "/v1.41/build?t=x", "/v1.41/build")
    assert first.body == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    second = http_wire.read_request(reader)
    assert (second.method, second.path, second.body) == ("GET", "/_ping", b"")
    with pytest.raises(http_wire.Closed):
        http_wire.read_request(reader)


def test_a_content_length_answer_is_relayed_whole_or_cut_at_half() -> None:
    """A 10-byte answer is relayed whole (keep-alive: True); with `cut`, the head and 5 bytes
    go and the connection is reported finished. Mutation caught: `cut` ignored (the client
    gets a whole answer: no "response cut short" fault), or the connection kept after a cut."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
    whole, cut = _Client(), _Client()
    assert http_wire.relay_response(io.BytesIO(answer), whole, head_only=False, cut=False)
    assert whole.data == answer
    assert not http_wire.relay_response(io.BytesIO(answer), cut, head_only=False, cut=True)
    assert cut.data == answer[:-5]


def test_connection_close_ends_the_connection_and_a_chunked_answer_goes_chunk_by_chunk() -> None:
    """An answer saying `Connection: close` ends the connection; a chunked one is relayed as
    its chunks, cut in the middle of the first with `cut`. Mutation caught: the `Connection`
    header not read (the proxy waits for a next request the engine will not answer)."""
    closing = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    assert not http_wire.relay_response(io.BytesIO(closing), _Client(), head_only=False, cut=False)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
    client = _Client()
    assert http_wire.relay_response(io.BytesIO(chunked), client, head_only=False, cut=False)
    assert client.data == chunked
    client = _Client()
    assert not http_wire.relay_response(io.BytesIO(chunked), client, head_only=False, cut=True)
    head = chunked.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    assert client.data == head + b"4"  # half of the first piece: its size line, "4\r\n"


def test_an_error_answer_is_docker_style_with_its_length() -> None:
    """`error_response` is a complete HTTP/1.1 answer: the status and its phrase, a JSON body
    `{"message": ...}` and a Content-Length that matches it. Mutation caught: a length off by
    the body (the client hangs or reads the next answer into this one)."""
    raw = http_wire.error_response(409, "conflict: in use")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 409 Conflict\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"message": "conflict: in use"}
