"""The daemon's status as Kubernetes-style conditions, and `nodegc status` to read it.

Each condition is True, False or Unknown with a CamelCase reason, a message for people and the
time its status last changed. Reason and message follow every observation; the transition time
moves only when the status itself changes, so "False for 3h" means exactly that.
"""

from __future__ import annotations

import enum
import re
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from nodegc import __version__
from nodegc.clock import Clock, utcnow
from nodegc.durations import format_duration
from nodegc.units import iso

ConditionStatus = Literal["True", "False", "Unknown"]

RUNTIME_REACHABLE = "RuntimeReachable"
DISK_PRESSURE = "DiskPressure"
IMAGE_GC_SUCCEEDED = "ImageGCSucceeded"
CONTAINER_GC_SUCCEEDED = "ContainerGCSucceeded"
INITIAL_CONDITIONS = (RUNTIME_REACHABLE, DISK_PRESSURE, IMAGE_GC_SUCCEEDED, CONTAINER_GC_SUCCEEDED)
NOT_YET_OBSERVED = "NotYetObserved"

_REASON = re.compile(r"[A-Z][A-Za-z0-9]*")
STATUS_TIMEOUT_SECONDS = 5.0
HEADERS = ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]


def status_word(value: bool | None) -> ConditionStatus:
    """True -> "True", False -> "False", None -> "Unknown"."""
    if value is None:
        return "Unknown"
    return "True" if value else "False"


@dataclass(frozen=True, slots=True)
class Condition:
    """One typed aspect of the daemon's state."""

    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: datetime

    def to_json(self) -> dict[str, Any]:
        """Kubernetes' camelCase form."""
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": iso(self.last_transition_time),
        }


class StatusBoard:
    """The current conditions plus free-form details; thread-safe (the loop writes, the HTTP
    server reads). `node` defaults to this host's name."""

    def __init__(
        self, clock: Clock = utcnow, *, node: str | None = None, version: str = __version__
    ) -> None:
        self.clock = clock
        self.node = socket.gethostname() if node is None else node
        self.version = version
        self._lock = threading.Lock()
        now = clock()
        self._conditions: dict[str, Condition] = {
            t: Condition(t, "Unknown", NOT_YET_OBSERVED, "not observed yet", now)
            for t in INITIAL_CONDITIONS
        }
        self._details: dict[str, Any] = {}

    def set(self, type: str, status: bool | None, reason: str, message: str) -> bool:
        """Record an observation of condition `type`; True when its status changed.

        Reason and message are always replaced; lastTransitionTime only moves with the status.
        Raises ValueError when `reason` is not CamelCase.
        """
        if not _REASON.fullmatch(reason):
            raise ValueError(f"condition {type}: reason {reason!r} must be CamelCase")
        word = status_word(status)
        with self._lock:
            old = self._conditions.get(type)
            changed = old is None or old.status != word
            if old is None or changed:
                new = Condition(type, word, reason, message, self.clock())
            else:
                new = replace(old, reason=reason, message=message)
            self._conditions[type] = new
            return changed

    def get(self, type: str) -> Condition | None:
        """The condition of that type, or None when none was ever set."""
        with self._lock:
            return self._conditions.get(type)

    def conditions(self) -> list[Condition]:
        """Every condition, in the order they were first set."""
        with self._lock:
            return list(self._conditions.values())

    def set_details(self, **details: Any) -> None:
        """Merge free-form facts into the `details` of /status (last cycle, bytes freed, ...).

        Datetimes, durations and enums are rendered as JSON strings.
        """
        with self._lock:
            self._details.update(details)

    def to_json(self) -> dict[str, Any]:
        """The /status document."""
        with self._lock:
            return {
                "node": self.node,
                "version": self.version,
                "conditions": [c.to_json() for c in self._conditions.values()],
                "details": _jsonable(self._details),
            }


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
