"""plan: the pure policy at scale (`nodegc.policy.plan` over a synthetic Snapshot and History).

Each size runs in a fresh subprocess (`python -m bench.plan --child IMAGES CONTAINERS`) that builds
the snapshot, plans it `repeats` times and reports the best plan time and its peak RSS
(`ru_maxrss`: the whole process, snapshot included). The inventory looks like a busy node: images
of many sizes with tags and digests (a few pinned), most with history; containers mostly dead,
some running, in Kubernetes pods (with restarts), compose services and plain names; the disk above
the high threshold, and a global dead-container cap low enough to trim (the costliest path).
Images have 8 layers each, 3 of them shared with others (60 base images): the plan's layer
accounting (what each removal frees given the removals before it) is part of what is timed.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import math
import pstats
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import REPO, Row, Section

SIZES: list[tuple[int, int]] = [(1_000, 10_000), (10_000, 100_000), (50_000, 500_000)]
GOAL_SIZE = (10_000, 100_000)
GOAL_SECONDS = 1.0
GOAL_RSS_MB = 300.0
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def synthetic(n_images: int, n_containers: int, seed: int = 1) -> tuple[Any, Any, Any, Any]:
    """(snapshot, history, image settings, container settings) of a busy synthetic node."""
    from nodegc.config import ContainerSettings, ImageSettings
    from nodegc.model import (
        Container,
        ContainerState,
        FilesystemStats,
        History,
        Image,
        ImageRecord,
        Layer,
        Snapshot,
    )

    rng = random.Random(seed)
    images: list[Image] = []
    records: dict[str, ImageRecord] = {}
    # Layers as on a real node: 60 base images of 3 layers that many images build on (shared),
    # then 5 layers of each image's own: 8 layers an image, 80k for 10k images.
    bases = [
        tuple(
            Layer(f"sha256:base{b}-{k}", rng.randint(1, 80) * 1024 * 1024, None) for k in range(3)
        )
        for b in range(60)
    ]
    layers: dict[str, tuple[Layer, ...]] = {}
    for i in range(n_images):
        image_id = "sha256:" + hashlib.sha256(b"image%d" % i).hexdigest()
        repo = f"registry.example.com/team{i % 97}/app{i % 1013}"
        tags = (f"{repo}:v{i}",) if i % 10 else ()
        if i % 500 == 0:
            tags = (f"registry.k8s.io/pause:3.{i % 9}",)  # pinned by the default pattern
        digests = (f"{repo}@sha256:{hashlib.sha256(b'd%d' % i).hexdigest()}",)
        pinned = {"nodegc.io/pinned": "true"} if i % 997 == 0 else {}
        own = tuple(
            Layer(f"sha256:own{i}-{k}", rng.randint(0, 160) * 1024 * 1024, None) for k in range(5)
        )
        stack = bases[i % len(bases)] + own
        layers[image_id] = stack
        size = sum(layer.size_bytes or 0 for layer in stack)
        images.append(Image(image_id, tags, digests, size, pinned))
        if rng.random() < 0.9:
            first = NOW - timedelta(seconds=rng.randint(60, 90 * 86400))
            used = None if rng.random() < 0.3 else first + (NOW - first) * rng.random()
            records[image_id] = ImageRecord(first, used)
    # Containers reference images with a skew (a few images are everywhere).
    hot = [im.id for im in images[: max(1, n_images // 20)]]
    states = [ContainerState.EXITED] * 85 + [ContainerState.RUNNING] * 10
    states += [ContainerState.CREATED] * 4 + [ContainerState.DEAD]
    containers: list[Container] = []
    for c in range(n_containers):
        container_id = hashlib.sha256(b"container%d" % c).hexdigest()
        image_id = rng.choice(hot) if rng.random() < 0.5 else rng.choice(images).id
        state = rng.choice(states)
        created = NOW - timedelta(seconds=rng.randint(1, 30 * 86400))
        finished = None
        if state in (ContainerState.EXITED, ContainerState.DEAD):
            finished = created + timedelta(seconds=rng.randint(1, 86400))
            finished = min(finished, NOW)
        kind = c % 10
        labels: dict[str, str] = {}
        if kind < 6:  # a pod's container, restarted a few times (about 4 per unit)
            pod = c // 4
            labels = {
                "io.kubernetes.pod.uid": f"uid-{pod}",
                "io.kubernetes.pod.name": f"pod-{pod}",
                "io.kubernetes.pod.namespace": f"ns{pod % 31}",
                "io.kubernetes.container.name": "app",
            }
        elif kind < 8:
            labels = {
                "com.docker.compose.project": f"p{c % 211}",
                "com.docker.compose.service": f"s{c % 7}",
            }
        if c % 1000 == 0:
            labels["nodegc.io/keep"] = "true"
        containers.append(
            Container(container_id, f"c{c}", image_id, state, created, finished, labels)
        )
    capacity = 4 * 1024**4
    fs = FilesystemStats("/var/lib/docker", capacity, capacity // 10, 10**8, 9 * 10**7)
    snapshot = Snapshot(NOW, fs, tuple(images), tuple(containers), layers=layers)
    history = History(since=NOW - timedelta(days=120), images=records)
    image_settings = ImageSettings(maximum_age=timedelta(days=60))
    container_settings = ContainerSettings(max_dead_containers=n_containers // 10)
    return snapshot, history, image_settings, container_settings


def child(n_images: int, n_containers: int, repeats: int) -> dict[str, Any]:
    """Build, plan `repeats` times, measure; runs in its own process."""
    from nodegc import policy
    from nodegc.collect.pause import cycle_collector_paused  # as the collector plans

    started = time.perf_counter()
    snapshot, history, image_settings, container_settings = synthetic(n_images, n_containers)
    build = time.perf_counter() - started
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times: list[float] = []
    removals = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        with cycle_collector_paused():
            plan = policy.plan(snapshot, history, image_settings, container_settings, NOW)
        times.append(time.perf_counter() - t0)
        removals = len(plan.containers.removals) + len(plan.images.removals)
        del plan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The work done, independent of the machine: Python-level calls of one plan (cProfile, after
    # the timed runs so it slows none of them). Linear in n when every step is O(n) or a sort.
    profiler = cProfile.Profile()
    profiler.enable()
    policy.plan(snapshot, history, image_settings, container_settings, NOW)
    profiler.disable()
    calls = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
    return {
        "images": n_images,
        "containers": n_containers,
        "build_s": build,
        "plan_s": min(times),
        "plan_s_all": times,
        "rss_snapshot_mb": rss_before,
        "peak_rss_mb": peak,
        "removals": removals,
        "calls": calls,
    }


def measure(n_images: int, n_containers: int, repeats: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.plan", "--child", str(n_images), str(n_containers)]
    argv += ["--repeats", str(repeats)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"plan child {n_images}/{n_containers} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout))


def run(sizes: list[tuple[int, int]] | None = None, repeats: int = 3) -> Section:
    sizes = sizes or SIZES
    section = Section(
        "plan",
        "plan: nodegc.policy.plan over a synthetic node (fresh process per size)",
        [
            "images",
            "containers",
            f"plan (best of {repeats})",
            "µs/object",
            "calls/object",
            "time x (step)",
            "n log n x (step)",
            "peak RSS",
            "RSS before plan",
            "removals",
        ],
    )
    results = [measure(i, c, repeats) for i, c in sizes]
    previous: dict[str, Any] | None = None
    for r in results:
        n = r["images"] + r["containers"]
        growth = nlogn = "-"
        if previous is not None:
            n0 = previous["images"] + previous["containers"]
            r["growth"] = r["plan_s"] / previous["plan_s"]
            r["nlogn"] = (n * math.log(n)) / (n0 * math.log(n0))
            growth, nlogn = f"{r['growth']:.1f}", f"{r['nlogn']:.1f}"
        previous = r
        section.rows.append(
            [
                f"{r['images']:,}",
                f"{r['containers']:,}",
                f"{r['plan_s']:.3f} s",
                f"{r['plan_s'] / n * 1e6:.2f}",
                f"{r['calls'] / n:.1f}",
                growth,
                nlogn,
                f"{r['peak_rss_mb']:.0f} MB",
                f"{r['rss_snapshot_mb']:.0f} MB",
                f"{r['removals']:,}",
            ]
        )
    section.notes.append(
        "time x and n log n x (step) compare each size with the one above it (n = images + "
        "containers); calls/object is the Python-level calls of one plan (cProfile) per object: "
        "constant means the work is linear apart from the sorts (O(n log n) in C)"
    )
    section.notes.append(
        "peak RSS is the child process's ru_maxrss: interpreter, nodegc, the synthetic snapshot "
        "and the plan; 'RSS before plan' is the same figure once the snapshot is built"
    )
    goal = next((r for r in results if (r["images"], r["containers"]) == GOAL_SIZE), None)
    if goal is not None:
        section.summary.append(
            Row(
                "plan",
                "10k images + 100k containers: plan time",
                f"{goal['plan_s']:.3f} s",
                f"< {GOAL_SECONDS:.0f} s",
                goal["plan_s"] < GOAL_SECONDS,
            )
        )
        section.summary.append(
            Row(
                "plan",
                "10k images + 100k containers: peak RSS",
                f"{goal['peak_rss_mb']:.0f} MB",
                f"< {GOAL_RSS_MB:.0f} MB",
                goal["peak_rss_mb"] < GOAL_RSS_MB,
            )
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        n_first = first["images"] + first["containers"]
        n_last = last["images"] + last["containers"]
        calls_ratio = (last["calls"] / n_last) / (first["calls"] / n_first)
        section.summary.append(
            Row(
                "plan",
                "growth: calls/object, first → last size",
                f"{first['calls'] / n_first:.1f} → {last['calls'] / n_last:.1f}",
                "constant (O(n) + sorts)",
                calls_ratio <= 1.1,
            )
        )
        section.summary.append(
            Row(
                "plan",
                f"growth: time, last step (→ {n_last:,} objects)",
                f"{last['growth']:.1f}x (n log n: {last['nlogn']:.1f}x)",
                "≈ O(n log n)",
                last["growth"] <= last["nlogn"] * 1.25,
            )
        )
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plan")
    parser.add_argument("--child", nargs=2, type=int, metavar=("IMAGES", "CONTAINERS"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.repeats)))
        return 0
    from bench.common import render_section

    print(render_section(run(repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
