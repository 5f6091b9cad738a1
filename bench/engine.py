"""engine: `nodegc once` vs the engine's own prune vs docker-custodian, on one isolated engine.

For every contender in every round the same inventory is made anew on the same engine: a
labelled busybox base image, `images` unused labelled images of 4 KiB each, and `containers` dead
labelled containers of the base image (each its own evict unit). Each contender must remove all
of it, and nothing else is on the engine; the harness checks the engine is empty afterwards.

Contenders, each a fresh process (process start included), timed from fork to exit:

- `nodegc once` with a fresh state directory (cold: first sighting of every object, so it also
  inspects each new image, and each exited container for its finish time) and with a warm one
  (`nodegc report` ran once before, untimed: history and finish times already known, as on a node
  where nodegc runs periodically). Settings that remove exactly the inventory:
  `--maximum-dead-containers-per-container=0` (no dead container kept per unit),
  `--minimum-image-ttl-duration=0s` (the images were just loaded),
  `--image-gc-high-threshold=1 --image-gc-low-threshold=0` (image GC on at any usage, aiming at
  0%: every unused image goes; exit code 1, FreeDiskSpaceFailed, since 0% is out of reach);
  `--log-level=warning` unless told otherwise (the removal table is printed either way).
- `docker container prune -f --filter label=bench.nodegc=1` then
  `docker image prune -a -f --filter label=bench.nodegc=1`: the engine's sequential prune.
- docker-custodian 0.7.4 (`dcgc --max-container-age 0s --max-image-age 0s`), from PyPI in its own
  virtualenv under .cache/, pointed at the engine with DOCKER_HOST.

With `--engine podman` the engine is an isolated Podman service (nodegc.testing.podman), nodegc
talks to its Docker-compatible API, and the prune contender is Podman's own, run as people run it
on a host (the local `podman` command on the same storage, not through the service):
`podman container prune -f --filter label=bench.nodegc=1` then
`podman image prune -a -f --filter label=bench.nodegc=1`. docker-custodian is not run there.

The order of contenders rotates from round to round; ratios are taken within each round and the
median over rounds is reported.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_LABEL,
    CACHE,
    REPO,
    Row,
    Section,
    base_image,
    clean_env,
    imports_from,
    inventory_count,
    isolated_engine,
    load_small_images,
    make_containers,
    median,
    nodegc_argv,
    timed,
)

DCGC_VERSION = "0.7.4"
DCGC_VENV = CACHE / "dcgc-venv"
ONCE_FLAGS = [
    "--maximum-dead-containers-per-container=0",
    "--minimum-image-ttl-duration=0s",
    "--image-gc-high-threshold=1",
    "--image-gc-low-threshold=0",
    "--log-format=json",
]
# The result table goes to stdout either way; at "info" each removal is also a log line.
LOG_LEVEL = {"level": "warning"}
GOAL_PRUNE_RATIO = 1.0
GOAL_DCGC_SPEEDUP = 2.0


def dcgc_path() -> Path:
    """docker-custodian's `dcgc` in its own virtualenv, installed from PyPI on first use.

    0.7.4 imports `docker.APIClient` and `docker.utils.kwargs_from_env`, which the current SDK
    (7.x) still has; should a newer SDK drop them, the SDK is pinned below 7 and tried again.
    """
    dcgc = DCGC_VENV / "bin" / "dcgc"
    if not dcgc.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DCGC_VENV)], check=True)
        pip = [str(DCGC_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"docker-custodian=={DCGC_VERSION}"], check=True)
    if subprocess.run([str(dcgc), "--help"], capture_output=True, check=False).returncode != 0:
        pip = [str(DCGC_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "docker<7", "requests<2.32"], check=True)
    return dcgc


@dataclass
class Contender:
    name: str
    # (engine, scratch dir, log file) -> seconds; `prepare` runs untimed after seeding.
    run: Callable[[Any, Path, Path], float]
    prepare: Callable[[Any, Path, Path], None] | None = None


def _nodegc_once(engine: Any, scratch: Path, log: Path) -> float:
    argv = nodegc_argv(
        "once", "--state-dir", str(scratch / "state"), "--runtime-endpoint", engine.endpoint
    )
    return timed([*argv, *ONCE_FLAGS, f"--log-level={LOG_LEVEL['level']}"], clean_env(), log)


def nodegc_at(ref: str, *, warm: bool = False) -> Contender:
    """`nodegc once` as of git `ref` (or of a directory holding a nodegc/ package): put first on
    PYTHONPATH, the installed dependencies serving both. Before/after in one run. Cold by default;
    `warm`: that ref's `nodegc report` ran once before (untimed), as for "nodegc once (warm)"."""
    src = source_of(ref)
    env = clean_env({"PYTHONPATH": str(src)})
    flags = [*ONCE_FLAGS]

    def command(name: str, engine: Any, scratch: Path) -> list[str]:
        argv = nodegc_argv(
            name, "--state-dir", str(scratch / "state"), "--runtime-endpoint", engine.endpoint,
            other_tree=True,
        )  # fmt: skip
        return [*argv, *flags, f"--log-level={LOG_LEVEL['level']}"]

    def run(engine: Any, scratch: Path, log: Path) -> float:
        return timed(command("once", engine, scratch), env, log)

    def prepare(engine: Any, scratch: Path, log: Path) -> None:
        timed(command("report", engine, scratch), env, log)

    if warm:
        return Contender(f"nodegc once (warm) @{ref}", run, prepare)
    return Contender(f"nodegc once (cold) @{ref}", run)


