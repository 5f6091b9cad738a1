"""The transport to a Docker-API engine: plain kept-alive HTTP on a unix socket, the SDK's
client (tuned for a unix socket) elsewhere and for the few requests the plain path does not make
(the event stream), the SDK's exceptions turned into the runtime interface's, and the retries an
idempotent read gets (`runtime.retry`).

The SDK (`docker`, with `requests` and `urllib3`) is imported only when a request needs it: on a
unix socket a `report` or a `once` never does, and its import was 70 ms of every start (a fifth
of a warm `report`'s imports on a big node, an eighth of Podman's whole prune time at 100
containers)."""

from __future__ import annotations

import http.client
import json
import logging
import re
import select
import socket
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from nodegc.runtime import RuntimeError_, RuntimeUnavailable
from nodegc.runtime.docker.decoding import loads
from nodegc.runtime.docker.errors import engine_error, explanation
from nodegc.runtime.docker.podman import is_podman
from nodegc.runtime.retry import TransportStats, retried

if TYPE_CHECKING:
    import docker

log = logging.getLogger("nodegc.runtime.docker")

T = TypeVar("T")
INSPECT_POOL = 8
# Connections kept to the engine: enough for the widest removal pool (runtime settings allow 64)
# plus the inspect pool, so none is ever opened and thrown away for want of room.
CONNECTIONS = 64 + INSPECT_POOL


