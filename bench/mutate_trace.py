"""A pytest plugin for bench/mutate.py: which lines of nodegc/policy each unit test runs.

Loaded with `-p bench.mutate_trace` and MUTATE_TRACE_DIR (the policy directory of the tree under
test) and MUTATE_TRACE_OUT (a JSON file) set: each test (setup, call and teardown) runs under a
line tracer that looks only into frames of code in MUTATE_TRACE_DIR (every other frame is left
untraced after its first event), in every thread. The JSON maps each test's node id to its
duration and the (file, line) pairs it ran. A mutant of a line no test runs cannot be noticed;
a mutant of a line only some tests run needs only those.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

_DIR = os.environ.get("MUTATE_TRACE_DIR", "")
_OUT = os.environ.get("MUTATE_TRACE_OUT", "")
_lines: set[tuple[str, int]] = set()
_seen: dict[str, dict[str, Any]] = {}


def _local(frame: FrameType, event: str, _arg: object) -> Any:
    if event == "line":
        _lines.add((frame.f_code.co_filename, frame.f_lineno))
    return _local


def _global(frame: FrameType, event: str, _arg: object) -> Any:
    if event == "call" and frame.f_code.co_filename.startswith(_DIR):
        _lines.add((frame.f_code.co_filename, frame.f_lineno))
        return _local
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: object) -> Iterator[None]:
    if not _DIR:
        yield
        return
    _lines.clear()
    started = time.monotonic()
    threading.settrace(_global)
    sys.settrace(_global)
    try:
        yield
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
    _seen[item.nodeid] = {
        "seconds": time.monotonic() - started,
        "lines": sorted([os.path.relpath(f, _DIR), n] for f, n in _lines),
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _OUT:
        with open(_OUT, "w") as out:
            json.dump(_seen, out)
