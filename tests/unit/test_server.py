"""nodegc.server: the read-only HTTP listener on 127.0.0.1:0."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from nodegc.daemon.hosts import split_address
from nodegc.daemon.server import StatusServer


class Probe:
    """The daemon side of the server: what healthy/ready/status answer, switchable per test."""

    def __init__(self) -> None:
        self.is_healthy = True
        self.readiness: tuple[bool, str] = (True, "ok")
        self.document: dict[str, Any] = {"conditions": [], "node": "node-a"}
        self.fail = False

    def healthy(self) -> bool:
        return self.is_healthy

    def ready(self) -> tuple[bool, str]:
        return self.readiness

    def status(self) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("boom")
        return self.document


def make(registry: CollectorRegistry, probe: Probe, address: str = "127.0.0.1:0") -> StatusServer:
    return StatusServer(
        address,
        registry,
        healthy=probe.healthy,
        ready=probe.ready,
        status=probe.status,
        poll_interval=0.01,  # stop() returns within this
    )


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("nodegc_test_events", "A test counter.", registry=registry).inc(3)
    return registry


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def server(registry: CollectorRegistry, probe: Probe) -> Iterator[StatusServer]:
    srv = make(registry, probe)
    srv.start()
    yield srv
    srv.stop()


def request(
    server: StatusServer, path: str, method: str = "GET", body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_metrics_serves_the_registry(server: StatusServer) -> None:
    """/metrics is the registry's text exposition with Prometheus's content type."""
    code, headers, body = request(server, "/metrics")
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert (code, headers["content-type"]) == (200, CONTENT_TYPE_LATEST)
    assert "nodegc_test_events" in families


def test_query_string_is_ignored(server: StatusServer) -> None:
    """A query string does not change the route."""
    assert request(server, "/metrics?debug=1")[0] == 200


def test_healthz_ok_when_healthy(server: StatusServer) -> None:
    """/healthz answers 200 "ok" while healthy() is true."""
    code, _, body = request(server, "/healthz")
    assert (code, body) == (200, b"ok\n")


def test_healthz_503_when_unhealthy(server: StatusServer, probe: Probe) -> None:
    """/healthz answers 503 when healthy() is false."""
    probe.is_healthy = False
    assert request(server, "/healthz")[0] == 503


def test_readyz_200_when_ready(server: StatusServer, probe: Probe) -> None:
    """/readyz answers 200 with the reason text when ready."""
    probe.readiness = (True, "runtime reachable")
    code, _, body = request(server, "/readyz")
    assert (code, body) == (200, b"runtime reachable\n")


def test_readyz_503_with_the_reason(server: StatusServer, probe: Probe) -> None:
    """/readyz answers 503 carrying the reason when not ready."""
    probe.readiness = (False, "runtime unreachable: connection refused")
    code, _, body = request(server, "/readyz")
    assert (code, body) == (503, b"runtime unreachable: connection refused\n")


def test_status_is_json(server: StatusServer, probe: Probe) -> None:
    """/status serves status() as application/json."""
    code, headers, body = request(server, "/status")
    assert (code, headers["content-type"]) == (200, "application/json")
    assert json.loads(body) == probe.document


def test_unknown_path_is_404(server: StatusServer) -> None:
    """Any other path is 404."""
    assert request(server, "/")[0] == 404


def test_head_sends_headers_without_a_body(server: StatusServer) -> None:
    """HEAD answers like GET with Content-Length, but no body."""
    code, headers, body = request(server, "/metrics", method="HEAD")
    assert (code, body) == (200, b"")
    assert int(headers["content-length"]) > 0


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"])
def test_other_methods_are_405(server: StatusServer, method: str) -> None:
    """Every method but GET and HEAD is refused with 405 and an Allow header."""
    code, headers, _ = request(server, "/metrics", method=method, body=b"x=1")
    assert (code, headers["allow"]) == (405, "GET, HEAD")


def test_a_failing_callback_is_a_500_and_the_server_goes_on(
    server: StatusServer, probe: Probe
) -> None:
    """An exception in status() answers 500; the next request is served normally."""
    probe.fail = True
    assert request(server, "/status")[0] == 500
    assert request(server, "/healthz")[0] == 200


def test_requests_write_nothing_to_stderr(
    server: StatusServer, probe: Probe, capfd: pytest.CaptureFixture[str]
) -> None:
    """No access log (nor traceback) reaches stderr."""
    probe.fail = True
    for path in ("/metrics", "/nope", "/status"):
        request(server, path)
    request(server, "/metrics", method="POST")
    assert capfd.readouterr().err == ""


def test_port_zero_binds_a_real_port(server: StatusServer) -> None:
    """Address 127.0.0.1:0 lets the kernel choose; `port` and `url` report it."""
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_bind_failure_names_the_address(registry: CollectorRegistry, probe: Probe) -> None:
    """A port already in use raises OSError whose message names the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        srv = make(registry, probe, address)
        with pytest.raises(OSError, match=f"cannot listen on {address}"):
            srv.start()


def test_stop_closes_the_port(registry: CollectorRegistry, probe: Probe) -> None:
    """After stop() nothing listens on the port any more."""
    srv = make(registry, probe)
    srv.start()
    port = srv.port
    srv.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_stop_twice_is_harmless(registry: CollectorRegistry, probe: Probe) -> None:
    """stop() may be called again without error, and the port stays closed."""
    srv = make(registry, probe)
    srv.start()
    port = srv.port
    srv.stop()
    srv.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_port_before_start_is_an_error(registry: CollectorRegistry, probe: Probe) -> None:
    """Asking for the port of a server not started raises RuntimeError."""
    srv = make(registry, probe)
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.port


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:9797", ("127.0.0.1", 9797)), ("[::1]:80", ("::1", 80)), (":9797", ("", 9797))],
)
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    """host:port splits into host (IPv6 brackets removed) and port."""
    assert split_address(address) == expected


def test_split_address_rejects_a_missing_port() -> None:
    """An address without a numeric port is a ValueError naming it."""
    with pytest.raises(ValueError, match="localhost"):
        split_address("localhost")
