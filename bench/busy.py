"""busy: `nodegc once` removing unused images under pressure while the node's other writers keep
filling the disk, on an engine that frees after its removals return (the containerd image store,
`NGC_TEST_ENGINE_ROOT=forky NGC_TEST_DOCKER_STORE=containerd`; on overlay2 nothing is waited for).

Each round loads `images` unused images of 1 MiB, starts a writer that appends 16 KiB to a file
on the engine's filesystem every 20 ms (container logs, containers being created: the disk of a
busy node is never still), and runs `nodegc once` with a target it cannot reach (high 1%, low 0%:
every image goes, and after each removal the closed loop asks whether the disk has settled).
This tree and each baseline ref run in turns on the same engine, reseeded each round.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from bench.common import (
    MiB,
    Row,
    Section,
    clean_env,
    inventory_count,
    isolated_engine,
    load_small_images,
    median,
    nodegc_argv,
    timed,
)
from bench.engine import ONCE_FLAGS, compile_sources, source_of

WRITE_BYTES, WRITE_EVERY = 16 * 1024, 0.02


class Writer:
    """Appends WRITE_BYTES to `path` every WRITE_EVERY seconds (fsync'd) until stopped."""

    def __init__(self, path: Path) -> None:
        self.path, self.stop = path, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        chunk = os.urandom(WRITE_BYTES)
        with self.path.open("ab") as out:
            while not self.stop.wait(WRITE_EVERY):
                out.write(chunk)
                out.flush()
                os.fsync(out.fileno())


def _argv(engine: Any, state: Path, ref: str | None) -> tuple[list[str], dict[str, str]]:
    args = ["once", "--state-dir", str(state), "--runtime-endpoint", engine.endpoint, *ONCE_FLAGS]
    if ref is None:
        return nodegc_argv(*args), clean_env()
    env = clean_env({"PYTHONPATH": str(source_of(ref))})
    return nodegc_argv(*args, other_tree=True), env


def run(
    images: int = 24, rounds: int = 3, refs: tuple[str, ...] = (), size_mb: int = 1024
) -> Section:
    contenders: list[str | None] = [None, *refs]
    compile_sources([source_of(r) for r in refs])
    section = Section(
        "busy",
        f"busy disk: `nodegc once` removing {images} unused 1 MiB images while a writer appends "
        f"{WRITE_BYTES // 1024} KiB every {WRITE_EVERY * 1000:.0f} ms, {rounds} rounds",
        ["contender", "median s", "min s", "max s", "per round", "left"],
    )
    times: dict[str | None, list[float]] = {c: [] for c in contenders}
    left: dict[str | None, list[str]] = {c: [] for c in contenders}
    scratch = Path(tempfile.mkdtemp(prefix="nodegc-bench-busy-"))
    with isolated_engine(size_mb) as engine:
        for round_no in range(rounds):
            for n, ref in enumerate(contenders):
                load_small_images(engine, images, f"bench/busy{round_no}x{n}", MiB)
                argv, env = _argv(engine, scratch / f"state{n}", ref)
                with Writer(Path(engine.mountpoint) / "busy-writer.log"):
                    times[ref].append(timed(argv, env, scratch / f"once{n}.log"))
                left[ref].append(str(inventory_count(engine)[1]))
    for ref in contenders:
        name = "this tree" if ref is None else f"@{ref}"
        values = times[ref]
        section.rows.append([
            name, f"{median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}",
            " ".join(f"{v:.2f}" for v in values), " ".join(left[ref]),
        ])  # fmt: skip
    store = getattr(engine, "store", "overlay2")
    section.summary.append(
        Row("busy", f"once, busy disk, {images} images ({store})", f"{median(times[None]):.2f} s")
    )
    section.notes.append(f"logs in {scratch}; images left after each round in `left`")
    return section
