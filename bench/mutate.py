"""mutate: mutation testing of nodegc/policy, run by hand (not part of the test command).

Applies realistic mutations to the policy, one at a time, each in a copy of the tree, runs the
unit tests against it (`pytest -x -q` over tests/unit in two stages: the policy's own test files
first, so that a killed mutant fails fast, then the rest) and reports the mutants no test kills
(the survivors).

Mutations (each a single change in the AST, the module written back with `ast.unparse`):
  boundary   a comparison's boundary moved: `<` <-> `<=`, `>` <-> `>=`
  negate     a comparison negated: `==` <-> `!=`, `in` <-> `not in`, `is` <-> `is not`
  and-or     `and` <-> `or`
  drop-term  one operand of an `and`/`or` dropped (the condition without it)
  drop-not   `not x` -> `x`
  drop-if    an `if`/`elif` condition replaced by False (the branch never taken)
  off-by-one an integer literal in a comparison or arithmetic, plus one
  min-max    `min(...)` <-> `max(...)`

    python -m bench.mutate [--tree DIR] [--jobs N] [--only SUBSTRING] [--out FILE.json]
    python -m bench.mutate --per-module 6 --examples 25 --jobs 2 --out bench/results/x.json

`--per-module K`: a sample stratified by module: every boundary and off-by-one mutant, and K of
the other kinds drawn at random from each policy module (every module is represented).
Test files that never import `nodegc.policy` (checked once, by importing each in a fresh
interpreter, and by their text naming no policy, collector, daemon or CLI) are not run: no
mutant of the policy can change what they see. The JSON (`--out`) is rewritten after every
mutant (an interrupted run keeps what it measured), with the score per module.

`--tree`: the checkout to mutate (default: this one; a copy is made per job, the tree itself is
never changed). The copies are imported first (PYTHONPATH), ahead of an editable install; each
run begins with a sanity mutant (a policy function that raises) that must be killed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.mutations import Mutant, mutants_of, mutated_source

ROOT = Path(__file__).resolve().parents[1]
TARGET = "nodegc/policy"
FIRST = [  # the policy's own tests first: a killed mutant fails fast
    "test_boundaries.py",
    "test_policy_images.py",
    "test_policy_containers.py",
    "test_build_cache.py",
    "test_space.py",
    "test_properties_families.py",
    "test_references.py",
    "test_kubelet.py",
    "test_finish_times.py",
    "test_finish_time_boundaries.py",
    "test_history.py",
]
TIMEOUT = 900.0  # seconds for one run of the unit tests (a mutant that loops is killed)
MENTIONS = ("policy", "collect", "daemon", "nodegc.cli", "Collector")
UNRELATED: set[str] = set()  # test file names that cannot see a policy mutant (see blind_files)


@dataclass
class Result:
    mutant: Mutant
    killed: bool
    seconds: float
    detail: str


def _imports_policy(tree_root: Path, name: str) -> bool:
    probe = (
        "import sys; import tests.unit.{}; "
        "print(int(any(k.startswith('nodegc.policy') for k in sys.modules)))"
    ).format(name.removesuffix(".py"))
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tree_root,
        env={**os.environ, "PYTHONPATH": str(tree_root)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return proc.returncode != 0 or proc.stdout.strip().endswith("1")  # in doubt: run it


def blind_files(tree_root: Path) -> set[str]:
    """Unit test files that cannot notice a mutant of the policy: importing one loads no
    `nodegc.policy` module, and its text names neither the policy nor a package that uses it
    (so no lazy import inside a test reaches it either)."""
    blind = set()
    for path in sorted((tree_root / "tests" / "unit").glob("test_*.py")):
        text = path.read_text()
        if any(word in text for word in MENTIONS):
            continue
        if not _imports_policy(tree_root, path.name):
            blind.add(path.name)
    return blind


def test_stages(tree_root: Path) -> list[list[str]]:
    """The unit test files in two stages: the policy's own first (a killed mutant stops there,
    without collecting the rest), then every other one that can see the policy."""
    unit = tree_root / "tests" / "unit"
    first = [f"tests/unit/{name}" for name in FIRST if (unit / name).exists()]
    rest = sorted(
        f"tests/unit/{p.name}"
        for p in unit.glob("test_*.py")
        if p.name not in FIRST and p.name not in UNRELATED
    )
    return [first, rest]


def trace(copy_root: Path) -> dict[str, dict]:
    """Which lines of the policy each unit test runs (bench/mutate_trace.py), over the
    unmutated copy; every test must pass."""
    out = copy_root / "job" / "trace.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(copy_root), str(ROOT / "bench")]),
        "MUTATE_TRACE_DIR": str(copy_root / TARGET) + os.sep,
        "MUTATE_TRACE_OUT": str(out),
    }
    files = [f for stage in test_stages(copy_root) for f in stage]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mutate_trace"]
    proc = subprocess.run(
        [*argv, *files], cwd=copy_root, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    tail = (proc.stdout.strip().splitlines() or [""])[-1]
    assert proc.returncode == 0, f"the unmutated tree fails its unit tests: {tail}"
    return json.loads(out.read_text())


def tests_reaching(traced: dict[str, dict], mutant: Mutant) -> list[str]:
    """Node ids of the tests that run the mutant's lines, quickest first."""
    name = os.path.relpath(mutant.path, TARGET)
    lo, hi = mutant.reach
    hits = [
        (t["seconds"], nodeid)
        for nodeid, t in traced.items()
        if any(f == name and lo <= n <= hi for f, n in t["lines"])
    ]
    return [nodeid for _s, nodeid in sorted(hits)]


