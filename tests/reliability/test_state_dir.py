"""State directory trouble: read-only, full, not a directory, not ours.

`once` and `run` refuse to start when history could not be saved (it would be lost): exit 2 with
one line, before the engine is contacted. `report` still works and says history is read-only.
Mounts are real (we are root, so chmod alone would not stop us) and undone even on failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from nodegc.testing.engine import IsolatedEngine
from tests.conftest import require_engine
from tests.engine.helpers import free_port, nodegc
from tests.reliability.scene import seed_history

NO_ENGINE = "unix:///nonexistent/nodegc-test/engine.sock"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@contextlib.contextmanager
def mounted(point: Path, *mount_args: str) -> Iterator[Path]:
    """`mount ARGS point`, unmounted afterwards (lazily if busy), whatever happens."""
    point.mkdir(parents=True, exist_ok=True)
    sh("mount", *mount_args, str(point))
    try:
        yield point
    finally:
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


def read_only_state(base: Path) -> contextlib.AbstractContextManager[Path]:
    """A state directory holding a history, bind-mounted read-only onto itself."""
    state = base / "ro"
    seed_history(state, ["sha256:" + "a" * 64], timedelta(days=1))

    @contextlib.contextmanager
    def manage() -> Iterator[Path]:
        with mounted(state, "--bind", str(state)):
            sh("mount", "-o", "remount,bind,ro", str(state))
            yield state

    return manage()


def full_state(base: Path) -> contextlib.AbstractContextManager[Path]:
    """A state directory on a 64 KiB tmpfs filled to the last byte."""

    @contextlib.contextmanager
    def manage() -> Iterator[Path]:
        with mounted(base / "full", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs") as state:
            fd = os.open(state / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                with contextlib.suppress(OSError):
                    while os.write(fd, b"x" * 4096):
                        pass
            finally:
                os.close(fd)
            yield state

    return manage()


def file_parent_state(base: Path) -> contextlib.AbstractContextManager[Path]:
    """A state directory whose parent is a regular file."""
    (base / "blocker").write_text("not a directory\n")
    return contextlib.nullcontext(base / "blocker" / "state")


def history_is_a_directory(base: Path) -> contextlib.AbstractContextManager[Path]:
    """A writable state directory with a directory where history.json belongs."""
    state = base / "dir-history"
    (state / "history.json").mkdir(parents=True)
    return contextlib.nullcontext(state)


TROUBLES: dict[str, tuple[Callable[[Path], contextlib.AbstractContextManager[Path]], str]] = {
    "read-only": (read_only_state, "read-only filesystem"),
    "full": (full_state, "No space left on device"),
    "parent-is-a-file": (file_parent_state, "Not a directory"),
    "history-is-a-directory": (history_is_a_directory, "history.json is not a regular file"),
}


@pytest.fixture
def base() -> Iterator[Path]:
    """A scratch directory that others may traverse (0755), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="ngcs-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_engine() -> Iterator[IsolatedEngine]:
    """One engine for this module's `report` runs (they change nothing on it)."""
    require_engine()
    with IsolatedEngine(size_mb=256) as engine:
        yield engine


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounts need root")


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("trouble", TROUBLES)
def test_once_refuses_to_start_without_writable_history(base: Path, trouble: str) -> None:
    """`once`: exit 2, one line naming the path and the cause; the engine is never asked."""
    make, cause = TROUBLES[trouble]
    with make(base) as state:
        proc = nodegc(None, state, "once", endpoint=NO_ENGINE)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert str(state) in line and cause in line and "history would be lost" in line


@pytest.mark.parametrize("trouble", TROUBLES)
def test_run_refuses_to_start_without_writable_history(base: Path, trouble: str) -> None:
    """`run`: exit 2 at once with one line, no daemon left behind."""
    make, cause = TROUBLES[trouble]
    with make(base) as state:
        env = {"NODEGC_METRICS__ADDRESS": f"127.0.0.1:{free_port()}"}
        proc = nodegc(None, state, "run", endpoint=NO_ENGINE, env=env, timeout=30)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert str(state) in line and cause in line


@pytest.mark.parametrize("trouble", TROUBLES)
def test_report_works_without_writable_history_and_says_so(
    base: Path, shared_engine: IsolatedEngine, trouble: str
) -> None:
    """`report`: exit 0 with the plan, and a warning that history is read-only."""
    make, cause = TROUBLES[trouble]
    with make(base) as state:
        history = state / "history.json"
        before = history.read_bytes() if history.is_file() else None
        proc = nodegc(shared_engine, state, "report", "--log-format", "text")
        after = history.read_bytes() if history.is_file() else None
    assert proc.returncode == 0, proc.stderr
    assert "IMAGES" in proc.stdout.upper()
    warnings = [line for line in proc.stderr.splitlines() if "read-only" in line]
    assert len(warnings) == 1 and cause in warnings[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert after == before


def test_once_refuses_a_state_directory_it_may_not_write(base: Path) -> None:
    """Run as an unprivileged user, a root-owned 0700 directory: exit 2, one line."""
    state = base / "root-only"
    state.mkdir(mode=0o700)
    argv = [
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        sys.executable, "-m", "nodegc", "once", "--state-dir", str(state),
        "--runtime-endpoint", NO_ENGINE,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert str(state) in line and "not writable" in line
