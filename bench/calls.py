"""calls: the engine requests one `nodegc once` makes against N objects, counted on the wire.

`nodegc once` (a real process) talks to the engine through a counting unix-socket proxy
(bench/proxy.py). For each N the inventory is: N exited containers (real `true` runs) in pods
of two (two restarts of one pod container: the per-unit cap of 1 removes one of each pair),
and N/5 unused images; the busybox base image stays in use. Cycle 1 (an empty state dir) sees
everything for the first time; cycle 2 runs the same command with the same state dir, on what
cycle 1 kept. A request per object per cycle would show as cycle 2 growing with N.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import (
    Row,
    Section,
    base_image,
    clean_env,
    isolated_engine,
    load_small_images,
    make_containers,
    nodegc_argv,
    timed,
)
from bench.proxy import CountingProxy

FLAGS = [
    "--minimum-image-ttl-duration=0s",
    "--image-gc-high-threshold=1",
    "--image-gc-low-threshold=0",
    "--log-level=warning",
]
COLUMNS = [
    "list containers",
    "list images",
    "inspect container",
    "inspect image",
    "image history",
    "remove container",
    "remove image",
]


def pod_labels(i: int) -> dict[str, str]:
    """Containers 2k and 2k+1 are two runs of one pod container."""
    return {
        "io.kubernetes.pod.uid": f"uid-{i // 2}",
        "io.kubernetes.pod.name": f"pod-{i // 2}",
        "io.kubernetes.container.name": "app",
    }


def measure(engine: Any, n: int, exited: bool, scratch: Path) -> list[Counter[str]]:
    """Counts of cycle 1 and cycle 2 against `n` containers and n/5 images."""
    base = base_image(engine)
    load_small_images(engine, n // 5, f"bench/calls{n}")
    make_containers(engine, base, n, exited=exited, labels_fn=pod_labels)
    state = scratch / f"state-{n}"
    cycles: list[Counter[str]] = []
    with CountingProxy(engine.socket_path, scratch / f"proxy-{n}.sock") as proxy:
        argv = nodegc_argv("once", "--state-dir", str(state), "--runtime-endpoint", proxy.endpoint)
        for _ in range(2):
            timed([*argv, *FLAGS], clean_env(), scratch / f"once-{n}.log")
            cycles.append(proxy.reset())
    with engine.api() as api:  # leave the engine empty for the next N
        for c in api.containers(all=True):
            api.remove_container(c["Id"], force=True)
        for i in api.images():
            api.remove_image(i["Id"], force=True)
    return cycles


def run(sizes: tuple[int, ...] = (100, 1000), exited: bool = True, size_mb: int = 2048) -> Section:
    kind = "exited" if exited else "created"
    section = Section(
        "calls",
        f"calls: engine requests of one `nodegc once`, counted on the wire ({kind} containers)",
        [
            "N containers",
            "images",
            "cycle",
            "lists",
            "inspects (c/i/h)",
            "removals (c/i)",
            "other",
            "total",
            "= lists + removals + first-sighting inspects + other",
        ],
    )
    scratch = Path(tempfile.mkdtemp(prefix="nodegc-bench-calls-"))
    results: dict[int, list[Counter[str]]] = {}
    with isolated_engine(size_mb) as engine:
        for n in sizes:
            results[n] = measure(engine, n, exited, scratch)
    for n, cycles in results.items():
        for number, counts in enumerate(cycles, start=1):
            lists = counts["list containers"] + counts["list images"]
            inspects = (
                counts["inspect container"] + counts["inspect image"] + counts["image history"]
            )
            removals = counts["remove container"] + counts["remove image"]
            other = sum(v for k, v in counts.items() if k not in COLUMNS)
            total = sum(counts.values())
            section.rows.append(
                [
                    f"{n:,}",
                    f"{n // 5 + 1:,}",
                    str(number),
                    str(lists),
                    f"{inspects} ({counts['inspect container']}/{counts['inspect image']}"
                    f"/{counts['image history']})",
                    f"{removals} ({counts['remove container']}/{counts['remove image']})",
                    str(other),
                    str(total),
                    f"{lists} + {removals} + {inspects} + {other}",
                ]
            )
    others = Counter[str]()
    for cycles in results.values():
        for counts in cycles:
            others.update({k: v for k, v in counts.items() if k not in COLUMNS})
    section.notes.append(
        "other: " + ", ".join(f"{k} x{v}" for k, v in sorted(others.items())) + " (all runs)"
    )
    section.notes.append(
        "cycle 1 inspects each image not seen before once (its layers and when it was tagged) and "
        "asks its history once (per-layer sizes), and only the dead "
        "containers whose exact finish time a decision or an image's last use depends on (the "
        "listing gives a window: nodegc.policy.finish_times); what it learns is kept in the "
        "state dir"
    )
    if sizes:
        second = [results[n][1] for n in sizes]
        constant = len({sum(c.values()) for c in second}) == 1
        totals = " / ".join(str(sum(c.values())) for c in second)
        section.summary.append(
            Row(
                "calls",
                "cycle 2 requests at N = " + " / ".join(f"{n:,}" for n in sizes),
                totals,
                "constant (listings only)",
                constant
                and all(
                    c["inspect container"] + c["inspect image"] + c["image history"] == 0
                    for c in second
                ),
            )
        )
        first_ok = all(
            results[n][0]["inspect container"] <= (n if exited else 0)
            and results[n][0]["inspect image"] == n // 5 + 1
            and results[n][0]["image history"] == n // 5 + 1
            and results[n][0]["remove container"] == n // 2
            and results[n][0]["remove image"] == n // 5
            for n in sizes
        )
        firsts = " / ".join(str(sum(results[n][0].values())) for n in sizes)
        section.summary.append(
            Row(
                "calls",
                "cycle 1 requests at N = " + " / ".join(f"{n:,}" for n in sizes),
                firsts,
                "lists + 1/removal + ≤ 1 inspect/new object + 1 history/new image",
                first_ok,
            )
        )
    return section
