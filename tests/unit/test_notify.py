"""nodegc.notify: sd_notify over a real AF_UNIX datagram socket."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodegc.daemon.notify import SystemdNotifier


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd, and its NOTIFY_SOCKET value."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)  # a deadline, not a sleep: recv returns as soon as a datagram lands
    yield sock, str(path)
    sock.close()


def notifier_for(socket_value: str, **extra: str) -> SystemdNotifier:
    return SystemdNotifier({"NOTIFY_SOCKET": socket_value, **extra})


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    """No NOTIFY_SOCKET: disabled, nothing sent, no error, no watchdog."""
    n = SystemdNotifier({"WATCHDOG_USEC": "60000000"})
    assert (n.enabled, n.ready("up"), n.watchdog(), n.stopping()) == (False, False, False, False)
    assert n.watchdog_interval() is None


def test_ready_sends_ready_and_status(receiver: tuple[socket.socket, str]) -> None:
    """ready(status) sends READY=1 and STATUS in one datagram."""
    sock, path = receiver
    assert notifier_for(path).ready("watching /var/lib/docker") is True
    assert received(sock) == "READY=1\nSTATUS=watching /var/lib/docker"


def test_watchdog_sends_watchdog(receiver: tuple[socket.socket, str]) -> None:
    """watchdog() sends WATCHDOG=1."""
    sock, path = receiver
    notifier_for(path).watchdog()
    assert received(sock) == "WATCHDOG=1"


def test_status_is_one_line(receiver: tuple[socket.socket, str]) -> None:
    """status(text) sends STATUS= with newlines folded into spaces."""
    sock, path = receiver
    notifier_for(path).status("image GC:\nfreed 2 GiB")
    assert received(sock) == "STATUS=image GC: freed 2 GiB"


def test_stopping_sends_stopping(receiver: tuple[socket.socket, str]) -> None:
    """stopping() sends STOPPING=1."""
    sock, path = receiver
    notifier_for(path).stopping()
    assert received(sock) == "STOPPING=1"


def test_abstract_namespace_socket() -> None:
    """NOTIFY_SOCKET=@name addresses the abstract namespace."""
    name = f"nodegc-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notifier_for("@" + name).watchdog() is True
        assert received(sock) == "WATCHDOG=1"


def test_watchdog_interval_is_half_of_watchdog_usec(receiver: tuple[socket.socket, str]) -> None:
    """WATCHDOG_USEC=60000000 (60 s) gives a 30 s ping interval."""
    assert notifier_for(receiver[1], WATCHDOG_USEC="60000000").watchdog_interval() == 30.0


def test_watchdog_for_this_pid_counts(receiver: tuple[socket.socket, str]) -> None:
    """WATCHDOG_PID naming this process keeps the watchdog."""
    n = notifier_for(receiver[1], WATCHDOG_USEC="10000000", WATCHDOG_PID=str(os.getpid()))
    assert n.watchdog_interval() == 5.0


def test_watchdog_for_another_pid_is_ignored(receiver: tuple[socket.socket, str]) -> None:
    """WATCHDOG_PID naming another process means no watchdog here."""
    n = notifier_for(receiver[1], WATCHDOG_USEC="10000000", WATCHDOG_PID=str(os.getpid() + 1))
    assert n.watchdog_interval() is None


@pytest.mark.parametrize("usec", ["", "0", "soon", "-5"])
def test_unusable_watchdog_usec_means_no_watchdog(
    receiver: tuple[socket.socket, str], usec: str
) -> None:
    """A missing, zero, negative or non-numeric WATCHDOG_USEC means no watchdog."""
    assert notifier_for(receiver[1], WATCHDOG_USEC=usec).watchdog_interval() is None


def test_send_failure_returns_false(tmp_path: Path) -> None:
    """A socket nobody listens on fails quietly: False, no exception."""
    assert notifier_for(str(tmp_path / "gone.sock")).ready() is False


def test_unsupported_socket_form_disables(caplog: pytest.LogCaptureFixture) -> None:
    """A NOTIFY_SOCKET that is neither a path nor @name turns notifications off with a warning."""
    logger = logging.getLogger("nodegc.daemon.notify")  # robust to logs.setup() having run before
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="nodegc.daemon.notify"):
            n = notifier_for("vsock:2:1234")
    finally:
        logger.removeHandler(caplog.handler)
    assert (n.enabled, n.ready()) == (False, False)
    assert "NOTIFY_SOCKET not understood" in caplog.text
