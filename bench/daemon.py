"""`nodegc run` as a subprocess for the footprint and relief benchmarks."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import clean_env, nodegc_argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """`nodegc run` against `endpoint` with its own state dir, config file, port and log."""

    def __init__(self, endpoint: str, scratch: Path, config: str = "") -> None:
        self.endpoint = endpoint
        self.scratch = scratch
        self.port = free_port()
        self.config = scratch / "config.toml"
        self.config.write_text(config)
        self.log = scratch / "nodegc-run.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> Daemon:
        argv = nodegc_argv(
            "run",
            "--config",
            str(self.config),
            "--state-dir",
            str(self.scratch / "state"),
            "--runtime-endpoint",
            self.endpoint,
            "--log-format",
            "json",
        )
        env = clean_env({"NODEGC_METRICS__ADDRESS": f"127.0.0.1:{self.port}"})
        with self.log.open("ab") as log:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from start to /readyz answering 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nodegc run exited:\n{self.log.read_text()[-3000:]}")
            if self.get("/readyz")[0] == 200:
                return time.monotonic() - self.started
            time.sleep(0.1)
        raise RuntimeError(f"nodegc run not ready after {timeout} s; see {self.log}")

    def metric(self, name: str) -> dict[str, float]:
        """Every sample of one metric family from /metrics, by label text."""
        from prometheus_client.parser import text_string_to_metric_families

        code, body = self.get("/metrics")
        out: dict[str, float] = {}
        if code != 200:
            return out
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == name:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    out[labels] = float(sample.value)
        return out

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
