"""A hostile state directory (issue 20, item 4), as root against a real dockerd: nodegc creates
its directory 0700 whatever the umask; a link planted for a state file (its target root's and
precious), a FIFO, a link to /dev/zero, a huge file, a directory not root's or writable by
others, an empty path: each is exit 2 with one line naming the path and the fix, no traceback,
no hang (every run has a deadline: a hang fails the test instead of blocking it), the target
untouched and nothing removed from the engine."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.images import build_image_tar, busybox_image_tar
from tests.conftest import require_engine
from tests.engine.helpers import MiB, inventory, nodegc

DEADLINE = 60  # seconds: far above a refusal's (< 2 s); a FIFO read would block forever
AGGRESSIVE = ("--maximum-dead-containers=0", "--minimum-image-ttl-duration=0s",
              "--image-gc-high-threshold=1", "--image-gc-low-threshold=0")  # fmt: skip
STATE_FILES = ("audit.jsonl", "nodegc.state.lock", "history.json", "intents.json",
               "layers.json", "finish-times.json", "walk.json")  # fmt: skip


@pytest.fixture(scope="module")
def engine() -> Iterator[IsolatedEngine]:
    """One engine with work to do (dead containers, unused images) that no test lets happen."""
    require_engine()
    if os.geteuid() != 0:
        pytest.fail("these tests run as root (nodegc's own case)")
    with IsolatedEngine(size_mb=256) as isolated:
        busybox = isolated.load(busybox_image_tar())
        isolated.load_many(build_image_tar([f"junk/{n}:1"], MiB) for n in range(3))
        isolated.create_dead_containers(busybox, 2)
        yield isolated


@pytest.fixture
def before(engine: IsolatedEngine) -> Iterator[dict[str, object]]:
    """The engine's inventory before the test; afterwards it must be the same."""
    with engine.api() as api:
        snapshot = inventory(api)
    yield snapshot
    with engine.api() as api:
        assert inventory(api) == snapshot, "nodegc acted on a state directory it refused"


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    """A root-owned file an attacker would like root's nodegc to truncate or append to."""
    path = tmp_path / "precious.conf"
    path.write_bytes(b"root's precious configuration\n" * 100)
    os.chmod(path, 0o644)
    return path


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


def refused(engine: IsolatedEngine, state: Path | str, command: str, *args: str) -> str:
    """Run `nodegc COMMAND` (with a deadline); assert exit 2 with one clean line; return it."""
    argv = [sys.executable, "-m", "nodegc", command, "--state-dir", str(state),
            "--runtime-endpoint", engine.endpoint, *args]  # fmt: skip
    if command in ("once", "report"):
        argv += AGGRESSIVE
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`nodegc {command}` hung on {state} (killed after {DEADLINE} s)")
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr, proc.stdout[-500:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_once_creates_its_state_directory_0700_and_files_0600_under_umask_000(
    engine: IsolatedEngine, tmp_path: Path
) -> None:
    """umask 000 (the issue measured 0777): the directory 0700, its new parents 0755, every
    file 0600; the dry run keeps the engine as it is."""
    state = tmp_path / "new" / "parents" / "state"
    argv = [sys.executable, "-m", "nodegc", "once", "--dry-run", "--state-dir", str(state),
            "--runtime-endpoint", engine.endpoint, *AGGRESSIVE]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE,
                          preexec_fn=lambda: os.umask(0))  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for parent in (tmp_path / "new", tmp_path / "new" / "parents"):
        assert stat.S_IMODE(parent.stat().st_mode) == 0o755, parent
    files = [p for p in state.iterdir() if p.is_file()]
    assert files and {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}, files


@pytest.mark.parametrize("name", STATE_FILES)
@pytest.mark.parametrize("command", ["once", "report"])
def test_a_link_planted_for_a_state_file_is_refused_and_its_target_stays_intact(
    engine: IsolatedEngine, before: object, precious: Path, tmp_path: Path, name: str,
    command: str,
) -> None:  # fmt: skip
    """audit.jsonl (or the lock, ...) a link to a root-owned file: before, root's `once`
    truncated it. Now: exit 2 naming the link and its target, the file byte for byte intact."""
    state = private_dir(tmp_path / "state")
    (state / name).symlink_to(precious)
    content, mtime = precious.read_bytes(), precious.stat().st_mtime_ns
    line = refused(engine, state, command)
    assert str(state / name) in line and "symbolic link" in line and str(precious) in line
    assert precious.read_bytes() == content and precious.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("name", ["layers.json", "history.json", "intents.json"])
