"""nodegc.status: conditions, their JSON, and `nodegc status` against a real listener."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from nodegc import __version__
from nodegc.cli.status import status_command, status_url
from nodegc.config import Settings
from nodegc.daemon.conditions import (
    CONTAINER_GC_SUCCEEDED,
    DISK_PRESSURE,
    IMAGE_GC_SUCCEEDED,
    RUNTIME_REACHABLE,
    StatusBoard,
)
from nodegc.daemon.server import StatusServer
from nodegc.model import Reason

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


class ManualClock:
    """A fake clock moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def board(clock: ManualClock) -> StatusBoard:
    return StatusBoard(clock, node="node-a")


def settings_for(address: str, enabled: bool = True) -> Settings:
    return Settings.model_validate({"metrics": {"address": address, "enabled": enabled}})


@pytest.fixture
def served(board: StatusBoard) -> Iterator[StatusServer]:
    server = StatusServer(
        "127.0.0.1:0",
        CollectorRegistry(),
        healthy=lambda: True,
        ready=lambda: (True, "ok"),
        status=board.to_json,
        poll_interval=0.01,
    )
    server.start()
    yield server
    server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_initial_conditions_are_unknown_not_yet_observed(board: StatusBoard) -> None:
    """The four conditions start Unknown with reason NotYetObserved."""
    assert [(c.type, c.status, c.reason) for c in board.conditions()] == [
        (RUNTIME_REACHABLE, "Unknown", "NotYetObserved"),
        (DISK_PRESSURE, "Unknown", "NotYetObserved"),
        (IMAGE_GC_SUCCEEDED, "Unknown", "NotYetObserved"),
        (CONTAINER_GC_SUCCEEDED, "Unknown", "NotYetObserved"),
    ]


def test_status_change_returns_true_and_moves_transition_time(
    board: StatusBoard, clock: ManualClock
) -> None:
    """A new status reports a change and stamps lastTransitionTime with the clock."""
    clock.advance(60)
    assert board.set(RUNTIME_REACHABLE, True, "Connected", "docker 27.1 answered") is True
    condition = board.get(RUNTIME_REACHABLE)
    assert condition is not None
    assert (condition.status, condition.last_transition_time) == (
        "True",
        T0 + timedelta(seconds=60),
    )


def test_same_status_keeps_transition_time_but_updates_text(
    board: StatusBoard, clock: ManualClock
) -> None:
    """Setting the same status again changes reason and message, not lastTransitionTime."""
    board.set(DISK_PRESSURE, True, "AboveHighThreshold", "usage 90%")
    clock.advance(300)
    assert board.set(DISK_PRESSURE, True, "StillAbove", "usage 91%") is False
    condition = board.get(DISK_PRESSURE)
    assert condition is not None
    assert (condition.reason, condition.message, condition.last_transition_time) == (
        "StillAbove",
        "usage 91%",
        T0,
    )


def test_none_means_unknown(board: StatusBoard) -> None:
    """status None is the Unknown status."""
    board.set(RUNTIME_REACHABLE, True, "Connected", "")
    board.set(RUNTIME_REACHABLE, None, "ProbeTimedOut", "no answer in 30s")
    condition = board.get(RUNTIME_REACHABLE)
    assert condition is not None and condition.status == "Unknown"


def test_node_defaults_to_the_hostname(clock: ManualClock) -> None:
    """Without `node`, the document names this host."""
    assert StatusBoard(clock).to_json()["node"] == socket.gethostname()


def test_a_new_condition_type_is_added(board: StatusBoard) -> None:
    """A type not among the initial four is created on first set."""
    assert board.set("HistorySaved", False, "ReadOnlyState", "EROFS") is True
    assert [c.type for c in board.conditions()][-1] == "HistorySaved"


def test_get_of_an_unknown_type_is_none(board: StatusBoard) -> None:
    """get() of a type never set is None."""
    assert board.get("Nope") is None


@pytest.mark.parametrize("reason", ["", "lowerCase", "With Space", "dash-ed"])
def test_reason_must_be_camel_case(board: StatusBoard, reason: str) -> None:
    """A reason that is not CamelCase is a ValueError."""
    with pytest.raises(ValueError, match="CamelCase"):
        board.set(DISK_PRESSURE, False, reason, "")


