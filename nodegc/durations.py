"""Go / kubelet duration strings ("90s", "2m", "1h30m", "0s") to and from `timedelta`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string; a leading '-' is accepted (validation rejects negatives).

    Raises ValueError with the accepted form when the text is not a duration.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty duration; use a Go duration such as '90s', '2m' or '1h30m'")
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return timedelta(0)
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s) or pos == 0:
        raise ValueError(
            f"{_shown(text)} is not a duration; use a Go duration such as '90s', '2m' or '1h30m'"
        )
    try:
        return timedelta(seconds=sign * seconds)
    except OverflowError:
        raise ValueError(
            f"{_shown(text)} is out of range; a duration is at most {timedelta.max.days} days"
        ) from None


def _shown(text: str, limit: int = 40) -> str:
    """The text as an error message quotes it: repr, cut short when long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def format_duration(value: timedelta) -> str:
    """Format as a Go-style string that parse_duration reads back exactly:
    0s, 1m30s, 2h, 1h30m, 1.5s, 250ms, 10us (timedelta's resolution is a microsecond)."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    if micros < 1_000_000:
        return f"{sign}{micros // 1000}ms" if micros % 1000 == 0 else f"{sign}{micros}us"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    out = f"{hours}h" if hours else ""
    out += f"{minutes}m" if minutes else ""
    if fraction:
        out += f"{seconds}.{fraction:06d}".rstrip("0") + "s"
    elif seconds:
        out += f"{seconds}s"
    return sign + out


def humanize_age(delta: timedelta) -> str:
    """'45s', '12m', '3h', '2d' — coarse, for tables."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
