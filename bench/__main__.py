"""`bench/run [BENCH ...] [options]`: run nodegc's benchmarks and print a table.

BENCH is one or more of plan, engine, calls, footprint, relief, or all (the default), and
bignode (only when named: its node takes many minutes to build) and busy (only when named: a
busy disk on the containerd image store, `NGC_TEST_ENGINE_ROOT=forky
NGC_TEST_DOCKER_STORE=containerd`).
Everything but `plan` needs root: each benchmark starts its own isolated dockerd on a
loop-mounted ext4 (nodegc.testing.engine) and never touches /var/run/docker.sock; `engine
--engine podman` an isolated Podman service (nodegc.testing.podman).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench.common import Row, Section, machine, render_section, render_summary, table

BENCHES = ("plan", "engine", "calls", "footprint", "relief")
# Run only when named (building its node takes many minutes): not part of `all`.
EXTRA = ("bignode", "busy")


def _sizes(text: str) -> list[tuple[int, int]]:
    """ "1000x10000,10000x100000" -> [(1000, 10000), (10000, 100000)]."""
    out = []
    for part in text.split(","):
        images, _, containers = part.partition("x")
        out.append((int(images), int(containers)))
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("benches", nargs="*", metavar="BENCH", help="|".join([*BENCHES, "all"]))
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every result as JSON")
    p.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="run nothing: print the tables of a run saved with --json (with --markdown: for docs)",
    )
    g = p.add_argument_group("plan")
    g.add_argument(
        "--plan-sizes",
        type=_sizes,
        default=None,
        metavar="IxC,...",
        help="images x containers per size (default 1000x10000,10000x100000,50000x500000)",
    )
    g.add_argument("--plan-repeats", type=int, default=3, help="plans per size, best kept (3)")
    g = p.add_argument_group("engine")
    g.add_argument(
        "--engine",
        choices=["docker", "podman"],
        default="docker",
        help="engine: an isolated dockerd (docker prune, dcgc) or an isolated Podman service "
        "(podman prune) (docker)",
    )
    g.add_argument("--rounds", type=int, default=3, help="rounds of every contender (3)")
    g.add_argument("--containers", type=int, default=1000, help="dead containers (1000)")
    g.add_argument("--images", type=int, default=200, help="unused images (200)")
    g.add_argument(
        "--exited",
        action="store_true",
        help="engine/footprint: dead containers are real exited `true` runs (about 0.15 s "
        "each to make) instead of created, never started",
    )
    g.add_argument(
        "--contenders",
        default=None,
        help="comma-separated subset of: nodegc once (cold), nodegc once (warm), docker "
        "prune, dcgc 0.7.4 (with --engine podman: podman prune instead of the last two)",
    )
    g.add_argument(
        "--baseline-ref",
        metavar="REF",
        action="append",
        help="also time `nodegc once` (cold; bignode: `report`, cold and warm) as of this git "
        "ref, or of a directory holding a nodegc/ package (before/after in one run); may be "
        "repeated",
    )
    g.add_argument(
        "--once-log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="nodegc's --log-level in the engine race (warning: the removal table only; info: "
        "a log line per removal too)",
    )
    g = p.add_argument_group("calls")
    g.add_argument("--calls-sizes", default="100,1000", help="N containers per run (100,1000)")
    g.add_argument(
        "--calls-created",
        action="store_true",
        help="containers created, never started (no finish-time inspects) instead of exited",
    )
    g = p.add_argument_group("footprint")
    g.add_argument("--seconds", type=float, default=300.0, help="measured window (300)")
    g.add_argument("--interval", type=float, default=3.0, help="a container run every (3) s")
    g = p.add_argument_group("relief")
    g.add_argument(
        "--periods", default="10s,1s", help="pressure_check_period values to time (10s,1s)"
    )
    g.add_argument("--repeats", type=int, default=3, help="crossings per period (3)")
    g = p.add_argument_group("bignode (only when named)")
    g.add_argument(
        "--bignode-size", type=_sizes, default=[(5000, 20000)], metavar="IxC",
        help="images x created containers (5000x20000)",
    )  # fmt: skip
    g.add_argument("--bignode-rounds", type=int, default=3, help="warm reports (3)")
    g.add_argument(
        "--bignode-keep", type=Path, metavar="FILE",
        help="leave the engine running, described in FILE; a later run with FILE reuses it",
    )  # fmt: skip
    g.add_argument(
        "--bignode-timeout", default="", metavar="DURATION",
        help="the reports' --runtime-request-timeout (nodegc's default: 30s)",
    )  # fmt: skip
    g.add_argument(
        "--bignode-profile", action="store_true",
        help="one more warm report in-process under cProfile, with each request's bytes and "
        "seconds (bench.reportprofile); --baseline-ref REF: REF's reports alternated with these",
    )  # fmt: skip
    g = p.add_argument_group("busy (only when named; --rounds, --baseline-ref)")
    g.add_argument("--busy-images", type=int, default=24, help="unused 1 MiB images (24)")
    return p


def main(argv: list[str] | None = None) -> int:
    # SIGTERM unwinds like Ctrl-C, so every isolated engine is torn down on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parser().parse_args(argv)
    if args.from_json:
        return _reprint(args.from_json, args.markdown)
    unknown = [b for b in args.benches if b not in (*BENCHES, *EXTRA, "all")]
    if unknown:
        names = ", ".join((*BENCHES, *EXTRA))
        parser().error(f"unknown benchmark {unknown[0]!r}: choose from {names}, all")
    chosen = [b for b in args.benches if b != "all"] or list(BENCHES)
    if "all" in args.benches:
        chosen = list(BENCHES)
    runners: dict[str, Callable[[], Section]] = {
        "plan": lambda: _plan(args),
        "engine": lambda: _engine(args),
        "calls": lambda: _calls(args),
        "footprint": lambda: _footprint(args),
        "relief": lambda: _relief(args),
        "bignode": lambda: _bignode(args),
        "busy": lambda: _busy(args),
    }
    info = machine()
    print(("### Machine\n\n" if args.markdown else "== Machine ==\n\n") + table(
        ["nproc", "memory", "kernel", "dockerd", "python", "nodegc", "cpu"],
        [[info.get(k, "?") for k in ("nproc", "memory", "kernel", "dockerd", "python",
                                      "nodegc", "cpu")]],
        args.markdown,
    ))  # fmt: skip
    print(f"\ncommand: bench/run {' '.join(argv if argv is not None else sys.argv[1:])}\n")
    sections: list[Section] = []
    for name in chosen:
        print(f"[{time.strftime('%H:%M:%S')}] running {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        section = runners[name]()
        section.notes.append(f"took {time.monotonic() - started:.0f} s")
        sections.append(section)
        print(render_section(section, args.markdown) + "\n", flush=True)
    summary = [row for s in sections for row in s.summary]
    print(render_summary(summary, args.markdown))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "argv": argv, "sections": [asdict(s) for s in sections]},
                indent=2,
            )
            + "\n"
        )
    return 0 if all(row.met is not False for row in summary) else 1


def _reprint(path: Path, markdown: bool) -> int:
    saved = json.loads(path.read_text())
    sections = [
        Section(**{**s, "summary": [Row(**r) for r in s["summary"]]}) for s in saved["sections"]
    ]
    for section in sections:
        print(render_section(section, markdown) + "\n")
    print(render_summary([row for s in sections for row in s.summary], markdown))
    return 0


def _plan(args: argparse.Namespace) -> Section:
    from bench import plan

    return plan.run(args.plan_sizes, repeats=args.plan_repeats)


def _engine(args: argparse.Namespace) -> Section:
    from bench import engine

    only = [c.strip() for c in args.contenders.split(",")] if args.contenders else None
    return engine.run(
        containers=args.containers,
        images=args.images,
        rounds=args.rounds,
        exited=args.exited,
        only=only,
        baseline_refs=args.baseline_ref,
        log_level=args.once_log_level,
        engine_kind=args.engine,
    )


def _calls(args: argparse.Namespace) -> Section:
    from bench import calls

    sizes = tuple(int(n) for n in args.calls_sizes.split(","))
    return calls.run(sizes, exited=not args.calls_created)


def _footprint(args: argparse.Namespace) -> Section:
    from bench import footprint

    return footprint.run(seconds=args.seconds, interval=args.interval, exited=args.exited)


def _relief(args: argparse.Namespace) -> Section:
    from bench import relief

    periods = tuple(p.strip() for p in args.periods.split(","))
    return relief.run(periods, repeats=args.repeats)


def _bignode(args: argparse.Namespace) -> Section:
    from bench import bignode

    ((images, containers),) = args.bignode_size
    return bignode.run(
        images,
        containers,
        args.bignode_rounds,
        args.bignode_keep,
        refs=args.baseline_ref or (),
        profile=args.bignode_profile,
        timeout=args.bignode_timeout,
    )


def _busy(args: argparse.Namespace) -> Section:
    from bench import busy

    return busy.run(args.busy_images, args.rounds, refs=tuple(args.baseline_ref or ()))


if __name__ == "__main__":
    raise SystemExit(main())
