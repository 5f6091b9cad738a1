"""`nodegc status` and `report`: the daemon's fill-rate estimate and breakdown (from /status
`details`) in words, engine text escaped."""

from __future__ import annotations

from typing import Any

from nodegc.cli.safe import visible
from nodegc.units import human_bytes


def fill_rate_line(rate: dict[str, Any] | None) -> str:
    """The table's line for the daemon's estimate."""
    if rate is None:
        return "Fill rate: no running daemon answered (nodegc run estimates it)"
    high, full = rate.get("seconds_until_high"), rate.get("seconds_until_full")
    return (
        f"Fill rate of {visible(rate.get('filesystem', '?'))} (the daemon's estimate): "
        f"{rate.get('bytes_per_second', 0)} B/s; high threshold "
        + (f"in {high} s" if high is not None else "not approaching")
        + "; full "
        + (f"in {full} s" if full is not None else "not approaching")
    )


def fill_rate_lines(rates: Any) -> list[str]:
    """One line per filesystem the daemon estimates (its /status `details.fill_rates`)."""
    if not isinstance(rates, list):
        return []
    return [fill_rate_line(r) for r in rates if isinstance(r, dict)]


def detail_lines(key: str, value: Any) -> str:
    """`nodegc status`'s lines for the daemon's breakdown and fill rates ("" for other details;
    `fill_rate`, the image filesystem's, is one of `fill_rates`: status shows the latter)."""
    if key == "fill_rate" and isinstance(value, dict):
        return fill_rate_line(value)
    if key == "fill_rates":
        return "\n".join(fill_rate_lines(value))
    if key != "where_the_space_is" or not isinstance(value, list):
        return ""
    lines = []
    for fs in value:
        if not isinstance(fs, dict):
            continue
        sizes = fs.get("bytes") if isinstance(fs.get("bytes"), dict) else {}
        kinds = ", ".join(
            f"{visible(kind)} {human_bytes(int(size))}"
            for kind, size in sizes.items()
            if isinstance(size, int) and size > 0
        )
        lines.append(f"where the space is on {visible(fs.get('path', '?'))}: {kinds}")
        for h in fs.get("biggest") or []:
            if isinstance(h, dict):
                size = int(h.get("size_bytes") or 0)
                lines.append(
                    f"  {visible(h.get('kind'))} {visible(h.get('name'))} {human_bytes(size)}"
                )
    return "\n".join(lines)