def test_to_json_uses_kubernetes_keys(board: StatusBoard) -> None:
    """Conditions serialize with type/status/reason/message/lastTransitionTime, plus node and
    version."""
    document = board.to_json()
    assert (document["node"], document["version"]) == ("node-a", __version__)
    assert document["conditions"][0] == {
        "type": RUNTIME_REACHABLE,
        "status": "Unknown",
        "reason": "NotYetObserved",
        "message": "not observed yet",
        "lastTransitionTime": "2025-06-01T12:00:00Z",
    }


def test_details_merge_and_render_as_json(board: StatusBoard) -> None:
    """set_details merges keyword facts; datetimes, durations and enums become strings."""
    board.set_details(last_image_cycle=T0, bytes_freed=10)
    board.set_details(period=timedelta(minutes=5), reason=Reason.SPACE, bytes_freed=20)
    assert board.to_json()["details"] == {
        "last_image_cycle": "2025-06-01T12:00:00Z",
        "bytes_freed": 20,
        "period": "5m",
        "reason": "space",
    }


def test_concurrent_writers_and_readers(board: StatusBoard) -> None:
    """Sets and reads from many threads neither fail nor lose a condition."""
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                board.set(f"Custom{n}", i % 2 == 0, "Flip", str(i))
                json.dumps(board.to_json())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(board.conditions()) == 4 + 8


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("127.0.0.1:9797", "http://127.0.0.1:9797/status"),
        ("0.0.0.0:9797", "http://127.0.0.1:9797/status"),
        ("[::]:9797", "http://[::1]:9797/status"),
        ("[fd00::1]:80", "http://[fd00::1]:80/status"),
    ],
)
def test_status_url_reaches_wildcards_on_loopback(address: str, url: str) -> None:
    """A wildcard listen address is asked on loopback; IPv6 hosts keep their brackets."""
    assert status_url(address) == url


def test_status_command_prints_a_table(
    served: StatusServer,
    board: StatusBoard,
    clock: ManualClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The table lists TYPE STATUS REASON AGE MESSAGE for every condition."""
    board.set(DISK_PRESSURE, False, "BelowHighThreshold", "usage 42% < 85%")
    clock.advance(120)
    code = status_command(settings_for(f"127.0.0.1:{served.port}"), "table", clock=clock)
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0] == f"nodegc {__version__} on node-a"
    assert lines[1].split() == ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]
    assert lines[3].split() == ["DiskPressure", "False", "BelowHighThreshold", "2m", "usage",
                                "42%", "<", "85%"]  # fmt: skip


def test_status_command_table_lists_details(
    served: StatusServer, board: StatusBoard, capsys: pytest.CaptureFixture[str]
) -> None:
    """Details follow the table, one `key: value` per line."""
    board.set_details(last_image_cycle=T0)
    status_command(settings_for(f"127.0.0.1:{served.port}"), "table", clock=lambda: T0)
    assert capsys.readouterr().out.splitlines()[-1] == "last_image_cycle: 2025-06-01T12:00:00Z"


def test_status_command_prints_the_json(
    served: StatusServer, board: StatusBoard, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-o json` prints the daemon's document."""
    assert status_command(settings_for(f"127.0.0.1:{served.port}"), "json") == 0
    assert json.loads(capsys.readouterr().out) == board.to_json()


def test_status_command_ignores_proxy_settings(
    served: StatusServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An http_proxy in the environment is not used to reach the local daemon."""
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert status_command(settings_for(f"127.0.0.1:{served.port}"), "json") == 0


def test_unreachable_daemon_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening: one stderr line naming the address, exit 3."""
    address = f"127.0.0.1:{free_port()}"
    assert status_command(settings_for(address), "table") == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert address in captured.err


def test_http_error_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """A listener answering /status with an error is reported with its code, exit 3."""

    def broken() -> dict:
        raise RuntimeError("boom")

    server = StatusServer(
        "127.0.0.1:0",
        CollectorRegistry(),
        healthy=lambda: True,
        ready=lambda: (True, ""),
        status=broken,
        poll_interval=0.01,
    )
    server.start()
    try:
        assert status_command(settings_for(f"127.0.0.1:{server.port}"), "json") == 3
    finally:
        server.stop()
    assert "HTTP 500" in capsys.readouterr().err


def test_disabled_listener_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """With metrics.enabled = false there is nothing to ask; the line says why."""
    assert status_command(settings_for("127.0.0.1:9797", enabled=False), "table") == 3
    assert "metrics.enabled = false" in capsys.readouterr().err
