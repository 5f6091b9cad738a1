"""Live last use: the engine's event stream folded into history between cycles.

An image used by a container that lived 30 seconds between two cycles still counts as used. Events
are batched: the watcher only notes the latest time per image; a flush writes history once for the
whole batch. When the stream breaks (engine restart) it reconnects with capped exponential backoff
and asks for a resync from a full listing, since events may have been missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from nodegc.daemon.backoff import Backoff
from nodegc.model import RuntimeEvent, short_id
from nodegc.policy.history import ARRIVAL_ACTIONS, USE_ACTIONS
from nodegc.runtime import Runtime, RuntimeError_

log = logging.getLogger(__name__)

# Which events count as use or arrival is the policy's rule (policy/history.py).


class EventBatch:
    """Latest use and arrival time per image since the last flush. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.used: dict[str, datetime] = {}
        self.arrived: dict[str, datetime] = {}

    def add(self, event: RuntimeEvent) -> None:
        if not event.image_id:
            return
        with self._lock:
            if event.kind == "container" and event.action in USE_ACTIONS:
                _latest(self.used, event.image_id, event.time)
            elif event.kind == "image" and event.action in ARRIVAL_ACTIONS:
                self.arrived.setdefault(event.image_id, event.time)

    def take(self) -> tuple[dict[str, datetime], dict[str, datetime]]:
        with self._lock:
            used, arrived = self.used, self.arrived
            self.used, self.arrived = {}, {}
            return used, arrived


def _latest(into: dict[str, datetime], key: str, when: datetime) -> None:
    if key not in into or when > into[key]:
        into[key] = when


class EventWatcher:
    """Runs in its own thread; `stop()` ends it promptly."""

    def __init__(
        self,
        runtime: Runtime,
        batch: EventBatch,
        *,
        on_connected: Callable[[], None],
        on_broken: Callable[[str], None],
        backoff: Backoff | None = None,
    ) -> None:
        self.runtime = runtime
        self.batch = batch
        self.on_connected = on_connected
        self.on_broken = on_broken
        self.backoff = backoff or Backoff(1.0, 30.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self.last_event_time: datetime | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.runtime.stop_events()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.runtime.ping()
                # Resync first: whatever happened while disconnected is in the full listing.
                self.on_connected()
                self.backoff.reset()
                for event in self.runtime.events(since=self.last_event_time):
                    self.last_event_time = event.time
                    log.debug(
                        "engine event",
                        extra={
                            "kind": event.kind,
                            "action": event.action,
                            "object": short_id(event.object_id),
                            "object_name": event.name,
                            "image": event.image_id,
                        },
                    )
                    self.batch.add(event)
                    if self._stop.is_set():
                        return
                reason = "the engine closed the event stream"
            except RuntimeError_ as exc:
                reason = str(exc)
            except Exception as exc:  # a broken stream surfaces as many kinds of error
                reason = f"{type(exc).__name__}: {exc}"
            if self._stop.is_set():
                return
            self.on_broken(reason)
            self._stop.wait(self.backoff.next_delay())
