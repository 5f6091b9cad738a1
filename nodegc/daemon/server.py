"""The daemon's one HTTP listener: /metrics, /healthz, /readyz and /status, read-only.

Built on the standard library's ThreadingHTTPServer in a daemon thread. Only GET and HEAD are
served (anything else is 405): nothing about the collector can be changed over HTTP. Only
loopback names, IP literals and `metrics.allowed_hosts` are answered in `Host` (anything else
is 421: DNS rebinding, `daemon/hosts.py`). Requests are logged at debug level through `logging`,
never as an access log on stderr.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from nodegc import __version__
from nodegc.daemon.hosts import WILDCARD_HOSTS, host_allowed, normalise, split_address, url_host

log = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
ALLOWED = "GET, HEAD"
# A client that opens a connection and sends nothing holds a thread at most this long.
REQUEST_TIMEOUT_SECONDS = 10.0


class StatusServer:
    """Serves the registry and the daemon's health, readiness and status on `address`.

    `healthy()` answers /healthz (is the process working at all), `ready()` answers /readyz with
    (ready, reason), and `status()` is the JSON document of /status. Each is called per request,
    from a server thread. `stop()` returns within `poll_interval` seconds.
    """

    def __init__(
        self,
        address: str,
        registry: CollectorRegistry,
        *,
        healthy: Callable[[], bool],
        ready: Callable[[], tuple[bool, str]],
        status: Callable[[], Mapping[str, Any]],
        poll_interval: float = 0.5,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        self.address = address
        self.poll_interval = poll_interval
        self.host, self.requested_port = split_address(address)
        # Names answered in `Host` besides loopback and IP literals: the configured ones and the
        # name the listener was given (an IP literal or a wildcard adds nothing).
        self.allowed_hosts = normalise([*allowed_hosts, self.host])
        self.registry = registry
        self.healthy = healthy
        self.ready = ready
        self.status = status
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises OSError naming the address on failure."""
        if self._server is not None:
            raise RuntimeError(f"status server on {self.address} is already started")
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(
                self.host or None,
                self.requested_port,
                type=socket.SOCK_STREAM,
                flags=socket.AI_PASSIVE,
            )[0]
            server = _Server(sockaddr, self, family)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            message = f"cannot listen on {self.address}: {reason}"
            if exc.errno is None:
                raise OSError(message) from exc
            raise OSError(exc.errno, message) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            name=f"nodegc-http-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info("serving /metrics, /healthz, /readyz and /status", extra={"address": self.url})
        if self.host in WILDCARD_HOSTS:
            log.warning(
                "listening on all interfaces: anyone who can reach this node on port "
                f"{self.port} can read /metrics and /status; set metrics.address to "
                "127.0.0.1:PORT unless a probe or a scraper from elsewhere needs it",
                extra={"address": self.url},
            )

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice or before start."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        """The bound port (the one chosen by the kernel when the address asked for port 0)."""
        if self._server is None:
            raise RuntimeError(f"status server on {self.address} is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """http://host:port of the running server (a wildcard host as given)."""
        return f"http://{url_host(self.host)}:{self.port}"

    # -- routes: each returns (status code, body, content type) -----------------------------
    def route(self, path: str) -> tuple[int, bytes, str]:
        if path == "/metrics":
            return 200, generate_latest(self.registry), CONTENT_TYPE_LATEST
        if path == "/healthz":
            if self.healthy():
                return 200, b"ok\n", TEXT
            return 503, b"unhealthy\n", TEXT
        if path == "/readyz":
            ok, reason = self.ready()
            text = reason or ("ok" if ok else "not ready")
            return (200 if ok else 503), (text + "\n").encode(), TEXT
        if path == "/status":
            body = json.dumps(self.status(), indent=2, default=str) + "\n"
            return 200, body.encode(), JSON
        return 404, b"not found: try /metrics, /healthz, /readyz or /status\n", TEXT


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sockaddr: tuple[Any, ...], owner: StatusServer, family: int) -> None:
        self.address_family = family
        self.owner = owner
        super().__init__(sockaddr, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a reverse DNS lookup that can hang);
        # nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-response is not news; never print a traceback to stderr.
        log.debug("HTTP request failed", exc_info=True, extra={"client": str(client_address)})


class _Handler(BaseHTTPRequestHandler):
    server_version = f"nodegc/{__version__}"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_SECONDS

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler answers an unknown method with 501; every method but GET and
        # HEAD is 405 here instead, with the Allow header.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self.close_connection = True  # the request body, if any, is never read
        body = f"method {self.command} not allowed: nodegc serves {ALLOWED} only\n".encode()
        self._send(405, body, TEXT, head=False, extra={"Allow": ALLOWED})

    def _answer(self, *, head: bool) -> None:
        owner = cast(_Server, self.server).owner
        host = self.headers.get("Host")
        if not host_allowed(host, owner.allowed_hosts):
            self._misdirected(host or "", head=head)
            return
        try:
            code, body, content_type = owner.route(urlsplit(self.path).path)
        except Exception:
            log.warning("HTTP handler failed", exc_info=True, extra={"path": self.path})
            code, body, content_type = 500, b"internal error\n", TEXT
        self._send(code, body, content_type, head=head)

    def _misdirected(self, host: str, *, head: bool) -> None:
        """421 for a `Host` nodegc does not answer (a rebound name, say), logged once a request."""
        shown = host.encode("ascii", "backslashreplace").decode()[:200]
        log.warning(
            "HTTP request refused: Host is not loopback, an IP address or metrics.allowed_hosts",
            extra={"host": shown, "client": self.address_string(), "path": self.path[:200]},
        )
        body = (
            f"421 misdirected request: nodegc answers Host names that are loopback, IP "
            f"addresses or listed in metrics.allowed_hosts, not {shown!r}\n"
        ).encode()
        self.close_connection = True
        self._send(421, body, TEXT, head=head)

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str,
        *,
        head: bool,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("HTTP " + format, *args, extra={"client": self.address_string()})
