"""What the benchmarks share: result rows and tables, the machine, engines, processes, samplers."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
MiB = 1024 * 1024

# Every object a benchmark creates carries this label, so the engine's prune filter matches
# exactly the inventory and nothing else.
BENCH_LABEL = "bench.nodegc"
BENCH_LABELS = {BENCH_LABEL: "1"}


@dataclass
class Row:
    """One line of the summary: what was measured, the figure, the goal, whether it is met."""

    bench: str
    measure: str
    value: str
    goal: str = ""
    met: bool | None = None


@dataclass
class Section:
    """A benchmark's detail table and its summary rows."""

    name: str
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    summary: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """A plain aligned table (or a Markdown one)."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(out)


def verdict(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "NO")


def render_section(section: Section, markdown: bool = False) -> str:
    head = f"### {section.title}" if markdown else f"== {section.title} =="
    parts = [head, "", table(section.headers, section.rows, markdown)]
    if section.notes:
        parts += [""] + [("- " if markdown else "  * ") + n for n in section.notes]
    return "\n".join(parts)


def render_summary(rows: Sequence[Row], markdown: bool = False) -> str:
    headers = ["benchmark", "measure", "result", "goal", "met"]
    body = [[r.bench, r.measure, r.value, r.goal, verdict(r.met)] for r in rows]
    head = "### Summary" if markdown else "== Summary =="
    return "\n".join([head, "", table(headers, body, markdown)])


# -- the machine ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """nproc, memory, kernel, CPU model, Python, dockerd and nodegc versions."""
    info = {
        "nproc": str(os.cpu_count()),
        "memory": _meminfo_total(),
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
    }
    dockerd = shutil.which("dockerd", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")
    if dockerd:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            info["dockerd"] = subprocess.run(
                [dockerd, "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
    from nodegc import __version__

    info["nodegc"] = __version__
    return info


def _meminfo_total() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "?"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


# -- processes --------------------------------------------------------------------------------


def nodegc_argv(*args: str, other_tree: bool = False) -> list[str]:
    """How a user starts nodegc: the installed console script beside this Python, else -m.
    `other_tree`: nodegc as of another tree put first on PYTHONPATH (a git ref): always -m, as the
    console script names this tree's entry point, which that tree may not have; and with -P, or
    `-m` puts the working directory first on sys.path, and the benchmarks run from this
    repository: every @REF ran this tree's nodegc from 85671f3 to the fix (`imports_from`)."""
    script = Path(sys.executable).parent / "nodegc"
    if script.exists() and not other_tree:
        return [str(script), *args]
    return [sys.executable, *(["-P"] if other_tree else []), "-m", "nodegc", *args]


def imports_from(src: Path) -> Path:
    """`src`, once a process started as `nodegc_argv(other_tree=True)` starts it, with
    PYTHONPATH=src, from here, is seen to import nodegc from `src` (else RuntimeError: a
    baseline that ran this tree would compare it with itself)."""
    argv = [*nodegc_argv(other_tree=True)[:-2], "-c", "import nodegc; print(nodegc.__file__)"]
    env = clean_env({"PYTHONPATH": str(src)})
    found = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    if not Path(found.strip()).resolve().is_relative_to(src.resolve()):
        raise RuntimeError(f"nodegc of {src} imports {found.strip()} instead")
    return src


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without NODEGC_* and DOCKER_* (nothing leaks into a contender), and
    without PYTHONDONTWRITEBYTECODE: nodegc runs as installed, from its compiled modules, not
    compiling every module from source in each process (0.1-0.3 s of each `nodegc` here)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NODEGC_", "DOCKER_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(extra or {})
    return env


def timed(argv: Sequence[str], env: Mapping[str, str], log: Path | None = None) -> float:
    """Run one process to its end; wall seconds from fork to exit (process start included)."""
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        started = time.perf_counter()
        subprocess.run(argv, env=dict(env), stdout=out, stderr=out, check=False)
        return time.perf_counter() - started
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- engines ----------------------------------------------------------------------------------


