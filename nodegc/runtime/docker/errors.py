"""How the engine's error answers map onto the runtime interface's errors (Docker's and
Podman's statuses and messages), and the text of an SDK error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nodegc.runtime import Conflict, NotFound, RuntimeError_

if TYPE_CHECKING:
    import docker.errors

# status matches (None: any) and whose text is in the message (lowercased; None: any text) wins;
# no rule: RuntimeError_. Docker says 409 for "in use" and "running"; Podman says 500 for some.
_ERROR_RULES: tuple[tuple[int | None, str | None, type[RuntimeError_]], ...] = (
    (404, None, NotFound),
    (409, None, Conflict),
    # Podman: removing a running or paused container ("cannot remove container ... as it is
    # running - running or paused containers cannot be removed without force: container state
    # improper").
    (500, "container state improper", Conflict),
    # Podman: deleting by id an image that has been tagged again meanwhile ("unable to delete
    # image ... by ID with more than one tag (...): please force removal").
    (500, "by id with more than one tag", Conflict),
    # Podman: an image a container uses ("image is in use by a container").
    (500, "in use by a container", Conflict),
    # Gone is gone, whatever the status: Docker answers 500 "unrecognized image ID" or "No such
    # image" for an image removed between listing and removal, Podman 500 "image not known" /
    # "no such container". The caller skips it as already gone, never as failed.
    (None, "no such image", NotFound),
    (None, "unrecognized image id", NotFound),
    (None, "image not known", NotFound),
    (None, "no such container", NotFound),
    (None, "no such object", NotFound),
)


def classify_error(status: int, message: str) -> type[RuntimeError_]:
    """The runtime error an engine's answer `status` with `message` means (see _ERROR_RULES)."""
    text = message.lower()
    for rule_status, needle, error in _ERROR_RULES:
        if (rule_status is None or rule_status == status) and (needle is None or needle in text):
            return error
    return RuntimeError_


def engine_error(what: str, status: int, message: str) -> RuntimeError_:
    """The exception for an error answer: NotFound and Conflict say what the engine said;
    anything else also gives the status."""
    error = classify_error(status, message)
    if error is RuntimeError_:
        return RuntimeError_(f"{what}: engine answered {status}: {message}")
    return error(f"{what}: {message}")


def explanation(exc: docker.errors.APIError) -> str:
    text = exc.explanation
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return str(text or exc).strip()
