"""Security properties: private state, a read-only loopback listener, no shell-outs."""

from __future__ import annotations

import ast
import http.client
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from nodegc.config import load_settings
from nodegc.testing.engine import IsolatedEngine
from tests.engine.helpers import Daemon, wait_for
from tests.reliability.scene import POD

ROOT = Path(__file__).resolve().parents[2]
FAST = """
[containers]
gc_period = "1s"
[images]
gc_period = "1h"
pressure_check_period = "0s"
"""
STATE_FILES = ("history.json", "finish-times.json", "audit.jsonl", "nodegc.state.lock")
DEFAULT_PORT = 9797


def test_state_files_are_0600_in_a_0700_directory_even_with_umask_0(
    engine: IsolatedEngine, busybox: str, daemons: list[Daemon], tmp_path: Path
) -> None:
    """history, finish times, audit record and lock: private whatever the umask."""
    engine.create_dead_containers(busybox, 2, lambda i: POD, workers=1)  # one goes: audited
    state = tmp_path / "fresh" / "state"  # nodegc creates it
    state.parent.mkdir()
    old = os.umask(0)
    try:
        daemon = Daemon(engine, state, FAST).start()
    finally:
        os.umask(old)
    daemons.append(daemon)
    wait_for(lambda: all((state / name).exists() for name in STATE_FILES), timeout=120)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    modes = {name: stat.S_IMODE((state / name).stat().st_mode) for name in STATE_FILES}
    assert modes == dict.fromkeys(STATE_FILES, 0o600)


def test_listener_is_loopback_only_by_default() -> None:
    """The default metrics.address is a loopback address."""
    host = load_settings(None, {}, environ={}).metrics.address.rpartition(":")[0]
    assert host in ("127.0.0.1", "[::1]", "localhost")


def test_daemon_with_default_settings_listens_on_loopback_only(
    engine: IsolatedEngine, daemons: list[Daemon], tmp_path: Path
) -> None:
    """`nodegc run` with no address given binds 127.0.0.1 and nothing else."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", DEFAULT_PORT)) == 0:
            pytest.skip(f"port {DEFAULT_PORT} is taken on this machine")
    daemon = Daemon(engine, tmp_path / "s", FAST)
    daemon.port = DEFAULT_PORT
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
    argv = [
        sys.executable, "-m", "nodegc", "run", "--config", str(daemon.config),
        "--state-dir", str(daemon.state), "--runtime-endpoint", engine.endpoint,
    ]  # fmt: skip
    with daemon.log.open("ab") as log:
        daemon.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
    daemons.append(daemon)
    assert daemon.proc is not None
    daemon.wait_ready()
    listening = [
        c.laddr
        for c in psutil.Process(daemon.proc.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_listener_refuses_methods_that_could_mutate(
    engine: IsolatedEngine, daemons: list[Daemon], tmp_path: Path, method: str
) -> None:
    """Every path answers 405 to a mutating method, and the daemon is unchanged after."""
    daemon = Daemon(engine, tmp_path / "s", FAST).start()
    daemons.append(daemon)
    daemon.wait_ready()
    for path in ("/metrics", "/status", "/readyz", "/healthz", "/config", "/"):
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=5)
        try:
            conn.request(method, path, body=b'{"images": {"high_threshold_percent": 1}}')
            response = conn.getresponse()
            assert response.status == 405, (method, path)
            assert response.getheader("Allow") == "GET, HEAD"
        finally:
            conn.close()
    assert daemon.get("/readyz")[0] == 200
    assert daemon.proc is not None and daemon.proc.poll() is None


def _shell_outs(path: Path) -> list[str]:
    """Process-spawning constructs in one source file: imports and calls, with line numbers."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    spawning_modules = {"subprocess", "pty", "multiprocessing"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for name in [*names, module or ""]:
                if name.split(".")[0] in spawning_modules:
                    found.append(f"{path}:{node.lineno}: imports {name}")
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            if func.startswith(("os.system", "os.popen", "os.exec", "os.spawn", "os.posix_spawn")):
                found.append(f"{path}:{node.lineno}: calls {func}")
            if "create_subprocess" in func:
                found.append(f"{path}:{node.lineno}: calls {func}")
            for kw in node.keywords:
                if kw.arg == "shell" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    found.append(f"{path}:{node.lineno}: shell={ast.unparse(kw.value)}")
    return found


def test_nodegc_spawns_no_process_outside_its_test_harness() -> None:
    """No subprocess, os.system, os.exec*, shell=True in nodegc/ (nodegc/testing excepted)."""
    sources = [
        p for p in (ROOT / "nodegc").rglob("*.py") if "testing" not in p.relative_to(ROOT).parts
    ]
    assert len(sources) > 20  # the scan really looked at the package
    found = [hit for path in sources for hit in _shell_outs(path)]
    assert found == []


def test_shell_out_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    """The scan is not blind: it reports each construct planted in a file."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import subprocess\nimport os\nfrom pty import spawn\n"
        "os.system('x')\nsubprocess.run('x', shell=True)\nos.execvp('x', ['x'])\n"
    )
    assert len(_shell_outs(planted)) == 5
