"""The Docker/Podman adapter's reading of an engine's error answers: one table, gone is gone."""

from __future__ import annotations

import pytest

from nodegc.runtime import Conflict, NotFound, RuntimeError_
from nodegc.runtime.docker import engine_error


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, "No such image: app:1"),
        (404, "page not found"),
        (500, "unrecognized image ID sha256:abc"),
        (500, "No such image: sha256:abc"),
        (500, "sha256:abc: image not known"),
        (500, "no such container"),
        (500, "No such container: 1234"),
    ],
)
def test_every_way_an_engine_says_gone_is_not_found(status, message):
    """404, Docker's 500s for an image gone meanwhile, Podman's "not known": NotFound."""
    error = engine_error("remove image 1234", status, message)
    assert type(error) is NotFound
    assert str(error) == f"remove image 1234: {message}"


def test_409_is_a_conflict_and_other_answers_are_failures():
    """409: in use (Conflict); a 500 that says nothing of a missing object: a failure."""
    assert type(engine_error("x", 409, "image is being used by running container")) is Conflict
    failure = engine_error("x", 500, "driver failed to remove root filesystem")
    assert type(failure) is RuntimeError_
    assert "engine answered 500" in str(failure)
