"""`nodegc status`: ask the running daemon for its conditions and print them."""

from __future__ import annotations

import http.client
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from nodegc.cli.exits import EXIT_OK, EXIT_UNREACHABLE
from nodegc.cli.safe import visible, visible_lines
from nodegc.cli.space_status import detail_lines
from nodegc.cli.tables import table
from nodegc.clock import Clock, utcnow
from nodegc.config import Settings
from nodegc.daemon.hosts import split_address, url_host
from nodegc.durations import humanize_age

STATUS_TIMEOUT_SECONDS = 5.0
HEADERS = ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]


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
                visible(c.get("message", "")).strip() or "-",
            ]
        )
    node = visible(data.get("node") or "this node")
    parts = [f"nodegc {visible(data.get('version', '?'))} on {node}", table(HEADERS, rows)]
    details = data.get("details")
    if isinstance(details, Mapping) and details:
        parts.append("")
        parts += [
            detail_lines(key, value) or f"{visible(key)}: {visible(_detail(value))}"
            for key, value in details.items()
            if not (key == "fill_rate" and "fill_rates" in details)  # one of fill_rates
        ]
    return visible_lines("\n".join(parts))


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
