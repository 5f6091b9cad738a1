"""The daemon's listener against DNS rebinding (issue 20, item 6): `nodegc run` on a real dockerd
answers /status, /metrics and /healthz only for loopback names, IP literals and
metrics.allowed_hosts in `Host` (real HTTP requests with a forged Host get 421 and nothing of
the node), and says so in its log when it listens on every interface."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodegc.testing.engine import IsolatedEngine
from tests.engine.helpers import Daemon, free_port, wait_for


def get(port: int, path: str, host: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_forged_host_headers_get_421_and_known_ones_the_answer(
    engine: IsolatedEngine, daemons: list[Daemon], tmp_path: Path
) -> None:
    state = tmp_path / "s"
    daemon = Daemon(engine, state, '[metrics]\nallowed_hosts = ["nodegc.kube-system.svc"]\n')
    daemons.append(daemon.start())
    daemon.wait_ready()
    port = daemon.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "10.244.1.7:9797",
                 f"nodegc.kube-system.svc:{port}"):  # fmt: skip
        code, body = get(port, "/status", host)
        assert code == 200 and json.loads(body)["conditions"], (host, code)
    for host in (f"rebind.attacker.example:{port}", "127.0.0.1.nip.io", "localhost.attacker"):
        for path in ("/status", "/metrics", "/healthz", "/readyz"):
            code, body = get(port, path, host)
            assert code == 421, (host, path, code)
            assert b"conditions" not in body and b"nodegc_" not in body
    refusals = [r for r in daemon.logs() if "Host" in r.get("msg", "")]
    assert any("rebind.attacker.example" in str(r.get("host")) for r in refusals), refusals


@pytest.mark.parametrize("address", ["0.0.0.0", "[::]"])
def test_listening_on_every_interface_is_a_warning_naming_the_address(
    engine: IsolatedEngine, tmp_path: Path, address: str
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
    env["NODEGC_METRICS__ADDRESS"] = f"{address}:{port}"
    log = tmp_path / "run.log"
    argv = [sys.executable, "-m", "nodegc", "run", "--state-dir", str(tmp_path / "s"),
            "--runtime-endpoint", engine.endpoint, "--log-format", "json"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env)
    try:
        warned = wait_for(
            lambda: [json.loads(line) for line in log.read_text().splitlines()
                     if "all interfaces" in line] or proc.poll() is not None,
            timeout=30,
        )  # fmt: skip
        assert proc.poll() is None, log.read_text()
        assert warned[0]["level"] == "warning" and f":{port}" in warned[0]["address"], warned
        code, _ = get(port, "/healthz", f"127.0.0.1:{port}")
        assert code == 200
    finally:
        proc.kill()
        proc.wait(10)
