"""runtime/retry.py: which failures a read is asked again for, how often, how long."""

from __future__ import annotations

import http.client

import pytest
import requests.exceptions

from nodegc.runtime.retry import BUDGET, TRIES, TransportStats, delays, is_transient, retried


def failing(errors: list[BaseException], answer: str = "ok"):
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return answer

    return fn, calls


def test_a_reset_read_is_asked_again_and_counted() -> None:
    stats, slept = TransportStats(), []
    fn, calls = failing([ConnectionResetError(104, "reset"), http.client.RemoteDisconnected()])
    assert retried(fn, stats, sleep=slept.append) == "ok"
    assert len(calls) == 3 and slept == delays()[:2]
    assert (stats.faults, stats.recovered, stats.flaky) == (2, 1, True)


def test_gives_up_after_the_tries_with_the_last_error() -> None:
    stats = TransportStats()
    fn, calls = failing([ConnectionResetError()] * (TRIES + 2))
    with pytest.raises(ConnectionResetError):
        retried(fn, stats, sleep=lambda _: None)
    assert len(calls) == TRIES and stats.recovered == 0 and not stats.flaky


@pytest.mark.parametrize(
    "error",
    [TimeoutError(), requests.exceptions.ReadTimeout(), ValueError("bad")],
    ids=["timeout", "requests-timeout", "not-a-connection-fault"],
)
def test_timeouts_and_other_errors_are_not_retried(error: BaseException) -> None:
    fn, calls = failing([error])
    with pytest.raises(type(error)):
        retried(fn, TransportStats(), sleep=lambda _: None)
    assert len(calls) == 1


def test_a_connection_error_caused_by_a_timeout_is_not_transient() -> None:
    try:
        try:
            raise TimeoutError("read timed out")
        except TimeoutError as inner:
            raise requests.exceptions.ConnectionError("wrapped") from inner
    except requests.exceptions.ConnectionError as exc:
        assert not is_transient(exc)
    assert is_transient(requests.exceptions.ConnectionError("reset"))


def test_the_pauses_are_short_and_bounded() -> None:
    pauses = delays()
    assert len(pauses) == TRIES - 1 and pauses[0] == 0.1 and sum(pauses) <= BUDGET
