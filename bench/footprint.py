"""footprint: RSS and CPU of an idle `nodegc run` on a populated engine with events flowing.

The engine holds `images` images (a labelled busybox and small unused ones) and `containers`
dead containers (never started by default, or real exited `true` runs), each its own evict unit,
so the default settings keep everything: the daemon idles as on a healthy node (container GC
every minute, image GC every 5 minutes, a disk check every 10 s, a heartbeat every 2 s, the
event stream). Meanwhile a container is run (`true`) and removed every `interval` seconds, so
create/start/die/destroy events keep flowing. The window starts `warmup` seconds after the
daemon is ready (startup is reported apart): CPU is the process's user+system time over the
window, RSS is sampled every second.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    Row,
    Sampler,
    Section,
    base_image,
    isolated_engine,
    load_small_images,
    make_containers,
)
from bench.daemon import Daemon

MB = 1_000_000  # RSS in MB of 10^6 bytes, as the goal is written
GOAL_RSS_MB = 60.0
GOAL_CPU_PERCENT = 1.0


def _events(engine: Any, image: str, interval: float, stop: threading.Event) -> int:
    """Run and remove a container every `interval` seconds until `stop`; returns how many."""
    count = 0
    with engine.api() as api:
        while not stop.wait(interval):
            container = engine.run_container(image, ["true"], labels={"bench.events": "1"})
            api.remove_container(container)
            count += 1
    return count


def run(
    *,
    seconds: float = 300.0,
    images: int = 1000,
    containers: int = 1000,
    interval: float = 3.0,
    warmup: float = 15.0,
    exited: bool = False,
    size_mb: int = 2048,
) -> Section:
    kind = "exited" if exited else "created"
    section = Section(
        "footprint",
        f"footprint: `nodegc run` for {seconds:.0f} s with {images} images, {containers} "
        f"{kind} containers, a container run every {interval:g} s",
        ["measure", "value"],
    )
    scratch = Path(tempfile.mkdtemp(prefix="nodegc-bench-footprint-"))
    with isolated_engine(size_mb) as engine:
        base = base_image(engine)
        load_small_images(engine, images - 1, "bench/fp")
        make_containers(engine, base, containers, exited=exited)
        with Daemon(engine.endpoint, scratch) as daemon:
            ready = daemon.wait_ready()
            sampler = Sampler(daemon.pid, interval=1.0)
            startup_cpu = sampler.cpu_seconds()
            time.sleep(warmup)
            stop = threading.Event()
            made: list[int] = []
            driver = threading.Thread(
                target=lambda: made.append(_events(engine, base, interval, stop)), daemon=True
            )
            sampler.start()
            cpu0, t0 = sampler.cpu_seconds(), time.monotonic()
            driver.start()
            time.sleep(seconds)
            cpu1, t1 = sampler.cpu_seconds(), time.monotonic()
            stop.set()
            driver.join(30)
            sampler.stop()
            cycles = daemon.metric("nodegc_cycles_total")
            seen = daemon.metric("nodegc_images")
            exit_code = daemon.stop()
    window = t1 - t0
    cpu_percent = (cpu1 - cpu0) / window * 100
    rss_max = max(sampler.rss) / MB
    rss_first, rss_last = sampler.rss[0] / MB, sampler.rss[-1] / MB
    runs = sum(cycles.values())
    last = len(sampler.rss) - 1
    quartiles = [sampler.rss[last * k // 4] / MB for k in range(5)]
    section.rows += [
        ["window", f"{window:.0f} s (after {warmup:.0f} s warm-up)"],
        ["ready after start", f"{ready:.2f} s (first full listing done)"],
        ["CPU at ready (startup)", f"{startup_cpu:.2f} s"],
        ["CPU over the window", f"{cpu1 - cpu0:.2f} s = {cpu_percent:.2f}% of one core"],
        ["RSS max / start / end", f"{rss_max:.1f} / {rss_first:.1f} / {rss_last:.1f} MB"],
        ["RSS at 0, 1/4, 1/2, 3/4, end", " / ".join(f"{x:.1f}" for x in quartiles) + " MB"],
        ["containers run meanwhile", f"{made[0] if made else 0} (4 events each)"],
        ["GC cycles run (whole life)", f"{runs:.0f}"],
        ["images it tracked", ", ".join(f"{v:.0f}" for v in seen.values()) or "?"],
        ["exit code on SIGTERM", str(exit_code)],
    ]
    section.notes.append(f"daemon log: {daemon.log}")
    section.summary += [
        Row(
            "footprint",
            f"RSS max, {seconds:.0f} s window",
            f"{rss_max:.1f} MB",
            f"< {GOAL_RSS_MB:.0f} MB",
            rss_max < GOAL_RSS_MB,
        ),
        Row(
            "footprint",
            f"CPU, {seconds:.0f} s window",
            f"{cpu_percent:.2f}% of a core",
            f"< {GOAL_CPU_PERCENT:.0f}%",
            cpu_percent < GOAL_CPU_PERCENT,
        ),
    ]
    return section
