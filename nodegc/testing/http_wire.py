"""The HTTP/1.1 of the fault proxy, on raw sockets: read a request or a response head, bodies by
Content-Length or chunked (relayed piece by piece as they arrive), a Docker-style error answer,
closing with a reset. Stdlib only; `nodegc.testing.faultproxy` decides what to do with each
request."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import BinaryIO

__all__ = [
    "IO_CHUNK",
    "Closed",
    "Request",
    "Sink",
    "error_response",
    "hard_close",
    "iter_chunked",
    "read_request",
    "relay_response",
    "reset",
]

MAX_HEADER_BYTES = 64 * 1024
IO_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    head: bytes  # request line and headers, as received
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


class Closed(Exception):
    """A peer closed its side (or the proxy is stopping)."""


class Sink:
    """Where an answer the client must not get goes."""

    def sendall(self, data: bytes) -> None:
        pass


def reset(sock: socket.socket) -> None:
    """Close with a reset (RST where the transport has one): the client's read fails at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def hard_close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def read_head(reader: BinaryIO) -> bytes:
    """Header block up to and including the blank line; Closed on a clean EOF before it."""
    lines: list[bytes] = []
    total = 0
    while True:
        line = reader.readline(MAX_HEADER_BYTES)
        if not line:
            raise Closed()
        if not lines and line in (b"\r\n", b"\n"):
            continue  # tolerate stray blank lines between requests
        lines.append(line)
        total += len(line)
        if total > MAX_HEADER_BYTES:
            raise ValueError("header block too long")
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def headers(head: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for raw in head.split(b"\r\n")[1:]:
        name, sep, value = raw.decode("latin-1").partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def read_request(reader: BinaryIO) -> Request:
    head = read_head(reader)
    method, target, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    fields = headers(head)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = b"".join(iter_chunked(reader))
    else:
        body = read_exact(reader, int(fields.get("content-length") or 0))
    return Request(method.upper(), target, head, body)


def read_exact(reader: BinaryIO, n: int) -> bytes:
    data = reader.read(n) if n else b""
    if len(data) != n:
        raise Closed()
    return data


def iter_chunked(reader: BinaryIO) -> Iterator[bytes]:
    """The raw bytes of a chunked body, piece by piece (size lines included), up to the end."""
    while True:
        size_line = reader.readline(MAX_HEADER_BYTES)
        if not size_line:
            raise Closed()
        yield size_line
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, then the blank line
                trailer = reader.readline(MAX_HEADER_BYTES)
                if not trailer:
                    raise Closed()
                yield trailer
                if trailer in (b"\r\n", b"\n"):
                    return
        yield read_exact(reader, size + 2)


def error_response(status: int, message: str) -> bytes:
    """A Docker-style error answer: `status` with the body `{"message": message}`."""
    body = json.dumps({"message": message}).encode()
    reason = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        "Api-Version: 1.41\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def relay_response(
    upstream: BinaryIO, client: socket.socket | Sink, *, head_only: bool, cut: bool
) -> bool:
    """Copy one response from upstream to the client as it arrives; True to keep the
    connection. With `cut`, send the head and half of the body (or of the first chunk) and
    report the connection as finished."""
    head = read_head(upstream)
    status = int(head.split(b" ", 2)[1])
    fields = headers(head)
    client.sendall(head)
    keep = "close" not in fields.get("connection", "").lower()
    if head_only or status in (204, 304) or 100 <= status < 200:
        return keep and not cut
    if "chunked" in fields.get("transfer-encoding", "").lower():
        for piece in iter_chunked(upstream):
            if cut:
                client.sendall(piece[: len(piece) // 2])
                return False
            client.sendall(piece)
        return keep
    length = fields.get("content-length")
    if length is not None:
        remaining = int(length)
        if cut:
            client.sendall(read_exact(upstream, remaining)[: remaining // 2])
            return False
        while remaining:
            data = upstream.read(min(remaining, IO_CHUNK))
            if not data:
                raise Closed()
            client.sendall(data)
            remaining -= len(data)
        return keep
    # No framing: the body ends when upstream closes.
    while data := upstream.read1(IO_CHUNK):  # type: ignore[attr-defined]
        client.sendall(data)
        if cut:
            return False
    return False
