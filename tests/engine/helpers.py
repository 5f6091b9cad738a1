"""Small helpers for the real-engine tests: run the CLI, read the engine's inventory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker

from nodegc.testing.engine import IsolatedEngine

MiB = 1024 * 1024


def nodegc(
    engine: IsolatedEngine | None,
    state: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    endpoint: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `nodegc ARGS` as a user would (a new process), against `engine` and `state`."""
    argv = [sys.executable, "-m", "nodegc", *args, "--state-dir", str(state)]
    if endpoint or engine is not None:
        argv += ["--runtime-endpoint", endpoint or engine.endpoint]  # type: ignore[union-attr]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
    full_env.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=timeout)


def nodegc_json(
    engine: IsolatedEngine, state: Path, *args: str, env: Mapping[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    proc = nodegc(engine, state, *args, "--output", "json", env=env)
    assert proc.stdout, f"no output; stderr:\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def inventory(api: docker.APIClient) -> dict[str, Any]:
    """Everything a removal could change: image ids with their tags, containers with states."""
    images = {i["Id"]: sorted(i.get("RepoTags") or []) for i in api.images(all=True)}
    containers = {c["Id"]: c["State"] for c in api.containers(all=True)}
    return {"images": images, "containers": containers}


def create_container(
    api: docker.APIClient,
    image: str,
    *,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """A container in state `created` (never started: needs no binary in the image)."""
    created = api.create_container(
        image,
        command=["/nothing"],
        name=name,
        labels=dict(labels or {}),
        host_config=api.create_host_config(network_mode="none"),
    )
    return str(created["Id"])


def decisions(report: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in report[kind]["decisions"]}


def removed_ids(report: dict[str, Any], kind: str) -> set[str]:
    return {d["id"] for d in report[kind]["decisions"] if d["action"] == "remove"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(interval)


class Daemon:
    """`nodegc run` as a subprocess with its own state directory and HTTP port."""

    def __init__(self, engine: IsolatedEngine, state: Path, config: str = "", *args: str) -> None:
        self.engine, self.state, self.port = engine, state, free_port()
        self.config = state.parent / f"{state.name}.toml"
        self.config.write_text(config)
        self.log = state.parent / f"{state.name}.log"
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Daemon:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
        env["NODEGC_METRICS__ADDRESS"] = f"127.0.0.1:{self.port}"
        argv = [
            sys.executable, "-m", "nodegc", "run", "--config", str(self.config),
            "--state-dir", str(self.state), "--runtime-endpoint", self.engine.endpoint,
            "--log-format", "json", *self.args,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float = 120) -> None:
        wait_for(lambda: self.get("/readyz")[0] == 200 or self._died(), timeout)
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def condition(self, type_: str) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        return next(c for c in json.loads(body)["conditions"] if c["type"] == type_)

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"msg": line})
        return out

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