@functools.cache
def source_of(ref: str) -> Path:
    """A directory holding the nodegc/ package as of git `ref` (or `ref` itself when it holds
    one), to put first on PYTHONPATH."""
    if (Path(ref) / "nodegc" / "__init__.py").exists():
        return imports_from(Path(ref).resolve())
    src = Path(tempfile.mkdtemp(prefix="nodegc-ref-"))
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "nodegc"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    return imports_from(src)


def compile_sources(roots: list[Path]) -> None:
    """Each nodegc/ package's bytecode written beside it, as an install does (pip compiles what
    it installs): a contender does not compile its modules at every start when the environment
    says not to write bytecode (PYTHONDONTWRITEBYTECODE, as in CI), which cost 0.13 s a process
    here. Every contender, baselines included, starts the same way."""
    for root in roots:
        argv = [sys.executable, "-m", "compileall", "-q", str(root / "nodegc")]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def _nodegc_report(engine: Any, scratch: Path, log: Path) -> None:
    argv = nodegc_argv(
        "report", "--state-dir", str(scratch / "state"), "--runtime-endpoint", engine.endpoint
    )
    timed([*argv, *ONCE_FLAGS, f"--log-level={LOG_LEVEL['level']}"], clean_env(), log)


def _prune(engine: Any, scratch: Path, log: Path) -> float:
    env = clean_env({"DOCKER_HOST": engine.endpoint})
    label = f"label={BENCH_LABEL}=1"
    started = time.perf_counter()
    timed(["docker", "container", "prune", "-f", "--filter", label], env, log)
    timed(["docker", "image", "prune", "-a", "-f", "--filter", label], env, log)
    return time.perf_counter() - started


def _podman_prune(engine: Any, scratch: Path, log: Path) -> float:
    label = f"label={BENCH_LABEL}=1"
    containers, env = engine.cli("container", "prune", "-f", "--filter", label)
    images, _ = engine.cli("image", "prune", "-a", "-f", "--filter", label)
    started = time.perf_counter()
    timed(containers, env, log)
    timed(images, env, log)
    return time.perf_counter() - started


def _podman_version(engine: Any) -> str:
    """`podman --version` of the engine's own podman (the root's, when run from one)."""
    argv, env = engine.cli("--version")
    found = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    rooted = getattr(engine, "engine_root", None)
    where = f" (root {rooted.suite}, run through unshare and chroot)" if rooted else ""
    return f"{found.stdout.strip() or 'podman version unknown'}{where}"


def _dcgc(engine: Any, scratch: Path, log: Path) -> float:
    env = clean_env({"DOCKER_HOST": engine.endpoint})
    return timed([str(dcgc_path()), "--max-container-age", "0s", "--max-image-age", "0s"], env, log)


CONTENDERS = {
    "nodegc once (cold)": Contender("nodegc once (cold)", _nodegc_once),
    "nodegc once (warm)": Contender("nodegc once (warm)", _nodegc_once, _nodegc_report),
    "docker prune": Contender("docker prune", _prune),
    "dcgc 0.7.4": Contender("dcgc 0.7.4", _dcgc),
}
PODMAN_CONTENDERS = {
    "nodegc once (cold)": CONTENDERS["nodegc once (cold)"],
    "nodegc once (warm)": CONTENDERS["nodegc once (warm)"],
    "podman prune": Contender("podman prune", _podman_prune),
}


def seed(engine: Any, containers: int, images: int, exited: bool, round_no: int) -> None:
    base = base_image(engine)
    load_small_images(engine, images, f"bench/r{round_no}")
    make_containers(engine, base, containers, exited=exited)