@pytest.mark.parametrize("command", ["once", "report"])
def test_a_fifo_in_place_of_a_state_file_is_refused_not_waited_on(
    engine: IsolatedEngine, before: object, tmp_path: Path, name: str, command: str
) -> None:
    """A FIFO layers.json hung `once` and `report` for ever; now exit 2 at once."""
    state = private_dir(tmp_path / "state")
    os.mkfifo(state / name, 0o600)
    line = refused(engine, state, command)
    assert str(state / name) in line and "FIFO" in line and "remove it" in line


def test_history_with_a_fifo_audit_record_is_refused_not_waited_on(
    engine: IsolatedEngine, tmp_path: Path
) -> None:
    state = private_dir(tmp_path / "state")
    os.mkfifo(state / "audit.jsonl", 0o600)
    assert "FIFO" in refused(engine, state, "history")


@pytest.mark.parametrize("name", ["layers.json", "history.json", "finish-times.json", "walk.json"])
def test_a_link_to_dev_zero_is_refused_without_reading_it(
    engine: IsolatedEngine, before: object, tmp_path: Path, name: str
) -> None:
    """layers.json -> /dev/zero was a MemoryError traceback (a read that never ends)."""
    state = private_dir(tmp_path / "state")
    (state / name).symlink_to("/dev/zero")
    line = refused(engine, state, "report")
    assert str(state / name) in line and "/dev/zero" in line


def test_a_huge_state_file_is_refused(
    engine: IsolatedEngine, before: object, tmp_path: Path
) -> None:
    """A 300 MiB (sparse) layers.json is nothing nodegc wrote: refused, not read into memory."""
    state = private_dir(tmp_path / "state")
    with (state / "layers.json").open("wb") as fh:
        fh.truncate(300 * MiB)
    os.chmod(state / "layers.json", 0o600)
    line = refused(engine, state, "report")
    assert str(state / "layers.json") in line and "bytes" in line


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_state_directory_writable_by_group_or_others_is_refused(
    engine: IsolatedEngine, before: object, tmp_path: Path, mode: int
) -> None:
    state = private_dir(tmp_path / "state")
    os.chmod(state, mode)
    line = refused(engine, state, "once")
    assert str(state) in line and "writable by group or others" in line and "chmod 700" in line


def test_a_state_directory_or_file_not_roots_is_refused(
    engine: IsolatedEngine, before: object, tmp_path: Path
) -> None:
    state = private_dir(tmp_path / "state")
    os.chown(state, 65534, 65534)
    assert "not root" in refused(engine, state, "once")
    os.chown(state, 0, 0)
    (state / "history.json").write_text("{}")
    os.chmod(state / "history.json", 0o600)
    os.chown(state / "history.json", 65534, 65534)
    line = refused(engine, state, "report")
    assert str(state / "history.json") in line and "not root" in line


def test_a_state_directory_that_is_a_link_is_refused(
    engine: IsolatedEngine, before: object, tmp_path: Path
) -> None:
    real = private_dir(tmp_path / "real")
    (tmp_path / "state").symlink_to(real)
    line = refused(engine, tmp_path / "state", "once")
    assert "symbolic link" in line and str(real) in line


def test_an_empty_state_directory_is_a_configuration_error(
    engine: IsolatedEngine, before: object, tmp_path: Path
) -> None:
    """--state-dir '' and NODEGC_STATE__DIRECTORY='' wrote the state into the current
    directory; now exit 2 naming state.directory, and nothing is written where we stand."""
    assert "state.directory" in refused(engine, "", "once")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODEGC_", "DOCKER_"))}
    env["NODEGC_STATE__DIRECTORY"] = ""
    argv = [sys.executable, "-m", "nodegc", "once", "--runtime-endpoint", engine.endpoint]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=DEADLINE)  # fmt: skip
    assert proc.returncode == 2 and "state.directory" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_on_a_sound_directory_the_same_once_would_act(
    engine: IsolatedEngine, tmp_path: Path
) -> None:
    """The refusals above matter: on a sound directory the same settings plan removals."""
    with engine.api() as api:
        start = inventory(api)
    proc = nodegc(engine, tmp_path / "sound", "once", "--dry-run", *AGGRESSIVE, "-o", "json")
    assert proc.returncode in (0, 1), proc.stderr
    assert '"action": "remove"' in proc.stdout
    with engine.api() as api:
        assert inventory(api) == start
