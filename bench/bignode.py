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
import subprocess
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


def run_report(argv: Sequence[str], log: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one process."""
    with open(log, "ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=clean_env(), stdout=subprocess.DEVNULL, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def measure(engine: Any, rounds: int, scratch: Path) -> list[tuple[str, float, float, int, int]]:
    """(run, seconds, peak MB, requests, exit) of a cold report then `rounds` warm ones."""
    state = scratch / "state"
    out: list[tuple[str, float, float, int, int]] = []
    with CountingProxy(engine.socket_path, scratch / "proxy.sock") as proxy:
        argv = nodegc_argv(
            "report", "--output", "json", "--state-dir", str(state),
            "--runtime-endpoint", proxy.endpoint, "--log-level", "warning",
        )  # fmt: skip
        for n in range(rounds + 1):
            wall, rss, code = run_report(argv, scratch / "report.log")
            requests = sum(proxy.reset().values())
            out.append(("cold" if n == 0 else "warm", wall, rss, requests, code))
    return out


def run(
    images: int = 5000, containers: int = 20000, rounds: int = 3, keep: Path | None = None
) -> Section:
    section = Section(
        "bignode",
        f"bignode: `nodegc report --output json` on {images:,} images + {containers:,} "
        "created containers (real dockerd)",
        ["run", "seconds", "peak RSS MB", "requests", "exit"],
    )
    scratch = Path(tempfile.mkdtemp(prefix="nodegc-bench-big-"))
    results = _with_engine(images, containers, rounds, keep, scratch)
    for name, wall, rss, requests, code in results:
        section.rows.append([name, f"{wall:.2f}", f"{rss:.0f}", str(requests), str(code)])
    warm = [r for r in results if r[0] == "warm"]
    cold = results[0]
    warm_s, warm_rss = median([r[1] for r in warm]), max(r[2] for r in warm)
    section.summary += [
        Row("bignode", "report warm, median s", f"{warm_s:.2f}", f"< {GOAL_SECONDS} s",
            warm_s < GOAL_SECONDS),
        Row("bignode", "report warm, peak RSS MB", f"{warm_rss:.0f}", f"< {GOAL_RSS_MB:.0f}",
            warm_rss < GOAL_RSS_MB),
        Row("bignode", "report cold s / requests", f"{cold[1]:.2f} / {cold[3]:,}",
            "as few requests per new image as the engine allows", None),
    ]  # fmt: skip
    return section


def _with_engine(
    images: int, containers: int, rounds: int, keep: Path | None, scratch: Path
) -> list[tuple[str, float, float, int, int]]:
    from nodegc.testing.engine import IsolatedEngine

    require_root()
    if keep is not None and keep.exists():
        engine = IsolatedEngine.attach(json.loads(keep.read_text()))
        return measure(engine, rounds, scratch)
    # A created container takes about 35 inodes (its layer, init layer and config): the default
    # inode ratio runs out at about 6,000 of them on 4 GiB.
    size_mb, inodes = 8192, 2_000_000
    if keep is not None:
        engine = IsolatedEngine(size_mb=size_mb, inodes=inodes)
        engine.start()
        keep.write_text(json.dumps(engine.detach()))
        build(engine, images, containers)
        return measure(engine, rounds, scratch)
    with IsolatedEngine(size_mb=size_mb, inodes=inodes) as engine:
        build(engine, images, containers)
        return measure(engine, rounds, scratch)
