"""Which `Host` headers the listener answers: loopback names, IP literals and configured names.

A page in a browser on the node can make a name it controls resolve to 127.0.0.1 (DNS
rebinding) and then read whatever a loopback listener answers under that name. The browser
still sends the attacker's name in `Host`, so a listener that answers only names it knows
cannot be read that way. Kubernetes probes and Prometheus scrape by IP (an IP literal in `Host`);
a Service name is a configured name (`metrics.allowed_hosts`).

Also the listen address split and written back (`split_address`, `url_host`), here rather than
in `daemon.server` so that a command that only asks the daemon (`report`, `status`) does not
import the server and `prometheus_client`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def host_name(header: str) -> str:
    """The host part of a `Host` header ("[::1]:9797" -> "::1", "Name.:80" -> "name")."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def normalise(names: Iterable[str]) -> frozenset[str]:
    return frozenset(n.strip().lower().rstrip(".") for n in names if n.strip())


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    """Whether to answer a request with this `Host` header. No header (HTTP/1.0, which no
    browser sends) is answered; `allowed` holds the configured names, normalised."""
    if header is None:
        return True
    name = host_name(header)
    if not name:
        return False
    return name in LOOPBACK_NAMES or name in allowed or is_ip_literal(name)


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (host may be empty, a name, an IPv4 or a [bracketed] IPv6 address) to
    (host without brackets, port). Raises ValueError for anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {address!r}: must be host:port, e.g. 127.0.0.1:9797")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def url_host(host: str) -> str:
    """`host` as it goes in a URL: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host
