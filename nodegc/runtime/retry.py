"""Idempotent reads retried briefly: a flaky connection is not a lost engine.

A listing, an inspect, an image's history, `/system/df`, `/info`, `/_ping`: asking again changes
nothing on the engine, so a read whose connection was reset, refused or cut short is asked again
after a short pause (0.1 s, then 0.3 s; at most `TRIES` attempts and `BUDGET` seconds of waiting
for one read) before the engine is declared unreachable. A read that timed out is not asked
again: `runtime.timeout` already bounds how long a cycle waits for a silent engine.

Never for a removal or a tag: a DELETE whose answer was lost may have been carried out; the
caller finds out what happened (an inspect, which is a read) and never sends it again.

`TransportStats` counts what happened to the requests of one adapter, so that a failure can say
whether the engine is flaky (most requests answered, a few needed a second try) or lost.
"""

from __future__ import annotations

import http.client
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TRIES = 3
FIRST_DELAY = 0.1
MAX_DELAY = 0.5
BUDGET = 1.0  # seconds of pauses at most for one read

# Transient by nature: the connection, not the engine's answer, failed.
_TRANSIENT = (
    ConnectionError,  # reset, refused, aborted, broken pipe
    FileNotFoundError,  # the socket is not there (an engine restarting)
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
    http.client.BadStatusLine,
)
_TIMEOUTS: tuple[type[BaseException], ...] = (socket.timeout, TimeoutError)


def _with_sdk() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """The transient errors and the timeouts, with the SDK's (`requests`) once it is loaded: it
    is imported only when a request needs it (`docker.transport`), and none of its exceptions
    exists before."""
    if "requests.exceptions" not in sys.modules:
        return _TRANSIENT, _TIMEOUTS
    import requests.exceptions as sdk

    transient = (sdk.ConnectionError, sdk.ChunkedEncodingError)
    return _TRANSIENT + transient, (*_TIMEOUTS, sdk.Timeout)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a connection failure worth one more try (never a timeout: the engine
    was silent for `runtime.timeout` already)."""
    transient, timeouts = _with_sdk()
    if isinstance(exc, timeouts):
        return False
    for cause in _chain(exc):
        if isinstance(cause, timeouts):
            return False
    return isinstance(exc, transient)


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    while len(found) < 10:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        found.append(nxt)
        exc = nxt
    return found


class TransportStats:
    """Counts of one adapter's connection faults (thread-safe): attempts that failed on the
    connection, and reads that answered on a later try."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults = 0  # attempts that failed on the connection (reset, cut short, refused)
        self.recovered = 0  # reads that failed at first and answered on a later try

    def fault(self) -> None:
        with self._lock:
            self.faults += 1

    def recover(self) -> None:
        with self._lock:
            self.recovered += 1

    @property
    def flaky(self) -> bool:
        """Some read answered only on a later try: the engine answers, its connections fail."""
        return self.recovered > 0

    def describe(self, requests: int) -> str:
        """ "5 of 480 requests failed on the connection, 4 reads answered when retried"."""
        return (
            f"{self.faults} of {requests} requests failed on the connection, "
            f"{self.recovered} reads answered when retried"
        )


def delays(tries: int = TRIES, first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> list[float]:
    """The pauses before each retry: 0.1, 0.3, ... capped at `cap`, within `BUDGET` in all."""
    out: list[float] = []
    delay = first
    for _ in range(tries - 1):
        if sum(out) + delay > BUDGET:
            break
        out.append(delay)
        delay = min(cap, delay * 3)
    return out


def retried(
    fn: Callable[[], T],
    stats: TransportStats,
    *,
    transient: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """`fn()` (an idempotent read), asked again after a pause when its connection failed; the
    last failure is raised when every try failed (or at once when it is not transient)."""
    pauses = delays()
    for attempt in range(len(pauses) + 1):
        try:
            result = fn()
        except Exception as exc:
            if not transient(exc):
                raise
            stats.fault()
            if attempt == len(pauses):
                raise
            sleep(pauses[attempt])
            continue
        if attempt:
            stats.recover()
        return result
    raise AssertionError("unreachable")  # pragma: no cover
