"""bignode: `nodegc report` on a big node, cold and warm, on a real dockerd (issue 20).

The node: `images` images (`docker load` of docker-save tarballs, 250 per request; 50 shared
4 KiB layers, a config each) and `containers` containers created, never started (`POST
/containers/create` only: a created container has its writable layer and config like any dead
one, at a fraction of the cost of running it), spread over the first half of the images, in
pods of two. `nodegc report --output json` runs as a user runs it (a new process) through the
counting proxy: cold (an empty state directory: every image is new) once, then warm (the same
state directory) `rounds` times. Wall time from fork to exit, the process's peak RSS
(ru_maxrss from wait4), and the requests on the wire.

Building the node takes minutes (20,000 creates); `--bignode-keep FILE` leaves the engine
running and writes where it is to FILE, and a later run with the same FILE reuses it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_LABELS,
    Row,
    Section,
    base_image,
    clean_env,
    median,
    nodegc_argv,
    require_root,
)
from bench.proxy import CountingProxy

GOAL_SECONDS = 2.0
GOAL_RSS_MB = 200.0


def load_images(engine: Any, n: int, bases: int = 50) -> list[str]:
    """`n` images, each one of `bases` shared 4 KiB layers and a config of its own (a label):
    the engine extracts each layer once, so a load costs what registering an image costs."""
    from nodegc.testing.images import build_layer, build_layered_image_tar

    layers = [build_layer(4096, name=f"base{b}", seed=b) for b in range(bases)]
    ids: list[str] = []
    for start in range(0, n, 250):
        ids += engine.load_many(
            build_layered_image_tar(
                [f"bench/big{i % 97}/img{i}:1"], [layers[i % bases]],
                labels={**BENCH_LABELS, "bench.image": str(i)},
            )
            for i in range(start, min(n, start + 250))
        )  # fmt: skip
    return ids


def build(engine: Any, images: int, containers: int, workers: int = 8) -> None:
    """Load `images` images and create `containers` containers over the first half of them."""
    base_image(engine)
    ids = load_images(engine, images)
    used = ids[: max(1, len(ids) // 2)]

    def batch(indices: range) -> int:
        with engine.api(timeout=120) as api:
            host_config = api.create_host_config(network_mode="none")
            for i in indices:
                labels = {
                    **BENCH_LABELS,
                    "io.kubernetes.pod.uid": f"uid-{i // 2}",
                    "io.kubernetes.pod.name": f"pod-{i // 2}",
                    "io.kubernetes.pod.namespace": "bench",
                    "io.kubernetes.container.name": "app",
                }
                api.create_container(
                    used[i % len(used)], command=["true"], labels=labels, host_config=host_config
                )
        return len(indices)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(batch, [range(k, containers, workers) for k in range(workers)]))


def run_report(
    argv: Sequence[str], log: Path, env: dict[str, str]
) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in MB, exit code) of one process."""
    with open(log, "ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, proc.returncode


Result = tuple[str, str, float, float, float, int, int]
"""(run, code, wall s, CPU s, peak MB, requests, exit)."""

NOW = "this tree"
# The engine's own CLI on the same node, side by side: what listing everything costs (the floor
# of any report), and what a user asks to see where the space is.
CLI_CONTENDERS = {
    "docker ps -a + images": (
        "docker -H {host} ps -aq >/dev/null && docker -H {host} images -q >/dev/null"
    ),
    "docker system df": "docker -H {host} system df >/dev/null",
}


def measure(
    engine: Any,
    rounds: int,
    scratch: Path,
    refs: Sequence[str] = (),
    profile: bool = False,
    timeout: str = "",
) -> list[Result]:
    """A cold report then `rounds` warm ones, for this tree and for each git ref in `refs` (each
    with its own state directory), the contenders alternated round by round, the order rotated;
    with `profile`, one more warm report of this tree in-process under cProfile
    (`bench.reportprofile`), its output in `scratch`/profile.txt. `timeout`: the reports'
    `--runtime-request-timeout` (the breakdown's `/system/df` can outlast the default 30 s)."""
    from bench.engine import source_of

    envs = {NOW: clean_env()}
    envs.update((f"@{ref}", clean_env({"PYTHONPATH": str(source_of(ref))})) for ref in refs)
    cli = [c for c in CLI_CONTENDERS if shutil.which("docker")]
    envs.update((c, clean_env()) for c in cli)
    names = list(envs)
    out: list[Result] = []
    with CountingProxy(engine.socket_path, scratch / "proxy.sock") as proxy:
        for n in range(rounds + 1):
            for name in names[n % len(names) :] + names[: n % len(names)]:
                state = scratch / f"state{names.index(name)}"
                argv = nodegc_argv(
                    "report", "--output", "json", "--state-dir", str(state),
                    "--runtime-endpoint", proxy.endpoint, "--log-level", "warning",
                    *(["--runtime-request-timeout", timeout] if timeout else []),
                    other_tree=name.startswith("@"),
                )  # fmt: skip
                if name in CLI_CONTENDERS:
                    argv = ["sh", "-c", CLI_CONTENDERS[name].format(host=proxy.endpoint)]
                proxy.reset()
                wall, cpu, rss, code = run_report(argv, scratch / "report.log", envs[name])
                requests = sum(proxy.reset().values())
                out.append(("cold" if n == 0 else "warm", name, wall, cpu, rss, requests, code))
        if profile:
            _profile(scratch, proxy.endpoint)
    return out


def _profile(scratch: Path, endpoint: str) -> None:
    warm = scratch / "state-profile"
    shutil.copytree(scratch / "state0", warm)
    argv = [sys.executable, "-m", "bench.reportprofile", "--state-dir", str(warm),
            "--runtime-endpoint", endpoint]  # fmt: skip
    with open(scratch / "profile.txt", "wb") as out:
        subprocess.run(argv, env=clean_env(), stdout=out, stderr=subprocess.STDOUT, check=False)


def run(
    images: int = 5000,
    containers: int = 20000,
    rounds: int = 3,
    keep: Path | None = None,
    refs: Sequence[str] = (),
    profile: bool = False,
    timeout: str = "",
) -> Section:
    section = Section(
        "bignode",
        f"bignode: `nodegc report --output json` on {images:,} images + {containers:,} "
        "created containers (real dockerd)",
        ["run", "code", "seconds", "CPU s", "peak RSS MB", "requests", "exit"],
    )
    scratch = Path(tempfile.mkdtemp(prefix="nodegc-bench-big-"))
    load = os.getloadavg()
    results = _with_engine(images, containers, rounds, keep, scratch, (refs, profile, timeout))
    for name, code, wall, cpu, rss, requests, exit_code in results:
        section.rows.append([name, code, f"{wall:.2f}", f"{cpu:.2f}", f"{rss:.0f}",
                             str(requests), str(exit_code)])  # fmt: skip
    section.notes.append(
        f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after; logs in {scratch}"
        + (f"; profile: {scratch / 'profile.txt'}" if profile else "")
    )
    mine = [r for r in results if r[1] == NOW]
    warm = [r for r in mine if r[0] == "warm"]
    cold = mine[0]
    warm_s, warm_rss = median([r[2] for r in warm]), max(r[4] for r in warm)
    section.summary += [
        Row("bignode", "report warm, median s", f"{warm_s:.2f}", f"< {GOAL_SECONDS} s",
            warm_s < GOAL_SECONDS),
        Row("bignode", "report warm, peak RSS MB", f"{warm_rss:.0f}", f"< {GOAL_RSS_MB:.0f}",
            warm_rss < GOAL_RSS_MB),
        Row("bignode", "report cold s / requests", f"{cold[2]:.2f} / {cold[5]:,}",
            "as few requests per new image as the engine allows", None),
    ]  # fmt: skip
    for name in dict.fromkeys(r[1] for r in results if r[1] != NOW):
        theirs = median([r[2] for r in results if r[1] == name and r[0] == "warm"])
        what = name if name in CLI_CONTENDERS else f"report warm, median s {name}"
        section.summary.append(
            Row("bignode", f"{what} (same rounds)", f"{theirs:.2f} (report ÷ it: "
                f"{warm_s / theirs:.2f})")
        )  # fmt: skip
    return section


def _with_engine(
    images: int,
    containers: int,
    rounds: int,
    keep: Path | None,
    scratch: Path,
    extra: tuple[Sequence[str], bool, str],
) -> list[Result]:
    from nodegc.testing.engine import IsolatedEngine

    require_root()
    if keep is not None and keep.exists():
        engine = IsolatedEngine.attach(json.loads(keep.read_text()))
        try:
            return measure(engine, rounds, scratch, *extra)
        finally:  # attached, it would be torn down when this process ends: kept for the next
            keep.write_text(json.dumps(engine.detach()))
    # A created container takes about 35 inodes (its layer, init layer and config): the default
    # inode ratio runs out at about 6,000 of them on 4 GiB.
    size_mb, inodes = 8192, 2_000_000
    if keep is not None:
        engine = IsolatedEngine(size_mb=size_mb, inodes=inodes)
        engine.start()
        keep.write_text(json.dumps(engine.detach()))
        build(engine, images, containers)
        return measure(engine, rounds, scratch, *extra)
    with IsolatedEngine(size_mb=size_mb, inodes=inodes) as engine:
        build(engine, images, containers)
        return measure(engine, rounds, scratch, *extra)
