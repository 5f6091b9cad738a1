"""Podman's Docker-compatible service, where it differs from Docker (see docs/podman.md): its own
event names, image ids without `sha256:`, local images listed as `localhost/NAME:TAG`, its
`/version`. The adapter (`DockerRuntime`) serves both engines and asks these."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from nodegc.runtime.docker.decoding import HEX_ID

# Podman's names for the events the adapter watches (`events.py`): its `event` filter knows only
# these (`die`, `destroy`, `delete` and `load` never match), and its stream says `die` and
# `delete` but `remove` for a container and `loadfromarchive` (with no id) for a load.
PODMAN_FILTER = ("create", "start", "died", "remove", "pull", "loadfromarchive", "tag", "untag",
                 "import")  # fmt: skip
PODMAN_ACTIONS = {
    ("container", "died"): "die",
    ("container", "remove"): "destroy",
    ("image", "remove"): "delete",
    ("image", "loadfromarchive"): "load",
}
# Image events that say when an image was tagged or pulled (Podman's LastTagTime is always zero).
PODMAN_TAG_EVENTS = ("pull", "tag", "import")


def podman_image_id(object_id: str) -> str:
    """An image id as Docker writes it: Podman's events and `Deleted` rows omit `sha256:`."""
    return f"sha256:{object_id}" if HEX_ID.match(object_id) else object_id


def podman_aliases(references: Sequence[str]) -> tuple[str, ...]:
    """The short names Podman resolves to a local image: `myapp:1` for `localhost/myapp:1` (it
    lists an image loaded or built as `myapp:1` under `localhost/`), so pins match either."""
    return tuple(r.removeprefix("localhost/") for r in references if r.startswith("localhost/"))


def is_podman(version: Any) -> bool:
    """Whether a `/version` answer is Podman's (its components name "Podman Engine")."""
    if not isinstance(version, dict):
        return False
    components = version.get("Components") or []
    names = [str(c.get("Name", "")) for c in components if isinstance(c, dict)]
    return any(name.lower().startswith("podman") for name in names)


def normalise_row(row: Any) -> Any:
    """A Podman image-delete row with its id written as Docker writes it (`sha256:`)."""
    if isinstance(row, dict) and isinstance(row.get("Deleted"), str):
        return {**row, "Deleted": podman_image_id(row["Deleted"])}
    return row


def podman_version_answer(libpod_version: str, api_version: str) -> dict[str, Any] | None:
    """Podman's `/version` as its `/_ping` headers tell it: Podman answers a `GET /version` in
    seconds (it runs `conmon --version` and the OCI runtime's to fill in their components: 0.9 s
    at the end of a `once` that missed its target, 2.4 s on a busy machine), while its
    `Libpod-Api-Version` header, on every answer, is the same version (4.3.1, 5.8.6). The
    engine's own fields only (`Version`, `ApiVersion`, the "Podman Engine" component); None when
    the header is not a version, so the engine is asked."""
    if not re.fullmatch(r"\d+\.\d+\.\d+\S*", libpod_version):
        return None
    return {
        "Version": libpod_version,
        "ApiVersion": api_version,
        "Components": [{"Name": "Podman Engine", "Version": libpod_version}],
    }
