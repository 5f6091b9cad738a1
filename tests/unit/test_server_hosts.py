"""The listener answers only loopback names, IP literals and configured names in `Host` (DNS
rebinding), and says so when it listens on every interface. Real HTTP on 127.0.0.1:0."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from nodegc.daemon.hosts import host_allowed, normalise
from nodegc.daemon.server import StatusServer


def make(address: str = "127.0.0.1:0", allowed: tuple[str, ...] = ()) -> StatusServer:
    return StatusServer(address, CollectorRegistry(), healthy=lambda: True,
                        ready=lambda: (True, "ok"), status=lambda: {"node": "n"},
                        poll_interval=0.01, allowed_hosts=allowed)  # fmt: skip


@pytest.fixture
def server() -> Iterator[StatusServer]:
    srv = make(allowed=("nodegc.kube-system.svc",))
    srv.start()
    yield srv
    srv.stop()


def get(port: int, host: str | None, path: str = "/status") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest("GET", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "10.0.3.7:{port}",
     "nodegc.kube-system.svc:{port}", "nodegc.kube-system.svc.", None],
)  # fmt: skip
def test_loopback_ip_literals_and_configured_names_are_answered(
    server: StatusServer, host: str | None
) -> None:
    code, body = get(server.port, host.format(port=server.port) if host else None)
    assert code == 200 and b'"node"' in body


@pytest.mark.parametrize(
    "host",
    ["attacker.example:{port}", "attacker.example", "127.0.0.1.nip.io:{port}", "localhost.evil",
     "", "evil\x1b[2J"],
)  # fmt: skip
@pytest.mark.parametrize("path", ["/status", "/metrics", "/healthz"])
def test_any_other_host_is_421_and_nothing_is_read(
    server: StatusServer, host: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A rebound name gets 421 on every path, never the document."""
    with caplog.at_level(logging.WARNING, "nodegc.daemon.server"):
        code, body = get(server.port, host.format(port=server.port), path)
    assert code == 421, body
    assert b'"node"' not in body and b"nodegc_" not in body
    assert any("Host" in r.getMessage() for r in caplog.records)


names = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z0-9-]{1,10}){0,3}\.?", fullmatch=True)


@given(name=names, port=st.none() | st.integers(1, 65535))
def test_a_dns_name_is_answered_only_if_loopback_or_configured(name: str, port: int | None) -> None:
    """Every name an attacker could rebind is refused unless it is a loopback name or listed."""
    allowed = normalise(["svc.example"])
    header = name if port is None else f"{name}:{port}"
    known = {"localhost", "localhost.localdomain", "ip6-localhost", "svc.example"}
    assert host_allowed(header, allowed) == (name.rstrip(".") in known)


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0"])
def test_listening_on_every_interface_is_a_warning_naming_the_address(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    srv = make(address)
    with caplog.at_level(logging.WARNING, "nodegc.daemon.server"):
        srv.start()
        try:
            warned = [r for r in caplog.records if "all interfaces" in r.getMessage()]
            assert warned and str(srv.port) in warned[0].__dict__["address"]
        finally:
            srv.stop()


def test_loopback_listening_is_not_warned(caplog: pytest.LogCaptureFixture) -> None:
    srv = make()
    with caplog.at_level(logging.WARNING, "nodegc.daemon.server"):
        srv.start()
        srv.stop()
    assert not [r for r in caplog.records if "all interfaces" in r.getMessage()]
