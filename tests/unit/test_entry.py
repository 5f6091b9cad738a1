"""The `nodegc` command leaves without the interpreter's teardown (`cli.entry`): nothing it
wrote may be lost on the way out, and its exit code is main's."""

from __future__ import annotations

import os
import subprocess
import sys

from nodegc.config import example_toml

# Buffered as a user's shell has it (PYTHONUNBUFFERED would hide a lost flush).
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _nodegc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nodegc", *args],
        capture_output=True, text=True, timeout=120, env=BUFFERED,
    )  # fmt: skip


def test_everything_written_to_a_pipe_arrives() -> None:
    """stdout into a pipe is block-buffered: an exit that skipped the flush would lose it."""
    done = _nodegc("config", "--example")
    assert done.returncode == 0, done.stderr
    assert done.stdout == example_toml()


def test_the_exit_code_and_message_of_main_are_kept() -> None:
    done = _nodegc("report", "--state-dir", "")
    assert done.returncode == 2
    assert "state" in done.stderr and "Traceback" not in done.stderr


def test_a_reader_that_goes_away_is_no_traceback() -> None:
    """`nodegc config --example | head -1`: the pipe closes before the last flush."""
    done = subprocess.run(
        f"{sys.executable} -m nodegc config --example | head -c 1",
        shell=True, capture_output=True, text=True, timeout=120, env=BUFFERED,
    )  # fmt: skip
    assert done.stdout == example_toml()[:1]
    assert "Traceback" not in done.stderr