def require_root() -> None:
    from nodegc.testing.engine import missing_requirements

    problems = missing_requirements()
    if problems:
        raise SystemExit("this benchmark needs an isolated engine: " + "; ".join(problems))


@contextlib.contextmanager
def isolated_engine(size_mb: int, kind: str = "docker") -> Iterator[Any]:
    """A private dockerd (nodegc.testing.engine) or, with `kind="podman"`, a private Podman
    service (nodegc.testing.podman) on its own `size_mb` ext4, removed afterwards; the engine
    of the root `$NGC_TEST_ENGINE_ROOT` names (forky: Docker 28, Podman 5) when it is set, in the
    image store `$NGC_TEST_DOCKER_STORE` names (overlay2 or containerd), as the tests do."""
    require_root()
    from nodegc.testing.engine import IsolatedEngine
    from nodegc.testing.engine_root import ENV_STORE, root_from_env
    from nodegc.testing.podman import IsolatedPodman
    from nodegc.testing.rooted import RootedEngine, RootedPodman

    root = root_from_env()
    if root is not None:
        if kind == "podman":
            with RootedPodman(size_mb, root=root) as engine:
                yield engine
            return
        store = os.environ.get(ENV_STORE, "overlay2")  # as the tests read it
        with RootedEngine(size_mb, root=root, store=store) as engine:  # type: ignore[arg-type]
            yield engine
        return
    harness = IsolatedPodman if kind == "podman" else IsolatedEngine
    with harness(size_mb=size_mb) as engine:
        yield engine


def make_containers(
    engine: Any,
    image: str,
    n: int,
    *,
    exited: bool,
    labels_fn: Callable[[int], Mapping[str, str]] | None = None,
    workers: int = 4,
) -> list[str]:
    """`n` dead containers of `image`: never started (state `created`, fast) or `exited` (a
    real `true` run each: create, start, wait; about 0.15 s each on a small machine)."""
    if n <= 0:
        return []

    def labels(i: int) -> dict[str, str]:
        return {**BENCH_LABELS, **(labels_fn(i) if labels_fn else {})}

    if exited:
        return list(engine.create_dead_containers(image, n, labels, workers=workers))

    def batch(indices: range) -> list[tuple[int, str]]:
        with engine.api() as api:
            host_config = api.create_host_config(network_mode="none")
            return [
                (
                    i,
                    api.create_container(
                        image, command=["true"], labels=labels(i), host_config=host_config
                    )["Id"],
                )
                for i in indices
            ]

    ids = [""] * n
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for results in pool.map(batch, [range(k, n, workers) for k in range(workers)]):
            for i, container_id in results:
                ids[i] = container_id
    return ids


def load_small_images(engine: Any, n: int, prefix: str, size_bytes: int = 4096) -> list[str]:
    """`n` new, unused, labelled images of `size_bytes` each, loaded in batches of 200."""
    from nodegc.testing.images import build_image_tar

    ids: list[str] = []
    for start in range(0, n, 200):
        ids += engine.load_many(
            build_image_tar([f"{prefix}/img{i}:1"], size_bytes, labels=BENCH_LABELS)
            for i in range(start, min(n, start + 200))
        )
    return ids


def base_image(engine: Any, tag: str = "bench/busybox:1") -> str:
    """The labelled busybox image the benchmark's containers run (so prune -a can take it)."""
    from nodegc.testing.images import busybox_image_tar

    return str(engine.load(busybox_image_tar([tag], labels=BENCH_LABELS)))


def inventory_count(engine: Any) -> tuple[int, int]:
    """(containers, images) on the engine."""
    with engine.api() as api:
        return len(api.containers(all=True)), len(api.images())


# -- sampling a process -----------------------------------------------------------------------


class Sampler:
    """Samples a process's RSS every `interval` seconds in a thread (psutil)."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.interval = interval
        self.rss: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                self.rss.append(self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
