"""The walk of every container directory in a process of its own (`report`'s early walk,
`docker_sizes.WalkProcess`): the same figures as the walk in this process, from a real child
process over a real tree; nothing when the child fails; a child still walking is stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodegc.runtime import docker_sizes
from nodegc.runtime.docker_sizes import WalkProcess, walk_containers
from tests.unit.test_breakdown_lean import fake_container

IDS = "a" * 64, "b" * 64, "c" * 64


def tree(root: Path) -> Path:
    a, b, c = IDS
    fake_container(root, a, log=100_000, layer=300_000)
    fake_container(root, b, local=70_000)
    fake_container(root, c, layer=5_000)
    return root


@pytest.mark.parametrize("overlay2", [True, False])
def test_the_child_walks_what_this_process_walks(tmp_path: Path, overlay2: bool) -> None:
    """Catches: a map lost on the way (logs or writable layers), a log's path or size changed
    by the encoding, the driver's flag not passed on."""
    root = str(tree(tmp_path))
    walked = WalkProcess(root, overlay2).result()
    assert walked == walk_containers(root, overlay2)
    assert walked is not None and set(walked.logs) == set(IDS)
    assert (walked.writable is not None) is overlay2


def test_a_child_that_fails_gives_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that exits non-zero (here /bin/false in place of the interpreter) is no walk:
    the breakdown then measures what it needs itself. Catches: its empty output taken as a
    node with no containers."""
    monkeypatch.setattr(sys, "executable", "/bin/false")
    assert WalkProcess(str(tree(tmp_path)), True).result() is None


def test_a_child_that_prints_something_else_gives_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches: another document decoded as a walk (a map of the wrong shape)."""
    fake = tmp_path / "fake-python"
    fake.write_text('#!/bin/sh\necho \'{"logs": {"x": 5}, "writable": null}\'\n')
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    assert WalkProcess(str(tmp_path), True).result() is None


def test_close_stops_a_child_still_walking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report that ends before it needs the walk leaves no process behind."""
    fake = tmp_path / "slow-python"
    fake.write_text("#!/bin/sh\nexec sleep 1000\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    walk = WalkProcess(str(tmp_path), True)
    pid = walk._child.pid
    walk.close()
    assert walk._child.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: no such process any more


def test_the_child_refuses_other_arguments() -> None:
    """`python -m nodegc.runtime.docker_sizes` with the wrong arguments: exit 2, a usage line."""
    done = subprocess.run(
        [sys.executable, "-m", docker_sizes.__name__, "/nonexistent"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("usage:")
