"""Decoding the Docker Engine API's answers (listings, inspects, `/system/df`, a listing's
Status text) into the model: pure functions over the JSON the engine gave."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from nodegc.model import BuildCacheRecord, Container, ContainerState, Image, Layer, short_id
from nodegc.runtime.layers import chain_ids

HEX_ID = re.compile(r"^[0-9a-f]{64}$")


def loads(body: bytes | str) -> Any:
    """An engine's JSON answer, decoded by msgspec (about half the CPU of `json.loads`: 0.21 s
    instead of 0.35 s for the listings of 5,000 images and 20,000 containers; integers of any
    size kept exact, as the json module keeps them); what msgspec refuses and the json module
    takes (a lone surrogate escape, NaN, 1e400: an untrusted engine's text) decodes as before,
    and what neither takes raises ValueError."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return json.loads(body)


class _ContainerRow(msgspec.Struct):
    """The fields of a container listing's row nodegc reads (the rest, most of a 17 MB answer
    at 20,000 containers: ports, mounts, networks, host config, is skipped while decoding)."""

    Id: str
    Names: list[str] | None = None
    ImageID: str | None = None
    State: str | None = None
    Status: str | None = None
    Created: int | None = None
    Labels: dict[str, str] | None = None


_CONTAINER_ROWS = msgspec.json.Decoder(list[_ContainerRow])
_ROW_FIELDS = _ContainerRow.__struct_fields__


def container_rows(body: bytes | str) -> Any:
    """A container listing's rows with only the fields nodegc reads (the others are skipped,
    not built: less CPU and memory than decoding every field); an answer of another shape or
    text decodes whole as `loads` does (the callers check what they got)."""
    try:
        rows = _CONTAINER_ROWS.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return loads(body)
    return [{f: getattr(r, f) for f in _ROW_FIELDS} for r in rows]


def parse_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 with nanoseconds (or the zero time) to an aware datetime."""
    if not value or value.startswith("0001-01-01"):
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return None
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(f"{m.group(1)}{frac}{zone}").astimezone(UTC)


def finish_time(state: dict[str, Any]) -> datetime | None:
    """When a container stopped, from an inspect's `State` (None: never, or not said). Podman:
    a container that exits at once can say it finished a few ms before it started: it
    finished when it started."""
    finished, started = parse_time(state.get("FinishedAt")), parse_time(state.get("StartedAt"))
    if finished is not None and started is not None and finished < started:
        return started
    return finished


_HUMAN = re.compile(
    r"^(?:Exited \(-?\d+\)|Created|Dead)?\s*(?P<n>Less than a|About an?|\d+)\s+"
    r"(?P<unit>second|minute|hour|day|week|month|year)s?\s+ago",
)
_UNIT_SECONDS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
# Slack on each side of a window read from a listing's Status: the listing is answered a moment
# after the engine wrote the text, and sub-second rounding.
_WINDOW_SLACK = timedelta(seconds=2)


def status_age(status: str) -> float | None:
    """The coarse age in seconds in a listing's Status ("Exited (0) 3 hours ago"), if any."""
    m = _HUMAN.match(status.strip())
    if not m:
        return None
    n = m.group("n")
    count = 0.5 if n.startswith("Less") else 1 if n.startswith("About") else int(n)
    return count * _UNIT_SECONDS[m.group("unit")]


def status_age_range(status: str) -> tuple[float, float] | None:
    """Bounds in seconds on the age a listing's Status text gives ("Exited (0) 3 hours ago").

    The engine writes go-units' HumanDuration, which truncates or rounds to the unit shown
    ("About an hour" and "N hours" round in newer versions, truncate in older ones; days and
    weeks are counted from rounded hours): "N units" means an age in [N, N + 1) units, give or
    take half a unit (at most an hour). Wide enough for every version; None when unparsable.
    """
    m = _HUMAN.match(status.strip())
    if not m:
        return None
    n, unit = m.group("n"), _UNIT_SECONDS[m.group("unit")]
    if n.startswith("Less"):
        return 0.0, 1.0
    count = 1 if n.startswith("About") else int(n)
    give = min(unit / 2, 3600)
    return max(0.0, count * unit - give), (count + 1) * unit + give


def finish_window(status: str, created: datetime, listed_at: datetime) -> tuple[datetime, datetime]:
    """When a dead container listed at `listed_at` may have stopped, from its Status text: never
    before its creation nor after the listing; the whole span when the text says nothing."""
    ages = status_age_range(status)
    if ages is None:
        return created, max(created, listed_at)
    after = listed_at - timedelta(seconds=ages[1]) - _WINDOW_SLACK
    before = min(listed_at, listed_at - timedelta(seconds=ages[0]) + _WINDOW_SLACK)
    return max(created, after), max(created, before)


def cache_agrees(finished_at: datetime, status: str, now: datetime) -> bool:
    """Whether a cached finish time fits the listing's coarse "N units ago" text."""
    coarse = status_age(status)
    if coarse is None:
        return True
    actual = (now - finished_at).total_seconds()
    return abs(actual - coarse) <= max(90.0, 0.6 * coarse)


def is_id(reference: str) -> bool:
    return reference.startswith("sha256:") or bool(HEX_ID.match(reference))


_STATES = {state.value: state for state in ContainerState}


def decode_state(value: Any) -> ContainerState:
    """A listing's `State`, by a dict lookup (the Enum call: 2 µs a row; this: under 0.5)."""
    return _STATES.get(str(value).lower(), ContainerState.UNKNOWN)


def docker_layers(diff_ids: Sequence[str], history: Sequence[Any]) -> tuple[Layer, ...]:
    """Layers from an image's diff ids and its `/history` rows (newest first, as the engine
    answers). Steps that made no layer have size 0; when as many steps have a size as there are
    layers (or as many steps as layers) they map one to one, else zero-size steps that are not
    metadata (`#(nop)`) fill in the layers with no size of their own. Inodes: not told."""
    steps = [row for row in reversed(history) if isinstance(row, dict)]
    sizes = [max(0, int(row.get("Size") or 0)) for row in steps]
    n = len(diff_ids)
    if sum(1 for size in sizes if size > 0) == n:
        per_layer = [size for size in sizes if size > 0]
    elif len(sizes) == n:
        per_layer = sizes
    else:
        per_layer = []
        nonzero_left = sum(1 for size in sizes if size > 0)
        for row, size in zip(steps, sizes, strict=True):
            if len(per_layer) == n:
                break
            if size > 0:
                per_layer.append(size)
                nonzero_left -= 1
            elif n - len(per_layer) > nonzero_left and "#(nop)" not in str(
                row.get("CreatedBy") or ""
            ):
                per_layer.append(0)
        per_layer += [0] * (n - len(per_layer))
    return tuple(
        Layer(key=key, size_bytes=size, inodes=None)
        for key, size in zip(chain_ids(diff_ids), per_layer, strict=True)
    )


def decode_image(row: dict[str, Any]) -> Image:
    tags = tuple(t for t in row.get("RepoTags") or () if t and t != "<none>:<none>")
    digests = tuple(d for d in row.get("RepoDigests") or () if d and d != "<none>@<none>")
    return Image(
        id=row["Id"],
        tags=tags,
        digests=digests,
        size_bytes=int(row.get("Size") or 0),
        labels=dict(row.get("Labels") or {}),
        parent_id=str(row.get("ParentId") or ""),
    )


# BuildKit's record ids: random lowercase base-32 (and digests for some internal records).
RECORD_ID = re.compile(r"^[a-z0-9:]{8,80}$")


def build_cache_records(data: dict[str, Any]) -> tuple[BuildCacheRecord, ...] | None:
    """`/system/df`'s `BuildCache` (null when empty); None when the engine has none (no key)."""
    if "BuildCache" not in data:
        return None
    records = []
    for row in data.get("BuildCache") or ():
        parents = row.get("Parents") or ([row["Parent"]] if row.get("Parent") else [])
        records.append(
            BuildCacheRecord(
                id=str(row.get("ID") or ""),
                parent=str(parents[0]) if parents else None,
                type=str(row.get("Type") or ""),
                description=str(row.get("Description") or ""),
                in_use=bool(row.get("InUse")),
                shared=bool(row.get("Shared")),
                size_bytes=max(0, int(row.get("Size") or 0)),
                created_at=parse_time(row.get("CreatedAt")),
                last_used=parse_time(row.get("LastUsedAt")),
                usage_count=int(row.get("UsageCount") or 0),
            )
        )
    return tuple(r for r in records if r.id)


def writable_sizes(rows: Any) -> dict[str, int] | None:
    """Container id -> `SizeRw` (bytes of its writable layer) from a listing with sizes."""
    if not isinstance(rows, list):
        return None
    return {
        str(row["Id"]): max(0, int(row.get("SizeRw") or 0))
        for row in rows
        if isinstance(row, dict) and row.get("Id")
    }


def decode_container(
    row: dict[str, Any],
    finished: tuple[datetime | None, datetime | None, datetime | None] = (None, None, None),
    state: ContainerState | None = None,
    created: datetime | None = None,
) -> Container:
    """A listing's row as a Container, made once (`replace` after it: 3.5 µs a dead container);
    `finished`: its finish time, or the window (after, before) its Status vouches for; `state`
    and `created`: the row's, where the caller decoded them already."""
    state = decode_state(row.get("State")) if state is None else state
    created = row_created(row) if created is None else created
    names = row.get("Names") or []
    name = names[0].lstrip("/") if names else short_id(row["Id"])
    return Container(
        id=row["Id"],
        name=name,
        image_id=row.get("ImageID") or "",
        state=state,
        created=created,
        finished_at=finished[0],
        labels=dict(row.get("Labels") or {}),
        finished_after=finished[1],
        finished_before=finished[2],
    )


def row_created(row: dict[str, Any]) -> datetime:
    """A listing row's `Created` (Unix seconds) as an aware datetime."""
    return datetime.fromtimestamp(int(row.get("Created") or 0), UTC)
