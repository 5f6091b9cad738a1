"""On a unix socket nodegc speaks to dockerd over plain HTTP and never loads the Docker SDK
(`docker`, `requests`, `urllib3`: 70 ms of every start), nor the daemon's listener
(`prometheus_client`): a real `report` and a real `once` that removes a container and an image,
each a new process watched by `python -X importtime`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import docker

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import build_image_tar
from tests.engine.helpers import MiB, create_container

SDK = re.compile(r"\|\s+(docker|requests|urllib3|prometheus_client)(\.\S+)?\s*$")
AGGRESSIVE = (
    "--minimum-image-ttl-duration=0s", "--maximum-dead-containers-per-container=0",
    "--image-gc-high-threshold=1", "--image-gc-low-threshold=0",
)  # fmt: skip


def imported_sdk(engine: IsolatedEngine, state: Path, *args: str) -> tuple[int, list[str]]:
    """Run `nodegc ARGS` in a new process: its exit code and the SDK modules it imported."""
    argv = [sys.executable, "-X", "importtime", "-m", "nodegc", *args]
    argv += ["--state-dir", str(state), "--runtime-endpoint", engine.endpoint]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert "import time:" in proc.stderr, proc.stderr  # the watch itself worked
    loaded = [m.group(1) + (m.group(2) or "") for m in map(SDK.search, proc.stderr.splitlines())
              if m]  # fmt: skip
    return proc.returncode, loaded


def test_report_and_once_never_import_the_sdk_on_a_unix_socket(
    engine: IsolatedEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    image = engine.load(build_image_tar(["plain/gone:1"], MiB))
    container = create_container(api, image)
    code, loaded = imported_sdk(engine, tmp_path / "s", "report", *AGGRESSIVE)
    assert (code, loaded) == (0, [])
    code, loaded = imported_sdk(engine, tmp_path / "s", "once", *AGGRESSIVE)
    assert loaded == [] and code in (0, 1)  # 1: a low threshold of 0 % is never reached
    assert container not in {c["Id"] for c in api.containers(all=True)}
    assert image not in {i["Id"] for i in api.images(all=True)}


def test_a_tcp_endpoint_still_goes_through_the_sdk(tmp_path: Path) -> None:
    """The other side of the same switch (no engine needed: the SDK is loaded to connect, and
    the connection is refused): a tcp endpoint is the SDK's, and says so when unreachable."""
    argv = [sys.executable, "-X", "importtime", "-m", "nodegc", "report", "--state-dir",
            str(tmp_path / "s"), "--runtime-endpoint", "tcp://127.0.0.1:9",
            "--runtime-request-timeout=2s"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert any(SDK.search(line) for line in proc.stderr.splitlines())
    assert "unreachable" in proc.stderr
