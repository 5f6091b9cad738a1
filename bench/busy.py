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

from bench.common import (
    MiB,
    Row,
    Section,
    inventory_count,
    isolated_engine,
    load_small_images,
    median,
)
from bench.engine import CONTENDERS, Contender, compile_sources, nodegc_at, source_of

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


def run(
    images: int = 24, rounds: int = 3, refs: tuple[str, ...] = (), size_mb: int = 1024
) -> Section:
    # The engine benchmark's `nodegc once` (cold: this tree, and each ref's): the same command.
    contenders: list[Contender] = [CONTENDERS["nodegc once (cold)"], *map(nodegc_at, refs)]
    compile_sources([source_of(r) for r in refs])
    section = Section(
        "busy",
        f"busy disk: `nodegc once` removing {images} unused 1 MiB images while a writer appends "
        f"{WRITE_BYTES // 1024} KiB every {WRITE_EVERY * 1000:.0f} ms, {rounds} rounds",
        ["contender", "median s", "min s", "max s", "per round", "left"],
    )
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    left: dict[str, list[str]] = {c.name: [] for c in contenders}
    scratch = Path(tempfile.mkdtemp(prefix="nodegc-bench-busy-"))
    with isolated_engine(size_mb) as engine:
        for round_no in range(rounds):
            for n, contender in enumerate(contenders):
                load_small_images(engine, images, f"bench/busy{round_no}x{n}", MiB)
                home = scratch / f"c{n}"  # its state directory: home/state, kept across rounds
                home.mkdir(exist_ok=True)
                with Writer(Path(engine.mountpoint) / "busy-writer.log"):
                    seconds = contender.run(engine, home, scratch / f"once{n}.log")
                times[contender.name].append(seconds)
                left[contender.name].append(str(inventory_count(engine)[1]))
    for contender in contenders:
        values = times[contender.name]
        section.rows.append([
            contender.name, f"{median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}",
            " ".join(f"{v:.2f}" for v in values), " ".join(left[contender.name]),
        ])  # fmt: skip
    store, first = getattr(engine, "store", "overlay2"), contenders[0].name
    section.summary.append(
        Row("busy", f"once, busy disk, {images} images ({store})", f"{median(times[first]):.2f} s")
    )
    section.notes.append(f"logs in {scratch}; images left after each round in `left`")
    return section
