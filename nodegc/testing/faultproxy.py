"""A fault-injecting HTTP proxy between nodegc and a real engine, on unix sockets (stdlib only).

    with FaultProxy(engine.socket_path, "/tmp/ngc-x/proxy.sock") as proxy:
        proxy.add(Fault.error(500), method="GET", path=r"/containers/json$")
        ... run nodegc with --runtime-endpoint proxy.endpoint ...
        assert proxy.count("GET", r"/containers/json$") == 1

Every request is parsed (HTTP/1.1 with keep-alive; bodies by Content-Length or chunked) and
matched against the rules, first match wins, by method and a regex searched in the path (without
the query string, with the API version prefix: `/v1.47/images/sha256:...`). A matching rule:

- `Fault.latency(s)`: waits, then forwards;
- `Fault.error(code)`: answers `code` with a Docker-style body `{"message": "..."}` itself;
- `Fault.drop()`: forwards, then sends the status line, the headers and half of the body and
  closes the connection (the client sees a response cut short);
- `Fault.stall()`: never answers (until the client gives up or the proxy stops);
- `Fault.hook(fn)`: calls `fn()` (a test's race: start a container, create one...), then
  forwards: the engine sees the request right after whatever `fn` did;
- `Fault.reset()`: resets the connection (RST) without forwarding: the engine never sees the
  request; `Fault.reset(after=True)`: forwards, lets the engine answer in full, then resets the
  client's connection instead of relaying it (a change carried out whose answer was lost).

Rules can be limited to `times` matches after letting `skip` matches through, applied to a
fraction `rate` of the matching requests (drawn from a random generator seeded with `seed`, so
a run can be repeated; a request the draw spares goes on to the next rule), and added,
removed or cleared while requests flow. `down()` makes the proxy behave like a stopped engine
(connections refused, open ones cut, the /events stream included); `up()` brings it back.
Streaming responses (chunked, as /events) are relayed chunk by chunk as they arrive.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, Self

from nodegc.testing import http_wire

__all__ = ["Exchange", "Fault", "FaultProxy", "Rule"]

FaultKind = Literal["latency", "error", "drop", "stall", "hook", "reset"]
ACCEPT_POLL_SECONDS = 0.1
STALL_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Fault:
    """What to do to a matching request."""

    kind: FaultKind
    delay: float = 0.0
    status: int = 500
    message: str = "injected fault"
    action: Callable[[], object] | None = None
    after: bool = False  # reset: after the engine answered (the answer is lost)

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        return cls("latency", delay=seconds)

    @classmethod
    def error(cls, status: int = 500, message: str | None = None) -> Fault:
        text = message or f"fault proxy: injected {status} {HTTPStatus(status).phrase}"
        return cls("error", status=status, message=text)

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")

    @classmethod
    def stall(cls) -> Fault:
        return cls("stall")

    @classmethod
    def hook(cls, action: Callable[[], object]) -> Fault:
        return cls("hook", action=action)

    @classmethod
    def reset(cls, *, after: bool = False) -> Fault:
        return cls("reset", after=after)


@dataclass
class Rule:
    """A fault for requests whose method and path match; `hits` counts the faults applied."""

    fault: Fault
    method: str | None = None
    path: re.Pattern[str] = field(default_factory=lambda: re.compile(""))
    times: int | None = None  # apply at most this many times (None: always)
    skip: int = 0  # let this many matching requests through first
    rate: float = 1.0  # the fraction of matching requests it applies to
    seed: int | None = None
    matched: int = 0
    hits: int = 0
    _draw: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._draw = random.Random(self.seed)

    def claims(self, method: str, path: str) -> bool:
        """Whether this rule applies to the request (and count it). Called under the lock."""
        if self.method is not None and self.method != method:
            return False
        if not self.path.search(path):
            return False
        self.matched += 1
        if self.matched <= self.skip:
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        if self.rate < 1.0 and self._draw.random() >= self.rate:
            return False
        self.hits += 1
        return True


@dataclass(frozen=True)
class Exchange:
    """A request the engine answered: sent upstream at `sent`, answer relayed by `answered`."""

    method: str
    path: str
    sent: float
    answered: float


class FaultProxy:
    """Listens on `listen_path`, forwards to the unix socket `upstream_path`. A context manager."""

    def __init__(
        self, upstream_path: str | os.PathLike[str], listen_path: str | os.PathLike[str]
    ) -> None:
        self.upstream_path = str(upstream_path)
        self.listen_path = Path(listen_path)
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._seen: list[tuple[str, str]] = []  # (method, request target with its query)
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()  # the whole proxy is closing
        self._listening = threading.Event()
        self._generation = 0  # bumped by down(): connections of older generations end
        self.errors: list[Exception] = []  # what hooks raised
        self._exchanges: list[Exchange] = []

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The address to give nodegc: unix://<listen_path>."""
        return f"unix://{self.listen_path}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Listen (again, after `down()`); returns once connections are accepted."""
        if self._stopping.is_set():
            raise RuntimeError("fault proxy is closed")
        if self._listening.is_set():
            return
        with contextlib.suppress(FileNotFoundError):
            self.listen_path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.listen_path))
        os.chmod(self.listen_path, 0o600)
        listener.listen(64)
        listener.settimeout(ACCEPT_POLL_SECONDS)
        self._listener = listener
        self._listening.set()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name="faultproxy-accept", daemon=True
        )
        self._accept_thread.start()

    up = start

    def down(self) -> None:
        """Act like a stopped engine: stop accepting (connects are refused while the socket file
        stays) and cut every open connection, streams included."""
        self._listening.clear()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
            self._accept_thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            self._generation += 1
            sockets = list(self._sockets)
        for sock in sockets:
            http_wire.hard_close(sock)

    def close(self) -> None:
        """Stop everything and remove the socket file; safe to call twice."""
        self._stopping.set()
        self.down()
        with contextlib.suppress(FileNotFoundError):
            self.listen_path.unlink()

    # -- rules and counts -------------------------------------------------------------------
    def add(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        path: str = "",
        times: int | None = None,
        skip: int = 0,
        rate: float = 1.0,
        seed: int | None = None,
    ) -> Rule:
        """Apply `fault` to requests matching `method` (None: any) and the regex `path` (to a
        fraction `rate` of them, drawn with `seed`)."""
        rule = Rule(
            fault, method.upper() if method else None, re.compile(path), times, skip, rate, seed
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    @property
    def rules(self) -> list[Rule]:
        """The rules in force, first match first."""
        with self._lock:
            return list(self._rules)

    def remove(self, rule: Rule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        """Remove every rule: requests pass through untouched from now on."""
        with self._lock:
            self._rules.clear()

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request received, in order."""
        with self._lock:
            return [(method, target.split("?", 1)[0]) for method, target in self._seen]

    @property
    def targets(self) -> list[tuple[str, str]]:
        """(method, request target with its query string) of every request, in order."""
        with self._lock:
            return list(self._seen)

    @property
    def exchanges(self) -> list[Exchange]:
        """Every request forwarded and answered in full, with its times (time.monotonic)."""
        with self._lock:
            return list(self._exchanges)

    def count(self, method: str | None = None, path: str = "") -> int:
        """Requests received whose method (None: any) and path (regex, searched) match."""
        pattern = re.compile(path)
        return sum(
            1
            for m, p in self.requests
            if (method is None or m == method.upper()) and pattern.search(p)
        )

    # -- serving ----------------------------------------------------------------------------
    def _accept_loop(self, listener: socket.socket) -> None:
        while self._listening.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                generation = self._generation
                self._sockets.add(client)
            threading.Thread(
                target=self._serve, args=(client, generation), name="faultproxy-conn", daemon=True
            ).start()

    def _alive(self, generation: int) -> bool:
        return not self._stopping.is_set() and generation == self._generation

    def _serve(self, client: socket.socket, generation: int) -> None:
        upstream: socket.socket | None = None
        up_reader: BinaryIO | None = None
        reader = client.makefile("rb")
        try:
            while self._alive(generation):
                request = http_wire.read_request(reader)
                fault = self._claim(request)
                verdict = self._apply_before_forwarding(client, fault, generation)
                if verdict == "answered":
                    continue
                if verdict == "closed":
                    return
                if upstream is None:
                    upstream = self._connect_upstream(generation)
                    up_reader = upstream.makefile("rb")
                assert up_reader is not None
                if not self._forward(request, fault, client, (upstream, up_reader)):
                    return
        except (http_wire.Closed, OSError, ValueError):
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    http_wire.hard_close(sock)
                    with self._lock:
                        self._sockets.discard(sock)
            reader.close()
            if up_reader is not None:
                up_reader.close()

    def _claim(self, request: http_wire.Request) -> Fault | None:
        """Record the request; the fault of the first rule that claims it, if any."""
        with self._lock:
            self._seen.append((request.method, request.target))
            rule = next((r for r in self._rules if r.claims(request.method, request.path)), None)
        return rule.fault if rule is not None else None

    def _apply_before_forwarding(
        self, client: socket.socket, fault: Fault | None, generation: int
    ) -> Literal["answered", "closed", "forward"]:
        """What a fault does before the request goes upstream: answered here (an error),
        the connection finished (stall, reset, the proxy stopping during a latency), or go on
        (a hook is called first)."""
        if fault is None:
            return "forward"
        if fault.kind == "error":
            client.sendall(http_wire.error_response(fault.status, fault.message))
            return "answered"
        if fault.kind == "stall":
            self._stall(client, generation)
            return "closed"
        if fault.kind == "reset" and not fault.after:
            http_wire.reset(client)
            return "closed"
        if fault.kind == "latency" and self._stopping.wait(fault.delay):
            return "closed"
        if fault.action is not None:
            try:
                fault.action()
            except Exception as exc:  # kept for the test; the client sees a cut
                self.errors.append(exc)
                raise http_wire.Closed() from exc
        return "forward"

    def _forward(
        self,
        request: http_wire.Request,
        fault: Fault | None,
        client: socket.socket,
        upstream: tuple[socket.socket, BinaryIO],
    ) -> bool:
        """Send the request upstream and relay the answer (cut short for a drop, lost for a
        reset after); True to keep serving the connection."""
        sock, up_reader = upstream
        sent = time.monotonic()
        sock.sendall(request.head + request.body)
        cut = fault is not None and fault.kind == "drop"
        lost = fault is not None and fault.kind == "reset"
        keep = http_wire.relay_response(
            up_reader, http_wire.Sink() if lost else client, head_only=request.method == "HEAD",
            cut=cut,
        )  # fmt: skip
        with self._lock:
            self._exchanges.append(Exchange(request.method, request.path, sent, time.monotonic()))
        if lost:
            http_wire.reset(client)
            return False
        return keep

    def _connect_upstream(self, generation: int) -> socket.socket:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            if not self._alive(generation):
                upstream.close()
                raise http_wire.Closed()
            self._sockets.add(upstream)
        upstream.connect(self.upstream_path)  # OSError (engine down): the client is cut off
        return upstream

    def _stall(self, client: socket.socket, generation: int) -> None:
        """Hold the request unanswered until the client leaves or the proxy stops."""
        while self._alive(generation):
            readable, _, _ = select.select([client], [], [], STALL_POLL_SECONDS)
            if readable:
                try:
                    if not client.recv(http_wire.IO_CHUNK):
                        return  # the client gave up (its timeout) and closed
                except OSError:
                    return
