"""Where a `nodegc report --output json` spends its time: one report run in this process under
cProfile, with every engine request (method, path, bytes, seconds) and the process's CPU.

    .venv/bin/python -m bench.reportprofile --state-dir DIR --runtime-endpoint unix:///S [--top N]
    .venv/bin/python -m bench.reportprofile ... --command once -- --image-gc-high-threshold=1 ...

(`--command once`: a `nodegc once` instead, the arguments after `--` added to its command line.)

The state directory is used as given (copy a warm one first to keep it as it was). cProfile sees
the main thread only: the container listing, asked in a thread at the same time as the image
listing, shows in the request lines (its wait) and in `CPU`, not in the function table.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import sys
import time
from collections.abc import Callable
from typing import Any


def _timed_requests(log: list[tuple[str, str, int, float]]) -> None:
    """Record each request of the adapter's plain path and of the SDK's."""
    import requests.adapters

    from nodegc.runtime.docker import transport

    plain = transport.PlainHTTP.exchange

    def exchange(self: Any, method: str, path: str) -> Any:
        started = time.perf_counter()
        answer = plain(self, method, path)
        log.append((method, path.split("?")[0], len(answer[2]), time.perf_counter() - started))
        return answer

    transport.PlainHTTP.exchange = exchange  # type: ignore[method-assign]
    send: Callable[..., Any] = requests.adapters.HTTPAdapter.send

    def sdk_send(self: Any, request: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        response = send(self, request, **kwargs)
        path = str(request.path_url).split("?")[0]
        log.append((request.method, path, len(response.content), time.perf_counter() - started))
        return response

    requests.adapters.HTTPAdapter.send = sdk_send  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reportprofile", description=__doc__)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--runtime-endpoint", required=True)
    p.add_argument("--top", type=int, default=40, help="functions shown (40)")
    p.add_argument("--sort", default="cumulative", help="pstats order (cumulative; tottime...)")
    p.add_argument("--save", help="also write the profile to this file (pstats, snakeviz...)")
    p.add_argument("--command", default="report", choices=["report", "once"])
    p.add_argument("extra", nargs="*", help="more arguments for the command (after --)")
    args = p.parse_args(argv)
    log: list[tuple[str, str, int, float]] = []
    _timed_requests(log)
    from nodegc.cli import main as nodegc_main

    argv_report = [
        args.command, "--output", "json", "--state-dir", args.state_dir,
        "--runtime-endpoint", args.runtime_endpoint, "--log-level", "warning", *args.extra,
    ]  # fmt: skip
    profile = cProfile.Profile()
    stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        profile.enable()
        code = nodegc_main(argv_report)
    finally:
        profile.disable()
        sys.stdout.close()
        sys.stdout = stdout
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"exit {code}; wall {wall:.2f} s; CPU {cpu:.2f} s; peak RSS {rss:.0f} MB")
    print(f"load average {os.getloadavg()[0]:.1f}; requests:")
    for method, path, size, seconds in log:
        print(f"  {method:6} {path:60} {size:>12,} B {seconds:7.3f} s")
    if args.save:
        profile.dump_stats(args.save)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
