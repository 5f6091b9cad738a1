"""The daemon's status as Kubernetes-style conditions, and `nodegc status` to read it.

Each condition is True, False or Unknown with a CamelCase reason, a message for people and the
time its status last changed. Reason and message follow every observation; the transition time
moves only when the status itself changes, so "False for 3h" means exactly that.
"""

from __future__ import annotations

import enum
import http.client
import json
import re
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from nodegc import __version__
from nodegc.cli import EXIT_OK, EXIT_UNREACHABLE
from nodegc.config import Settings
from nodegc.cycle import Clock, utcnow
from nodegc.durations import format_duration, humanize_age
from nodegc.render import iso, table
from nodegc.server import split_address, url_host

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


# -- `nodegc status` ----------------------------------------------------------------------------
def status_url(address: str) -> str:
    """The URL of /status for a listen address; a wildcard host is reached on loopback."""
    host, port = split_address(address)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://{url_host(host)}:{port}/status"


def fetch_status(address: str, timeout: float = STATUS_TIMEOUT_SECONDS) -> dict[str, Any]:
    """GET /status from the daemon listening on `address`. Proxies are never used.

    Raises OSError (unreachable), urllib.error.HTTPError (answered, but not 200),
    http.client.HTTPException (not HTTP) or ValueError (not a JSON object).
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(status_url(address), timeout=timeout) as resp:
        data = json.loads(resp.read())
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    return data


def render_conditions(data: Mapping[str, Any], now: datetime) -> str:
    """The /status document for people: a heading, the conditions table, then the details."""
    rows = []
    for c in data.get("conditions") or []:
        if not isinstance(c, Mapping):
            continue
        rows.append(
            [
                str(c.get("type", "-")),
                str(c.get("status", "-")),
                str(c.get("reason", "-")),
                _age(c.get("lastTransitionTime"), now),
                " ".join(str(c.get("message", "")).split()) or "-",
            ]
        )
    node = data.get("node") or "this node"
    parts = [f"nodegc {data.get('version', '?')} on {node}", table(HEADERS, rows)]
    details = data.get("details")
    if isinstance(details, Mapping) and details:
        parts.append("")
        parts += [f"{key}: {_detail(value)}" for key, value in details.items()]
    return "\n".join(parts)


def _age(value: Any, now: datetime) -> str:
    try:
        return humanize_age(now - datetime.fromisoformat(str(value)))
    except (TypeError, ValueError):
        return "-"


def _detail(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def status_command(
    settings: Settings,
    output: str,
    *,
    clock: Clock = utcnow,
    timeout: float = STATUS_TIMEOUT_SECONDS,
) -> int:
    """`nodegc status`: the running daemon's conditions as a table, or its JSON (`output="json"`).

    Returns 0, or 3 with one line on stderr naming the address when the daemon cannot be asked.
    """
    address = settings.metrics.address
    if not settings.metrics.enabled:
        print(
            f"nodegc: no status to ask for: metrics.enabled = false, so the daemon does not "
            f"listen on {address}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    try:
        data = fetch_status(address, timeout)
    except urllib.error.HTTPError as exc:
        problem = f"answered HTTP {exc.code} for /status; is it nodegc?"
    except urllib.error.URLError as exc:
        problem = f"not reachable ({_reason(exc.reason)}); is `nodegc run` running?"
    except (OSError, http.client.HTTPException) as exc:
        problem = f"not reachable ({_reason(exc)}); is `nodegc run` running?"
    except ValueError:
        problem = "answered /status with something other than nodegc's JSON; is it nodegc?"
    else:
        if output == "json":
            json.dump(data, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(render_conditions(data, clock()))
        return EXIT_OK
    print(f"nodegc: the daemon at {address} {problem}", file=sys.stderr)
    return EXIT_UNREACHABLE


def _reason(exc: object) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