def run(
    *,
    containers: int = 1000,
    images: int = 200,
    rounds: int = 3,
    exited: bool = False,
    size_mb: int = 2048,
    only: list[str] | None = None,
    baseline_refs: list[str] | None = None,
    log_level: str = "warning",
    log_dir: Path | None = None,
    engine_kind: str = "docker",
) -> Section:
    LOG_LEVEL["level"] = log_level
    podman = engine_kind == "podman"
    contenders = dict(PODMAN_CONTENDERS if podman else CONTENDERS)
    names = only or list(contenders)
    refs_of = ("nodegc once (cold)", "nodegc once (warm)")
    unknown = [n for n in names if n not in contenders and n.partition(" @")[0] not in refs_of]
    if unknown:
        raise ValueError(f"unknown contender {unknown[0]!r} for {engine_kind}: {list(contenders)}")
    prune_name = "podman prune" if podman else "docker prune"
    for name in names:  # "nodegc once (warm) @REF": that ref's warm once, named as a contender
        kind, _, ref = name.partition(" @")
        if ref and kind in refs_of:
            contenders[name] = nodegc_at(ref, warm=kind.endswith("(warm)"))
    for ref in baseline_refs or []:
        baseline = nodegc_at(ref)
        contenders[baseline.name] = baseline
        names = [*names, baseline.name]
    if "dcgc 0.7.4" in names:
        dcgc_path()
    refs = [*(baseline_refs or []), *(n.partition(" @")[2] for n in names if " @" in n)]
    compile_sources([REPO, *(source_of(ref) for ref in refs)])
    state = "exited (`true` runs)" if exited else "created, never started"
    section = Section(
        "engine-podman" if podman else "engine",
        f"engine{' (Podman service)' if podman else ''}: remove {containers} dead "
        f"containers ({state}) and {images + 1} unused images, {rounds} rounds",
        ["contender", "median", "min", "max", "per round", "÷ prune (median)", "dcgc ÷ it"],
    )
    times: dict[str, list[float]] = {n: [] for n in names}
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="nodegc-bench-engine-"))
    with isolated_engine(size_mb, engine_kind) as engine:
        version = _podman_version(engine) if podman else ""
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                contender = contenders[name]
                found = inventory_count(engine)
                if found != (0, 0):
                    raise RuntimeError(f"engine not empty before {name}: {found}")
                seed(engine, containers, images, exited, r)
                scratch = Path(tempfile.mkdtemp(prefix="c-", dir=log_dir))
                log = scratch / "log"
                if contender.prepare is not None:
                    contender.prepare(engine, scratch, log)
                time.sleep(1.0)  # let the engine settle after seeding
                seconds = contender.run(engine, scratch, log)
                left = inventory_count(engine)
                if left != (0, 0):
                    raise RuntimeError(f"{name} left {left} (containers, images); see {log}")
                times[name].append(seconds)
                print(f"  round {r + 1}: {name:<20} {seconds:6.2f} s", file=sys.stderr)
    prune = times.get(prune_name)
    dcgc = times.get("dcgc 0.7.4")
    for name in names:
        t = times[name]
        ratio_text = speedup_text = "-"
        if prune and name != prune_name:
            ratio_text = f"{median([a / b for a, b in zip(t, prune, strict=True)]):.2f}"
        if dcgc and name != "dcgc 0.7.4":
            speedup_text = f"{median([b / a for a, b in zip(t, dcgc, strict=True)]):.2f}x"
        section.rows.append(
            [
                name,
                f"{median(t):.2f} s",
                f"{min(t):.2f} s",
                f"{max(t):.2f} s",
                " ".join(f"{x:.2f}" for x in t),
                ratio_text,
                speedup_text,
            ]
        )
    section.notes.append(
        "each contender is a new process (start included) on the same engine with the same "
        "inventory made anew; the engine is checked empty after each"
    )
    section.notes.append(
        "cold: empty state dir (first sighting); warm: `nodegc report` ran once before (untimed)"
    )
    section.notes.append(f"nodegc --log-level={log_level}")
    if podman:
        section.notes.append(f"{version}; prune: the engine's own podman command")
    section.notes.append(f"logs: {log_dir}")
    for name in (n for n in names if n.startswith("nodegc")):
        t = times[name]
        before = "@" in name  # a baseline: shown for comparison, judged against no goal
        if prune:
            vs_prune = median([a / b for a, b in zip(t, prune, strict=True)])
            section.summary.append(
                Row(
                    section.name,
                    f"{name} ÷ {prune_name} ({state})",
                    f"{vs_prune:.2f}",
                    "(before)" if before else f"≤ {GOAL_PRUNE_RATIO:.1f}",
                    None if before else vs_prune <= GOAL_PRUNE_RATIO,
                )
            )
        if dcgc:
            speedup = median([b / a for a, b in zip(t, dcgc, strict=True)])
            section.summary.append(
                Row(
                    "engine",
                    f"dcgc ÷ {name} ({state})",
                    f"{speedup:.2f}x",
                    "(before)" if before else f"≥ {GOAL_DCGC_SPEEDUP:.0f}x",
                    None if before else speedup >= GOAL_DCGC_SPEEDUP,
                )
            )
    return section