class EngineClient:
    """The requests of a Docker-API engine (Docker or Podman's compatible service): the SDK's
    client and, on a unix socket, the plain path; counted, retried when idempotent."""

    def __init__(self, endpoint: str, timeout: timedelta) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._client: docker.APIClient | None = None
        self.requests = 0  # engine requests made (retries included), for benchmarks and tests
        self.transport = TransportStats()  # connection faults: a flaky engine or a lost one
        # Per-object requests on a unix socket skip the SDK's HTTP stack (see PlainHTTP).
        self._plain = (
            PlainHTTP(endpoint.removeprefix("unix://"), self.timeout.total_seconds())
            if endpoint.startswith("unix://")
            else None
        )
        self._podman: bool | None = None  # learnt on connecting (/_ping) or from /version
        self._libpod_version = ""  # Podman's version, from its /_ping (Libpod-Api-Version)
        self._connecting = threading.Lock()  # one connection made, whichever thread asks first
        self._pinged: str | None = None  # the API version `/_ping` said ("auto": it did not)

    @property
    def podman(self) -> bool:
        """Whether the engine is Podman's Docker-compatible service: from the first `/_ping` on a
        unix socket, else asked once (`/version`)."""
        self.connect()
        if self._podman is None:
            version = self._call("version", lambda: self.api.version(), read=True)
            self._podman = is_podman(version)
            if self._podman:
                log.info("the engine is Podman", extra={"endpoint": self.endpoint})
        return self._podman

    @property
    def api_version(self) -> str:
        """The API version the requests speak (the prefix of their paths): the engine's own from
        its `/_ping` on a unix socket, else the SDK's (which asks `/version`)."""
        self.connect()
        if self._pinged is not None and self._pinged != "auto":
            return self._pinged
        return str(self.api.api_version)

    # -- plumbing ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Connect once, whichever thread asks first: on a unix socket one `/_ping` (the API
        version and the engine's kind) and no SDK; elsewhere the SDK's client."""
        if self._plain is None:
            self.api  # noqa: B018  (the SDK's client connects)
            return
        if self._pinged is None:
            with self._connecting:
                if self._pinged is None:
                    self._pinged = self._ping_version()

    @property
    def api(self) -> docker.APIClient:
        """The SDK's client, made (and the SDK imported) the first time a request needs it."""
        if self._client is None:
            with self._connecting:
                return self._connect()
        return self._client

    def _connect(self) -> docker.APIClient:
        if self._client is None:
            # On a unix socket the API version and the engine's kind come from one `/_ping` (its
            # Api-Version and Libpod-Api-Version headers) instead of the SDK's `/version`, which
            # Podman answers in seconds (it runs conmon and the OCI runtime to print their
            # versions: 2.4 s here with the machine busy, against 0.02 s for dockerd).
            if self._plain is not None and self._pinged is None:
                self._pinged = self._ping_version()
            version = self._pinged or "auto"
            import docker  # here, not at the top: see the module's docstring

            with self._errors("connect"):
                self._client = docker.APIClient(
                    base_url=self.endpoint,
                    timeout=max(1, int(self.timeout.total_seconds())),
                    version=version,
                    max_pool_size=CONNECTIONS,
                )
                tune_unix_socket_client(self._client)
                self.requests += 1 if version == "auto" else 0
        return self._client

    def _ping_version(self) -> str:
        """The engine's API version from `GET /_ping` on the plain path ("auto" when it does not
        say); learns whether it is Podman on the way."""
        plain = self._plain
        assert plain is not None
        try:
            status, headers = self._read(lambda: plain.head_of("GET", "/_ping"))
        except (OSError, http.client.HTTPException) as exc:
            raise self._unavailable("connect", exc) from None
        if status >= 400:
            raise RuntimeUnavailable(f"connect: engine at {self.endpoint} answered {status}")
        self._podman = "libpod-api-version" in headers
        self._libpod_version = headers.get("libpod-api-version", "")
        if self._podman:
            log.info("the engine is Podman", extra={"endpoint": self.endpoint})
        version = headers.get("api-version", "")
        return version if re.fullmatch(r"\d+\.\d+", version) else "auto"

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Translate the SDK's exceptions into the runtime interface's."""
        try:
            yield
        except Exception as exc:
            translated = self._translated(what, exc)
            if translated is None:
                raise
            raise translated from None

    def _translated(self, what: str, exc: Exception) -> RuntimeError_ | None:
        """The runtime interface's error for one of the SDK's exceptions; None for any other
        (the SDK not imported yet: none of its exceptions can have been raised)."""
        if "docker.errors" not in sys.modules:
            return None
        import docker.errors
        import requests.exceptions

        if isinstance(exc, docker.errors.APIError):
            return engine_error(what, exc.status_code or 0, explanation(exc))
        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return self._unavailable(what, exc)
        if isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException)):
            return RuntimeUnavailable(f"{what}: engine at {self.endpoint}: {exc}")
        return None

    def _call(self, what: str, fn: Callable[[], T], *, read: bool = False) -> T:
        """`fn()` (one request through the SDK); a `read` (idempotent) is retried briefly when
        its connection fails (`runtime.retry`), never a change."""
        with self._errors(what):
            return self._read(fn) if read else self._counted(fn)

    def _counted(self, fn: Callable[[], T]) -> T:
        self.requests += 1
        return fn()

    def _read(self, fn: Callable[[], T]) -> T:
        return retried(lambda: self._counted(fn), self.transport)

    def _unavailable(self, what: str, exc: BaseException) -> RuntimeUnavailable:
        """The engine did not answer `what` (after the retries a read gets): the message says
        whether its other requests answered (a flaky engine) or not (a lost one)."""
        cause = root_cause(exc)
        stats = self.transport
        if stats.flaky:
            error = RuntimeUnavailable(
                f"{what}: engine at {self.endpoint} flaky, this request failed: {cause} "
                f"({stats.describe(self.requests)})"
            )
            error.flaky = True
            return error
        return RuntimeUnavailable(
            f"{what}: engine at {self.endpoint} unreachable or too slow: {cause}"
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._plain is not None:
            self._plain.close()

    def _inspect(self, what: str, path: str, sdk: Callable[[], Any]) -> Any:
        """GET `path` (an inspect), through the plain path on a unix socket, else the SDK."""
        data = self._inspect_any(what, path, sdk)
        if not isinstance(data, dict):
            raise RuntimeError_(f"{what}: engine answered no object")
        return data

    def _inspect_any(self, what: str, path: str, sdk: Callable[[], Any]) -> Any:
        if self._plain is None:
            return self._call(what, sdk, read=True)
        return self._plain_json(what, "GET", path)

    def _map(self, fn: Callable[[str], T], items: Sequence[str]) -> list[T]:
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(INSPECT_POOL, len(items))) as pool:
            return list(pool.map(fn, items))

    def _get_json(
        self,
        what: str,
        plain_path: str,
        sdk_path: str,
        params: dict[str, Any],
        decode: Callable[[bytes], Any] = loads,
    ) -> Any:
        if self._plain is not None:
            return self._plain_json(what, "GET", plain_path, decode)
        return self._call(
            what,
            lambda: self.api._result(self.api._get(self.api._url(sdk_path), params=params), True),
            read=True,
        )

    def _plain_request(self, what: str, method: str, path: str) -> bytes:
        """`method` `path` of the engine's API (the SDK's version prefix added) on the unix
        socket; the answer's body, or the errors the SDK's calls raise through `_errors`."""
        plain = self._plain
        assert plain is not None
        target = f"/v{self.api_version}{path}"
        try:
            if method == "GET":  # a read: asked again when its connection fails
                status, body = self._read(lambda: plain(method, target))
            else:  # a change: never sent twice (its answer lost, it may have been carried out)
                status, body = self._counted(lambda: plain(method, target))
        except (OSError, http.client.HTTPException) as exc:
            raise self._unavailable(what, exc) from None
        if status < 400:
            return body
        raise engine_error(what, status, message(body) or f"HTTP {status}")

    def _plain_json(
        self, what: str, method: str, path: str, decode: Callable[[bytes], Any] = loads
    ) -> Any:
        body = self._plain_request(what, method, path)
        try:
            return decode(body) if body.strip() else None
        except ValueError:
            raise RuntimeError_(f"{what}: engine answered malformed JSON") from None


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class PlainHTTP:
    """Requests on the engine's unix socket over plain, kept-alive http.client connections.

    Used for the per-object requests (inspects, removals), which are most of a busy cycle's.
    Through the SDK (requests, urllib3) each cost about 0.8 ms of client CPU with a few in flight,
    here about 0.25 ms: on a small node that CPU is taken from the engine, which needs it for the
    removals themselves. The requests (method, path, query) and the handling of the answers are
    the SDK's.
    """

    def __init__(self, socket_path: str, timeout: float) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._idle: list[UnixConnection] = []
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str) -> tuple[int, bytes]:
        status, _, body = self.exchange(method, path)
        return status, body

    def head_of(self, method: str, path: str) -> tuple[int, dict[str, str]]:
        """`method` `path`: the answer's status and headers (names lowercased)."""
        status, headers, _ = self.exchange(method, path)
        return status, headers

    def exchange(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        """`method` `path`: the answer's status, headers (names lowercased) and body."""
        conn = self._take()
        try:
            conn.request(method, path)
            response = conn.getresponse()
            body = response.read()
        except BaseException:
            conn.close()
            raise
        headers = {name.lower(): value for name, value in response.getheaders()}
        if response.will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)
        return response.status, headers, body

    def _take(self) -> UnixConnection:
        """An idle connection the engine has not closed meanwhile, else a new one."""
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.sock is not None and not readable(conn.sock):
                    return conn
                conn.close()  # closed by the engine (EOF waiting) or out of step: not reusable
        return UnixConnection(self.socket_path, self.timeout)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def quote(name: str) -> str:
    """A name in an API path, quoted as the SDK quotes it."""
    return urllib.parse.quote(name, safe="/:")


