"""The CRI runtime's container events (`GetContainerEvents`, or a blocked stream that pings a
runtime without it), and the image a container or an event names, resolved through the last
listing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import grpc

from nodegc.model import RuntimeEvent
from nodegc.runtime.cri.decoding import from_nanos, normalize_reference
from nodegc.runtime.cri.transport import CriClient
from nodegc.runtime.cri_proto import api_pb2 as pb

log = logging.getLogger("nodegc.runtime.cri")

EVENT_ACTIONS = {
    pb.CONTAINER_CREATED_EVENT: "create",
    pb.CONTAINER_STARTED_EVENT: "start",
    pb.CONTAINER_STOPPED_EVENT: "die",
    pb.CONTAINER_DELETED_EVENT: "destroy",
}


class CriEvents(CriClient):
    """Events and the names → image ids they are resolved through (set by the adapter)."""

    _clock: Callable[[], datetime]
    # Every name (id, tag, digest) of every listed image -> its id, from the last listing.
    _image_ids: dict[str, str]
    # Container id -> image id, from listings, for events that do not carry it.
    _container_image: dict[str, str]
    events_supported: bool | None
    _eventless_ping: float
    _stop_events: threading.Event
    _event_call: Any

    def close(self) -> None:
        self.stop_events()
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._runtime_stub = self._image_stub = None

    def _image_id_named(self, reference: str) -> str:
        """An image reference resolved to its id through the last listing (as is if unknown)."""
        ids = self._image_ids
        return ids.get(reference) or ids.get(normalize_reference(reference)) or reference

    def _image_id_of(self, row: pb.Container | pb.ContainerStatus) -> str:
        """The id of the image a container uses: CRI's image_id (newer runtimes), else image_ref
        (an id, or a digest or tag resolved through the last image listing)."""
        for ref in (row.image_id, row.image_ref, row.image.image):
            if ref and ref in self._image_ids:
                return self._image_ids[ref]
        return row.image_id or row.image_ref or row.image.image

    def past_events(self, until: datetime) -> list[RuntimeEvent]:
        """None: CRI keeps no event history (the containers' own times are the evidence)."""
        return []

    def events(self, since: datetime | None = None) -> Iterator[RuntimeEvent]:
        """Container events as they happen (`since` is ignored: CRI keeps no event history).

        Without GetContainerEvents, yields nothing: blocks until `stop_events()`, or raises
        RuntimeUnavailable when the runtime stops answering.
        """
        if self._take_stop():
            return
        if self.events_supported is not False:
            call = self.rt.GetContainerEvents(pb.GetEventsRequest())
            self._event_call = call
            self.requests += 1
            try:
                if self._take_stop():  # asked to stop before the call could be cancelled
                    call.cancel()
                    return
                for response in call:
                    self.events_supported = True
                    event = self._event(response)
                    if event is not None:
                        yield event
                return
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                if code is grpc.StatusCode.CANCELLED and self._take_stop():
                    return
                if code is not grpc.StatusCode.UNIMPLEMENTED:
                    raise self._translate("watch container events", exc) from None
                self.events_supported = False
                log.info(
                    "the runtime has no GetContainerEvents: image use is learnt at each listing",
                    extra={"endpoint": self.endpoint},
                )
            finally:
                self._event_call = None
        while not self._stop_events.wait(self._eventless_ping):
            self.ping()
        self._take_stop()

    def _take_stop(self) -> bool:
        """Whether `stop_events()` was asked (and not yet honoured); clears the request."""
        if self._stop_events.is_set():
            self._stop_events.clear()
            return True
        return False

    def stop_events(self) -> None:
        """Make a blocked `events()` return (or the next one return at once)."""
        self._stop_events.set()
        call = self._event_call
        if call is not None:
            try:
                call.cancel()
            except Exception:  # cancelling a finished call may raise anything
                log.debug("cancelling the event stream failed", exc_info=True)

    def _event(self, response: pb.ContainerEventResponse) -> RuntimeEvent | None:
        action = EVENT_ACTIONS.get(response.container_event_type)
        if action is None:
            return None
        container_id = response.container_id
        image_id = self._container_image.get(container_id)
        name = ""
        for status in response.containers_statuses:
            if status.id == container_id:
                image_id = self._image_id_of(status) or image_id
                name = status.metadata.name
        if action == "destroy":
            self._container_image.pop(container_id, None)
        elif image_id:
            self._container_image[container_id] = image_id
        when = from_nanos(response.created_at) or self._clock()
        return RuntimeEvent("container", action, container_id, image_id, when, name)