def run_selected(copy_root: Path, nodeids: list[str]) -> tuple[bool, str]:
    """(every one of these tests passed, the last line of pytest's output)."""
    env = {**os.environ, "PYTHONPATH": str(copy_root)}
    argv = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *nodeids]
    try:
        proc = subprocess.run(
            argv, cwd=copy_root, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return False, "timeout"
    return proc.returncode == 0, (proc.stdout.strip().splitlines() or [""])[-1]


def run_tests(copy_root: Path) -> tuple[bool, str]:
    """(every unit test passed, the last line of the output of the last stage run)."""
    env = {**os.environ, "PYTHONPATH": str(copy_root)}
    argv = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    tail = ""
    for stage in test_stages(copy_root):
        try:
            proc = subprocess.run(
                [*argv, *stage],
                cwd=copy_root,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return False, "timeout"
        tail = (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode != 0:
            return False, tail
    return True, tail


def write_module(path: Path, source: str) -> None:
    """Write a module and drop its compiled copies (a .pyc is checked against the source's
    mtime in seconds and its size: never let a stale one stand in for the mutant)."""
    path.write_text(source)
    shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)


def make_copy(tree_root: Path, into: Path, examples: int = 0) -> Path:
    """A copy of the tree to mutate; with `examples`, its hypothesis properties draw that many
    examples (a profile loaded after the unit one; explicit @settings still win)."""
    for name in ("nodegc", "tests", "docs"):  # docs: the rule index test reads architecture.md
        if (tree_root / name).exists():
            shutil.copytree(
                tree_root / name, into / name, ignore=shutil.ignore_patterns("__pycache__")
            )
    shutil.copy2(tree_root / "pyproject.toml", into / "pyproject.toml")
    if examples:
        with (into / "tests" / "unit" / "builders.py").open("a") as builders:
            builders.write(
                f'\nsettings.register_profile("mutation", settings.get_profile("unit"), '
                f'max_examples={examples})\nsettings.load_profile("mutation")\n'
            )
    return into


def run_one(
    copy_root: Path, mutant: Mutant, original: str, traced: dict[str, dict] | None = None
) -> Result:
    """Run the tests against one mutant: with `traced`, only the tests that run its lines (none:
    a survivor without a run); a mutant outside any function, every test file."""
    target = copy_root / mutant.path
    started = time.monotonic()
    selected = tests_reaching(traced, mutant) if traced and mutant.reach != (0, 0) else None
    if selected == []:
        return Result(mutant, False, 0.0, "no test runs this line")
    try:
        write_module(target, mutated_source(original, mutant.site))
        if selected is None:
            passed, tail = run_tests(copy_root)
        else:
            passed, tail = run_selected(copy_root, selected)
    finally:
        write_module(target, original)
    return Result(mutant, not passed, time.monotonic() - started, tail)


def sanity(copy_root: Path) -> None:
    """A mutant every test run must notice: the byte rule raises. Proves the copy is imported."""
    path = copy_root / TARGET / "images.py"
    original = path.read_text()
    broken = original.replace(
        "    if not under_disk_pressure(fs, high):\n        return 0\n",
        "    raise RuntimeError('sanity mutant')\n",
    )
    assert broken != original, "sanity mutant not applied"
    try:
        write_module(path, broken)
        passed, tail = run_tests(copy_root)
    finally:
        write_module(path, original)
    assert not passed, f"the sanity mutant survived: the copy is not what the tests import ({tail})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutate", description=__doc__)
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="", help="only mutants whose path contains this")
    parser.add_argument("--kinds", default="", help="comma-separated kinds (default: all)")
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        help="every boundary and off-by-one mutant, and this many of the others drawn at random "
        "(0: every mutant)",
    )
    parser.add_argument(
        "--per-module",
        type=float,
        default=0,
        help="every boundary and off-by-one mutant, and this share (0 < x < 1) of the others of "
        "each module drawn at random, at least 3 per module (a sample stratified by module; run "
        "round-robin over the modules, so that a run cut short is still stratified)",
    )
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument(
        "--examples", type=int, default=0, help="hypothesis examples per property (0: as set)"
    )
    parser.add_argument("--skip", type=int, default=0, help="skip the first N (a resumed run)")
    parser.add_argument(
        "--only-listed",
        type=Path,
        help="a file of 'path:line kind what' lines (as --list prints): only those mutants",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument(
        "--all-tests",
        action="store_true",
        help="run every unit test file for each mutant (default: only the tests that run the "
        "mutant's lines, found by one traced run of the unmutated suite)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--merge",
        type=Path,
        help="an earlier run's JSON: this run's results replace its results for the same mutants "
        "(e.g. its survivors run again with new tests) and the whole is scored and written to "
        "--out",
    )
    args = parser.parse_args(argv)
    tree_root = args.tree.resolve()
    files = sorted(
        str(p.relative_to(tree_root))
        for p in (tree_root / TARGET).glob("*.py")
        if args.only in str(p)
    )
    kinds = set(filter(None, args.kinds.split(",")))
    mutants = [m for f in files for m in mutants_of(tree_root, f) if not kinds or m.kind in kinds]
    if args.sample:
        pinned = [m for m in mutants if m.kind in ("boundary", "off-by-one")]
        others = [m for m in mutants if m.kind not in ("boundary", "off-by-one")]
        drawn = random.Random(args.seed).sample(others, min(args.sample, len(others)))
        mutants = [m for m in mutants if m in pinned or m in drawn]
    if args.per_module:
        mutants = stratified(mutants, args.per_module, args.seed)
    mutants = mutants[args.skip :]
    if args.only_listed:
        wanted = set(args.only_listed.read_text().splitlines())
        mutants = [m for m in mutants if f"{m.path}:{m.line} {m.kind} {m.what}" in wanted]
    if args.list:
        for m in mutants:
            print(f"{m.path}:{m.line} {m.kind} {m.what}")
        print(f"{len(mutants)} mutants")
        return 0
    originals = {f: (tree_root / f).read_text() for f in files}
    workdir = Path(tempfile.mkdtemp(prefix="nodegc-mutate-"))
    try:
        copies = [
            make_copy(tree_root, workdir / f"job{j}", args.examples)
            for j in range(max(1, args.jobs))
        ]
        for c in copies:
            (c / "job").mkdir()
        UNRELATED.update(blind_files(copies[0]))
        print(f"not run (never import the policy): {', '.join(sorted(UNRELATED))}", flush=True)
        sanity(copies[0])
        traced = None if args.all_tests else trace(copies[0])
        if traced is not None:
            print(f"traced {len(traced)} tests", flush=True)
        free = list(copies)
        results: list[Result] = []

        def job(m: Mutant) -> Result:
            root = free.pop()
            try:
                return run_one(root, m, originals[m.path], traced)
            finally:
                free.append(root)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(copies)) as pool:
            for n, r in enumerate(pool.map(job, mutants), 1):
                results.append(r)
                mark = "killed " if r.killed else "SURVIVED"
                m = r.mutant
                print(f"[{n}/{len(mutants)}] {mark} {m.path}:{m.line} {m.kind} {m.what} "
                      f"({r.seconds:.0f}s) {r.detail}", flush=True)  # fmt: skip
                if args.out:
                    write_json(args.out, results)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.merge:
        results = merged(args.merge, results)
    killed = sum(r.killed for r in results)
    score = killed / len(results) if results else 1.0
    print(f"\n{killed}/{len(results)} killed: score {score:.1%} "
          f"({time.monotonic() - started:.0f} s, {args.jobs} jobs)")  # fmt: skip
    for path, (k, total) in per_module(results).items():
        print(f"  {path}: {k}/{total}")
    for r in results:
        if not r.killed:
            print(f"  survivor {r.mutant.path}:{r.mutant.line} {r.mutant.kind} {r.mutant.what}")
    if args.out:
        write_json(args.out, results)
    return 0