def message(body: bytes) -> str:
    """The engine's error message: the JSON `message`, else the text (as the SDK reads it)."""
    try:
        return str(json.loads(body)["message"]).strip()
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace").strip()


def tune_unix_socket_client(client: docker.APIClient) -> None:
    """Reuse connections to a unix socket across objects, and skip what only a network needs.

    The SDK's unix-socket adapter keys its connection pools by the whole URL, path included, and
    keeps 25: every request about another object (each inspect, each removal) made a new pool and
    a new connection, and closed the oldest pool's. Keyed by the socket, connections are kept
    alive and reused. And `requests` looked up ~/.netrc and the proxy variables on every request,
    which a unix socket never uses. The requests and their answers are the same; the client's
    CPU per request is about halved.
    """
    from docker.transport import UnixHTTPAdapter

    adapter = getattr(client, "_custom_adapter", None)
    if not isinstance(adapter, UnixHTTPAdapter):
        return
    get_connection = adapter.get_connection
    base_url = client.base_url

    def one_pool(url: str, proxies: Any = None) -> Any:
        return get_connection(base_url, proxies)

    adapter.get_connection = one_pool  # type: ignore[method-assign]
    client.trust_env = False


def root_cause(exc: BaseException) -> str:
    for _ in range(10):
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return str(exc) or type(exc).__name__
