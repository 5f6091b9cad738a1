"""The Docker adapter's Podman rules, without an engine: error classification, event names and
ids, aliases for pins, recognition from `/version`, finish times never before the start. (The
same rules against a real Podman service: tests/podman.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nodegc.config import ImageSettings
from nodegc.model import Image
from nodegc.policy.images import is_pinned
from nodegc.runtime import Conflict, NotFound, RuntimeError_
from nodegc.runtime.docker import (
    DockerRuntime,
    classify_error,
    engine_error,
    is_podman,
    podman_aliases,
    podman_image_id,
)

HEX = "2a60fd3c7f029010dbbc4d8a06e199e1dc036ddbed65b0cf7d998e5a2880347d"
ID = f"sha256:{HEX}"

PODMAN_VERSION = {
    "Platform": {"Name": "linux/amd64/debian-12"},
    "Components": [
        {"Name": "Podman Engine", "Version": "4.3.1"},
        {"Name": "Conmon", "Version": "conmon version 2.1.6"},
    ],
    "Version": "4.3.1",
    "ApiVersion": "1.41",
}
DOCKER_VERSION = {
    "Platform": {"Name": ""},
    "Components": [
        {"Name": "Engine", "Version": "20.10.24+dfsg1"},
        {"Name": "containerd", "Version": "1.6.20"},
        {"Name": "runc", "Version": "1.1.5"},
    ],
    "Version": "20.10.24+dfsg1",
    "ApiVersion": "1.41",
}


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (404, 'no container with name or ID "x" found: no such container', NotFound),
        (409, "conflict: unable to remove repository reference (must force)", Conflict),
        # Podman's words for what Docker says with 409 (measured on Podman 4.3.1):
        (
            500,
            "cannot remove container 47b5 as it is running - running or paused containers "
            "cannot be removed without force: container state improper",
            Conflict,
        ),
        (
            500,
            'unable to delete image "2a60" by ID with more than one tag ([localhost/a:1 '
            "docker.io/library/b:2]): please force removal",
            Conflict,
        ),
        (500, "image is in use by a container", Conflict),
        # A 500 that means neither stays a failure; so do other statuses.
        (500, "layer not known", RuntimeError_),
        (500, "no space left on device", RuntimeError_),
        (400, "container state improper", RuntimeError_),
    ],
)
def test_error_answers_map_to_the_runtime_errors(status: int, message: str, error: type) -> None:
    assert classify_error(status, message) is error
    raised = engine_error("remove x", status, message)
    assert type(raised) is error and message in str(raised)
    if error is RuntimeError_:
        assert f"engine answered {status}" in str(raised)


def test_podman_is_recognised_from_version_and_docker_is_not() -> None:
    assert is_podman(PODMAN_VERSION) is True
    assert is_podman(DOCKER_VERSION) is False
    assert is_podman({}) is False and is_podman(None) is False


def test_ids_get_sha256_and_names_do_not() -> None:
    assert podman_image_id(HEX) == ID
    assert podman_image_id(ID) == ID
    assert podman_image_id("localhost/myapp:1") == "localhost/myapp:1"
    assert podman_image_id("") == ""


def test_localhost_names_get_their_short_alias_only() -> None:
    refs = ["localhost/myapp:1", "quay.io/org/x:2", "localhost/team/app@sha256:" + HEX]
    assert podman_aliases(refs) == ("myapp:1", "team/app@sha256:" + HEX)


@pytest.mark.parametrize(
    ("pattern", "pinned"),
    [("myapp:*", True), ("myapp:1", True), ("localhost/myapp:*", True), ("other:*", False)],
)
def test_pin_on_the_short_name_matches_podmans_localhost_image(pattern: str, pinned: bool) -> None:
    listed = Image(
        id=ID, tags=("localhost/myapp:1",), aliases=podman_aliases(["localhost/myapp:1"])
    )
    assert is_pinned(listed, [pattern]) is pinned
    # Without the alias (Docker: localhost/ is a registry) the short pattern does not match.
    if pattern.startswith("myapp"):
        assert is_pinned(Image(id=ID, tags=("localhost/myapp:1",)), [pattern]) is False


def test_default_pins_stay_off_a_podman_image() -> None:
    listed = Image(id=ID, tags=("localhost/pause:3.9",), aliases=("pause:3.9",))
    assert is_pinned(listed, ImageSettings().pinned) is False


def podman_runtime() -> DockerRuntime:
    runtime = DockerRuntime("unix:///nonexistent.sock", timedelta(seconds=1))
    runtime._podman = True
    runtime._container_image["c1"] = ID
    return runtime


def raw(kind: str, action: str, object_id: str, name: str = "") -> dict[str, Any]:
    return {
        "status": action,
        "Type": kind,
        "Action": action,
        "Actor": {"ID": object_id, "Attributes": {"name": name}},
        "time": 1796168714,
        "timeNano": 1796168714109615853,
    }


@pytest.mark.parametrize(
    ("kind", "podman_action", "docker_action"),
    [
        ("container", "died", "die"),
        ("container", "die", "die"),  # the compat stream translates this one itself
        ("container", "remove", "destroy"),
        ("container", "create", "create"),
        ("container", "start", "start"),
    ],
)
def test_podman_container_events_read_as_dockers(
    kind: str, podman_action: str, docker_action: str
) -> None:
    event = podman_runtime()._event(raw(kind, podman_action, "c1", "web"))
    assert event is not None
    assert (event.kind, event.action, event.object_id, event.image_id) == (
        kind,
        docker_action,
        "c1",
        ID,
    )
    assert event.time == datetime.fromtimestamp(1796168714109615853 / 1e9, UTC)


def test_podman_image_events_get_sha256_ids_without_a_lookup() -> None:
    runtime = podman_runtime()
    tag = runtime._event(raw("image", "tag", HEX, "docker.io/library/x:2"))
    assert tag is not None and (tag.action, tag.object_id, tag.image_id) == ("tag", ID, ID)
    removed = runtime._event(raw("image", "remove", HEX))
    assert removed is not None and (removed.action, removed.image_id) == ("delete", ID)
    load = runtime._event(raw("image", "loadfromarchive", "", "/var/tmp/api_load.tar123"))
    assert load is not None and (load.action, load.image_id) == ("load", None)
    assert runtime.requests == 0  # nothing looked up (there is no engine to ask)


def test_docker_event_names_are_left_alone() -> None:
    runtime = podman_runtime()
    runtime._podman = False
    assert runtime._event(raw("container", "remove", "c1")) is None  # not a Docker action
    assert runtime._event(raw("image", "tag", HEX)) is not None


@pytest.mark.parametrize(
    ("started", "finished", "expected"),
    [
        ("2026-12-01T23:45:14.082071203Z", "2026-12-01T23:45:14.081114371Z", "started"),
        ("2026-12-01T23:45:14.082071203Z", "2026-12-01T23:45:15.5Z", "finished"),
        ("0001-01-01T00:00:00Z", "2026-12-01T23:45:15.5Z", "finished"),
    ],
)
def test_finish_time_is_never_before_the_start(started: str, finished: str, expected: str) -> None:
    runtime = podman_runtime()
    state = {"StartedAt": started, "FinishedAt": finished}
    runtime._inspect = lambda what, path, sdk: {"State": state}  # type: ignore[method-assign]
    from nodegc.runtime.docker import parse_time

    _, got = runtime._finished_at("c1")
    assert got == parse_time(state["StartedAt" if expected == "started" else "FinishedAt"])