def merged(earlier: Path, results: list[Result]) -> list[Result]:
    """An earlier run's results with this run's in place of the same mutants."""
    fields = ("path", "site", "kind", "line", "what")
    now = {tuple(getattr(r.mutant, f) for f in fields): r for r in results}
    out = []
    for row in json.loads(earlier.read_text())["results"]:
        key = tuple(row[f] for f in fields)
        if key in now:
            out.append(now.pop(key))
        else:
            mutant = Mutant(*key, reach=tuple(row.get("reach", (0, 0))))  # type: ignore[arg-type]
            out.append(Result(mutant, row["killed"], row["seconds"], row["detail"]))
    return out + list(now.values())


def stratified(mutants: list[Mutant], share: float, seed: int) -> list[Mutant]:
    """Every boundary and off-by-one mutant, and `share` of the others of each module (at least
    3), in round-robin order over the modules."""
    rng = random.Random(seed)
    by_module: list[list[Mutant]] = []
    for path in sorted({m.path for m in mutants}):
        mine = [m for m in mutants if m.path == path]
        pinned = [m for m in mine if m.kind in ("boundary", "off-by-one")]
        others = [m for m in mine if m not in pinned]
        k = min(len(others), max(3, round(share * len(others))))
        drawn = set(rng.sample(others, k))
        by_module.append([m for m in mine if m in pinned or m in drawn])
    longest = max((len(ms) for ms in by_module), default=0)
    return [ms[i] for i in range(longest) for ms in by_module if i < len(ms)]


def per_module(results: list[Result]) -> dict[str, tuple[int, int]]:
    counts: dict[str, tuple[int, int]] = {}
    for r in results:
        k, total = counts.get(r.mutant.path, (0, 0))
        counts[r.mutant.path] = (k + r.killed, total + 1)
    return dict(sorted(counts.items()))


def write_json(out: Path, results: list[Result]) -> None:
    killed = sum(r.killed for r in results)
    document = {
        "score": killed / len(results) if results else 1.0,
        "killed": killed,
        "total": len(results),
        "modules": {p: {"killed": k, "total": t} for p, (k, t) in per_module(results).items()},
        "not_run": sorted(UNRELATED),
        "results": [
            {**asdict(r.mutant), "killed": r.killed, "seconds": r.seconds, "detail": r.detail}
            for r in results
        ],
    }
    out.write_text(json.dumps(document, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
