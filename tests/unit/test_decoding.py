"""Decoding the engine's answers: pure functions over the JSON it gave."""

from __future__ import annotations

from datetime import UTC, datetime

from nodegc.runtime.docker.decoding import container_rows, finish_time


def test_a_finish_a_few_ms_before_the_start_is_the_start() -> None:
    """A State of the shape Podman gives a container that exits at once (FinishedAt a few ms
    before StartedAt). Catches: the finish time taken as said, before the container started."""
    state = {
        "StartedAt": "2026-12-01T10:00:00.512000000Z",
        "FinishedAt": "2026-12-01T10:00:00.500000000Z",
    }
    assert finish_time(state) == datetime(2026, 12, 1, 10, 0, 0, 512000, tzinfo=UTC)


def test_a_finish_after_the_start_is_the_finish_and_none_is_none() -> None:
    state = {"StartedAt": "2026-12-01T10:00:00Z", "FinishedAt": "2026-12-01T10:00:05Z"}
    assert finish_time(state) == datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)
    assert finish_time({"StartedAt": "2026-12-01T10:00:00Z",
                        "FinishedAt": "0001-01-01T00:00:00Z"}) is None  # fmt: skip
    assert finish_time({}) is None


def test_a_container_listing_keeps_the_fields_read_and_drops_the_rest() -> None:
    body = (b'[{"Id": "a", "Names": ["/web"], "State": "exited", "Status": "Exited (0) 2 hours'
            b' ago", "Created": 5, "ImageID": "i", "Labels": {"k": "v"}, "Mounts": [1],'
            b' "HostConfig": {"NetworkMode": "none"}}]')  # fmt: skip
    (row,) = container_rows(body)
    assert row == {
        "Id": "a",
        "Names": ["/web"],
        "ImageID": "i",
        "State": "exited",
        "Status": "Exited (0) 2 hours ago",
        "Created": 5,
        "Labels": {"k": "v"},
    }


def test_a_container_listing_of_another_shape_decodes_whole() -> None:
    """An untrusted engine: a field of another type, or not a list. Catches: a typed decode
    that raises instead of handing the caller what was said (it checks the shape itself)."""
    assert container_rows(b'[{"Id": "a", "Created": "yesterday"}]') == [
        {"Id": "a", "Created": "yesterday"}
    ]
    assert container_rows(b'{"message": "no"}') == {"message": "no"}
    assert container_rows(b'[{"Id": "\\ud800"}]') == [{"Id": "\ud800"}]  # a lone surrogate
