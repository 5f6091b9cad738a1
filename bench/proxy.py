"""A unix-socket proxy in front of an engine's socket that counts the HTTP requests going through.

Bytes are forwarded untouched both ways; the client's side is parsed just enough to find where
each request starts (request line, headers, Content-Length body), so a kept-alive connection
carrying many requests counts each one.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

_VERSION = re.compile(r"^/v\d+(\.\d+)?")
_HEX_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")


def _closer(*sockets: socket.socket) -> Callable[[], None]:
    def close() -> None:
        for s in sockets:
            s.close()

    return close


def classify(method: str, path: str) -> str:
    """The kind of an engine request: listing, inspect, removal or other."""
    path = _VERSION.sub("", path.split("?", 1)[0])
    parts = [p for p in path.split("/") if p]
    if method == "GET" and parts in (["containers", "json"], ["images", "json"]):
        return f"list {parts[0]}"
    if method == "GET" and len(parts) >= 3 and parts[0] == "images" and parts[-1] == "history":
        return "image history"
    if method == "GET" and len(parts) >= 3 and parts[-1] == "json":
        return f"inspect {parts[0][:-1]}"
    if method == "DELETE" and len(parts) >= 2:
        return f"remove {parts[0][:-1]}"
    if method == "POST" and parts[-1:] == ["tag"]:
        return "tag image"
    return f"other {method} /{'/'.join(p if not _HEX_ID.match(p) else '<id>' for p in parts)}"


class CountingProxy:
    """Listens on `path`, forwards to the engine socket `upstream`, counts requests by kind."""

    def __init__(self, upstream: str | Path, path: str | Path) -> None:
        self.upstream = str(upstream)
        self.path = Path(path)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._stop = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"unix://{self.path}"

    def reset(self) -> Counter[str]:
        """The counts so far, and start again from zero."""
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts

    def __enter__(self) -> Self:
        self.path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(64)
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            done = threading.Barrier(2, action=_closer(client, upstream))
            threading.Thread(target=self._pump, args=(upstream, client, done), daemon=True).start()
            threading.Thread(
                target=self._requests, args=(client, upstream, done), daemon=True
            ).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, done: threading.Barrier) -> None:
        """Engine to client, untouched."""
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            done.wait()

    def _requests(
        self, client: socket.socket, upstream: socket.socket, done: threading.Barrier
    ) -> None:
        """Client to engine: forward, counting each request as its head arrives."""
        buffer = b""
        body_left = 0
        raw = False  # a chunked or upgraded stream: forward the rest without parsing
        try:
            while data := client.recv(65536):
                upstream.sendall(data)
                if raw:
                    continue
                buffer += data
                while True:
                    if body_left:
                        taken = min(body_left, len(buffer))
                        buffer, body_left = buffer[taken:], body_left - taken
                        if body_left:
                            break
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buffer = buffer[:end].decode("latin-1"), buffer[end + 4 :]
                    lines = head.split("\r\n")
                    method, target = ([*lines[0].split(" "), "", ""])[:2]
                    headers = {
                        k.strip().lower(): v.strip()
                        for k, _, v in (line.partition(":") for line in lines[1:])
                    }
                    with self._lock:
                        self.counts[classify(method, target)] += 1
                    if headers.get("transfer-encoding", "").lower() == "chunked":
                        raw = True
                        break
                    body_left = int(headers.get("content-length") or 0)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_WR)
            done.wait()
