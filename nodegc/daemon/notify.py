"""systemd's notification protocol (sd_notify) without a dependency.

With `Type=notify` systemd passes NOTIFY_SOCKET, an AF_UNIX datagram socket (a path, or '@name'
in the abstract namespace); with `WatchdogSec=` it passes WATCHDOG_USEC (and WATCHDOG_PID). Each
message is newline-separated KEY=VALUE assignments in one datagram. Without NOTIFY_SOCKET every
method is a no-op, so the daemon calls them unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Tells systemd when the daemon is ready, alive (watchdog), busy with what, or stopping.

    Sending never raises: a failure is logged once per distinct error and the method returns
    False (systemd then acts on its own timeouts, as it should).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.socket_path = env.get("NOTIFY_SOCKET", "")
        self.address = _address(self.socket_path)
        self._watchdog_usec = _watchdog_usec(env)
        self._lock = threading.Lock()
        self._last_error: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether systemd asked for notifications."""
        return self.address is not None

    def ready(self, status: str = "") -> bool:
        """Startup finished (Type=notify units count as started only now)."""
        fields = ["READY=1"]
        if status:
            fields.append(f"STATUS={_one_line(status)}")
        return self.notify(*fields)

    def watchdog(self) -> bool:
        """Still alive: call at least every `watchdog_interval()` seconds."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line state for `systemctl status`."""
        return self.notify(f"STATUS={_one_line(text)}")

    def stopping(self) -> bool:
        """Shutdown has begun."""
        return self.notify("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of WATCHDOG_USEC), or None when systemd wants
        none for this process."""
        if self.address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def notify(self, *fields: str) -> bool:
        """Send KEY=VALUE fields in one datagram; True when sent, False when disabled or failed."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            error = exc.strerror or str(exc)
            with self._lock:
                first = error != self._last_error
                self._last_error = error
            if first:
                log.warning(
                    "systemd notification not sent",
                    extra={"socket": self.socket_path, "error": error},
                )
            return False
        with self._lock:
            self._last_error = None
        return True


def _address(value: str) -> str | None:
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]  # the abstract namespace
    if value.startswith("/"):
        return value
    if value:
        log.warning("NOTIFY_SOCKET not understood: notifications off", extra={"socket": value})
    return None


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # the watchdog is meant for another process
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.split())
