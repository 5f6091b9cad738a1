"""The engine's events: the live stream (`events`), what it still remembers (`past_events`),
and Podman's event log as its record of tag times; each event decoded into a `RuntimeEvent`."""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from nodegc.model import RuntimeEvent, short_id
from nodegc.runtime import RuntimeError_
from nodegc.runtime.docker.decoding import loads
from nodegc.runtime.docker.podman import (
    PODMAN_ACTIONS,
    PODMAN_FILTER,
    PODMAN_TAG_EVENTS,
    podman_image_id,
)
from nodegc.runtime.docker.transport import EngineClient

log = logging.getLogger("nodegc.runtime.docker")

# Events that tell about use and arrival; exec and health-check events are filtered out by the
# engine itself so that they cost nothing (docuum #371).
CONTAINER_ACTIONS = ("create", "start", "die", "destroy")
IMAGE_ACTIONS = ("pull", "load", "tag", "untag", "delete", "import")


def tag_events(raws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of Podman's log that say when an image was pulled, tagged or imported."""
    return [
        raw
        for raw in raws
        if raw.get("Type") == "image"
        and str(raw.get("Action") or "").split(":", 1)[0] in PODMAN_TAG_EVENTS
    ]


class EngineEvents(EngineClient):
    """The event requests of a Docker-API engine, and their decoding."""

    def __init__(self, endpoint: str, timeout: timedelta) -> None:
        super().__init__(endpoint, timeout)
        # Container id -> image id, from listings and create events (destroy events lack it).
        self._container_image: dict[str, str] = {}
        self._event_stream: Any = None
        # The pull, tag and import events of Podman's event log as read in this observation
        # (`_podman_tagged_at`, `past_events`); dropped by the next listing of images.
        self._podman_tags: list[dict[str, Any]] | None = None
        self._podman_tags_asked: set[str] = set()  # images whose tag time they answered

    def _podman_tagged_at(self, image_ids: Sequence[str]) -> dict[str, datetime]:
        """The latest pull, tag or import event of each image in Podman's event log. A load has no
        id in Podman's events (`loadfromarchive`, named after a temp file): loaded images get no
        evidence from it. The log is read once per observation (a batch of new images after
        another, and `past_events` for a lost history, read the same log that grows with the
        node's past): its tag events are kept until the next listing of images, and read anew for
        an image asked about again."""
        if not image_ids:
            return {}
        wanted = set(image_ids)
        if self._podman_tags is None or wanted & self._podman_tags_asked:
            # Not read in this observation, or asked again about an image: read (anew).
            self._podman_tags_asked = set()
            filters = json.dumps({"type": ["image"], "event": list(PODMAN_TAG_EVENTS)})
            # stream=false: the log so far, then the answer ends (Podman 4.3's `until` loses
            # events).
            query = {"since": "0", "stream": "false", "filters": filters}
            self._podman_tags = tag_events(self._event_log("read the image events", query))
        self._podman_tags_asked |= wanted
        found: dict[str, datetime] = {}
        for raw in self._podman_tags:
            event = self._event(raw)
            if event is None or event.image_id not in wanted:
                continue
            if event.image_id not in found or event.time > found[event.image_id]:
                found[event.image_id] = event.time
        return found

    def past_events(self, until: datetime) -> list[RuntimeEvent]:
        """What the engine still remembers of container and image events up to `until`, in one
        request (Docker keeps its last 256 events in memory; Podman its event log, kept for the
        tag times asked next in the same observation). Container events carry the image as the
        container was created from it (`image_ref`), resolved by the caller: the containers are
        mostly gone, so none is inspected here."""
        names = PODMAN_FILTER if self.podman else (*CONTAINER_ACTIONS, *IMAGE_ACTIONS)
        filters = json.dumps({"type": ["container", "image"], "event": list(names)})
        query = {"since": "0", "filters": filters}
        query.update({"stream": "false"} if self.podman else {"until": f"{until.timestamp():.9f}"})
        raws = self._event_log("read the engine's past events", query)
        if self.podman:
            self._podman_tags, self._podman_tags_asked = tag_events(raws), set()
        events = []
        for raw in raws:
            event = self._event(raw, lookup=False)
            if event is not None:
                events.append(event)
        return events

    def _event_log(self, what: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /events that ends by itself (`until`, or Podman's stream=false): its objects."""
        query = urllib.parse.urlencode(params)
        if self._plain is not None:
            body = self._plain_request(what, "GET", f"/events?{query}")
        else:

            def read() -> bytes:
                response = self.api._get(self.api._url("/events") + "?" + query)
                self.api._raise_for_status(response)
                return bytes(response.content)

            body = self._call(what, read, read=True)
        found: list[dict[str, Any]] = []
        for line in body.splitlines():
            try:
                raw = loads(line)
            except ValueError:
                continue
            if isinstance(raw, dict):
                found.append(raw)
        return found

    def events(self, since: datetime | None = None) -> Iterator[RuntimeEvent]:
        names = PODMAN_FILTER if self.podman else (*CONTAINER_ACTIONS, *IMAGE_ACTIONS)
        filters = {"type": ["container", "image"], "event": list(names)}
        with self._errors("watch events"):
            stream = self._read(lambda: self.api.events(since=since, filters=filters, decode=True))
            self._event_stream = stream
        try:
            with self._errors("watch events"):
                for raw in stream:
                    event = self._event(raw)
                    if event is not None:
                        yield event
        finally:
            self._event_stream = None
            stream.close()

    def stop_events(self) -> None:
        stream = self._event_stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # closing a broken stream may raise anything
                log.debug("closing the event stream failed", exc_info=True)

    def _event(self, raw: dict[str, Any], *, lookup: bool = True) -> RuntimeEvent | None:
        """One event of the engine's; `lookup`: ask the engine what image an unknown container
        or reference names (the live stream; never for the past, whose objects are gone)."""
        kind, action = raw.get("Type"), str(raw.get("Action") or "").split(":", 1)[0]
        actor = raw.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        object_id = str(actor.get("ID") or raw.get("id") or "")
        if self._podman:
            action = PODMAN_ACTIONS.get((str(kind), action), action)
            if kind == "image":
                object_id = podman_image_id(object_id)
        nanos = raw.get("timeNano")
        when = (
            datetime.fromtimestamp(nanos / 1e9, UTC)
            if nanos
            else datetime.fromtimestamp(raw.get("time") or 0, UTC)
        )
        if kind == "container" and action in CONTAINER_ACTIONS:
            image_id = self._container_image.get(object_id)
            if image_id is None and action != "destroy" and lookup:
                image_id = self._image_id_of_container(object_id)
            if action == "destroy" and lookup:
                self._container_image.pop(object_id, None)
            return RuntimeEvent(
                "container", action, object_id, image_id, when, attrs.get("name", ""),
                image_ref=str(attrs.get("image") or ""),
            )  # fmt: skip
        if kind == "image" and action in IMAGE_ACTIONS:
            image_id = object_id if object_id.startswith("sha256:") else None
            # A Podman load names a temp file, not the image: nothing to look up.
            if image_id is None and action in ("pull", "tag", "load") and object_id and lookup:
                image_id = self._image_id_of(object_id)
            return RuntimeEvent("image", action, object_id, image_id, when, attrs.get("name", ""))
        return None

    def _image_id_of_container(self, container_id: str) -> str | None:
        try:
            data = self._call(
                f"inspect container {short_id(container_id)}",
                lambda: self.api.inspect_container(container_id),
                read=True,
            )
        except RuntimeError_:
            return None
        image_id = str(data.get("Image") or "") or None
        if image_id:
            self._container_image[container_id] = image_id
        return image_id

    def _image_id_of(self, reference: str) -> str | None:
        try:
            data = self._call(
                f"inspect image {reference}", lambda: self.api.inspect_image(reference), read=True
            )
        except RuntimeError_:
            return None
        return str(data.get("Id") or "") or None

    # -- disk usage: the build cache and writable layers (asked only under pressure) --------
