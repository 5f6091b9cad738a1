"""BuildKit builds for the engine tests: find a `docker` CLI that can build with BuildKit, and
run `docker build --network none` against an isolated engine.

What a CLI needs, not which version it is: a CLI from before Docker 23 builds with BuildKit
itself (`DOCKER_BUILDKIT=1`, Debian 12's docker.io 20.10 `/usr/bin/docker`); a later one needs
the buildx plugin (Debian 13 splits it into the packages `docker-cli` and `docker-buildx`; a
28.x client without buildx refuses). For an engine run from a Debian root (`RootedEngine`), the
root's own CLI and buildx are used.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.rooted import RootedEngine

__all__ = ["build", "build_command", "buildkit_cli", "cli_env"]

CANDIDATES = ("/usr/bin/docker", "/usr/local/bin/docker")
BUILD_TIMEOUT = 300.0


def cli_env() -> dict[str, str]:
    """The environment for the CLI: the host's, minus DOCKER_*, with BuildKit on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_BUILDKIT="1", DOCKER_CLI_HINTS="false")
    return env


@functools.cache
def buildkit_cli() -> str | None:
    """The first docker CLI on this host that builds with BuildKit (None if there is none)."""
    found = [shutil.which("docker"), *CANDIDATES]
    for cli in dict.fromkeys(p for p in found if p and os.access(p, os.X_OK)):
        if _has_buildx(cli) or _builds_without_buildx(cli):
            return cli
    return None


def _has_buildx(cli: str) -> bool:
    done = subprocess.run(
        [cli, "buildx", "version"], capture_output=True, env=cli_env(), timeout=30, check=False
    )
    return done.returncode == 0


def _builds_without_buildx(cli: str) -> bool:
    """A client older than 23.0 has BuildKit built in."""
    done = subprocess.run(
        [cli, "version", "--format", "{{.Client.Version}}"],
        capture_output=True, text=True, env=cli_env(), timeout=30, check=False,
    )  # fmt: skip
    match = re.match(r"(\d+)\.", done.stdout.strip())
    return match is not None and int(match.group(1)) < 23


def build_argv(tag: str, context: Path, extra: Sequence[str] = ()) -> list[str]:
    """The `docker build` arguments (after `docker -H ENDPOINT`): no network (the test engines
    have no bridge), quiet."""
    return ["build", "--network", "none", "-q", "-t", tag, *extra, str(context)]


def build_command(
    engine: IsolatedEngine, tag: str, context: Path
) -> tuple[list[str], dict[str, str]]:
    """argv and environment of a BuildKit `docker build` of `context` (a directory under the
    engine's temp dir `engine.root`, with its Dockerfile) as `tag`, against `engine`; raise
    AssertionError when no CLI here can build."""
    args = build_argv(tag, context)
    if isinstance(engine, RootedEngine):
        root = engine.engine_root
        argv = root.wrap(["docker", "-H", engine.endpoint, *args], binds=[engine.root])
        return argv, root.env({"DOCKER_BUILDKIT": "1", "DOCKER_CLI_HINTS": "false"})
    cli = buildkit_cli()
    if cli is None:
        raise AssertionError("no docker CLI here builds with BuildKit (install docker-buildx)")
    return [cli, "-H", engine.endpoint, *args], cli_env()


def build(
    engine: IsolatedEngine, context: Path, tag: str, *, timeout: float = BUILD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Build `context` as `tag` with BuildKit (see `build_command`); raise AssertionError with
    the output if it fails."""
    argv, env = build_command(engine, tag, context)
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"build of {tag} failed ({done.returncode}): {done.stderr[-3000:]}")
    return done
