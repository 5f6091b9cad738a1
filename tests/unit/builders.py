"""Builders for the unit tests: small, explicit, in-memory objects and a fixed clock.

Test modules import these by name (`from tests.unit.builders import image, ...`). Time is always
injected: `NOW` is the fixed instant every test reasons from; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings

from nodegc.config import ContainerSettings, ImageSettings, Settings
from nodegc.model import (
    Container,
    ContainerState,
    FilesystemStats,
    History,
    Image,
    ImageRecord,
    Snapshot,
)

# Modest and deterministic: the whole unit suite stays fast, and no example database is written.
settings.register_profile(
    "unit",
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("unit")

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(*, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    """The instant that long before NOW."""
    return NOW - timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def image(
    id: str,
    size: int = 100,
    *,
    tags: tuple[str, ...] | list[str] = (),
    digests: tuple[str, ...] | list[str] = (),
    labels: Mapping[str, str] | None = None,
    runtime_pinned: bool = False,
) -> Image:
    """An image with an id and a size in bytes (and optional tags, digests, labels)."""
    return Image(
        id=id,
        tags=tuple(tags),
        digests=tuple(digests),
        size_bytes=size,
        labels=dict(labels or {}),
        runtime_pinned=runtime_pinned,
    )


def container(
    id: str,
    image_id: str = "img",
    state: ContainerState = ContainerState.EXITED,
    created: datetime | None = None,
    finished_at: datetime | None = None,
    labels: Mapping[str, str] | None = None,
    *,
    name: str | None = None,
) -> Container:
    """A container (exited, created a day ago, named after its id unless told otherwise)."""
    return Container(
        id=id,
        name=name if name is not None else id,
        image_id=image_id,
        state=state,
        created=created if created is not None else ago(days=1),
        finished_at=finished_at,
        labels=dict(labels or {}),
    )


def pod_labels(uid: str, name: str) -> dict[str, str]:
    """The kubelet's labels naming (pod uid, container name)."""
    return {"io.kubernetes.pod.uid": uid, "io.kubernetes.container.name": name}


def fs(capacity: int, available: int, path: str = "/var/lib/docker") -> FilesystemStats:
    """Filesystem stats with the given bytes (inodes are irrelevant to the policy)."""
    return FilesystemStats(
        path=path,
        capacity_bytes=capacity,
        available_bytes=available,
        inodes_total=1_000_000,
        inodes_free=500_000,
    )


def record(first_seen: datetime, last_used: datetime | None = None) -> ImageRecord:
    return ImageRecord(first_seen=first_seen, last_used=last_used)


def history(since: datetime | None = None, **records: ImageRecord) -> History:
    """History that began at `since` (a year ago by default) with the given records by id."""
    return History(since=since if since is not None else ago(days=365), images=dict(records))


def snapshot(
    filesystem: FilesystemStats | None = None,
    images: tuple[Image, ...] | list[Image] = (),
    containers: tuple[Container, ...] | list[Container] = (),
    taken_at: datetime = NOW,
) -> Snapshot:
    return Snapshot(
        taken_at=taken_at,
        filesystem=filesystem if filesystem is not None else fs(1000, 500),
        images=tuple(images),
        containers=tuple(containers),
    )


def image_settings(**overrides: object) -> ImageSettings:
    """The kubelet's image defaults, except that no image is too young unless a test says so
    and nothing is pinned by pattern unless a test says so."""
    values: dict[str, object] = {"minimum_age": timedelta(0), "pinned": []}
    values.update(overrides)
    return ImageSettings(**values)


def container_settings(**overrides: object) -> ContainerSettings:
    """The kubelet's container defaults (0s, 1 per unit, no global cap), with overrides."""
    return ContainerSettings(**overrides)


def make_settings(
    state_dir: Path, filesystem_path: str, *, images: Mapping[str, object] | None = None, **kw
) -> Settings:
    """Full settings for a Collector: one removal at a time (deterministic call order)."""
    data: dict[str, object] = {
        "runtime": {"max_concurrent_removals": 1, "endpoint": "unix:///nonexistent.sock"},
        "images": {"filesystem_path": filesystem_path, "minimum_age": "0s", **(images or {})},
        "state": {"directory": str(state_dir)},
    }
    data.update(kw)
    return Settings.model_validate(data)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def ids(decisions) -> list[str]:
    """Ids of images or containers in a sequence of decisions, in order."""
    out = []
    for d in decisions:
        obj = getattr(d, "image", None) or d.container
        out.append(obj.id)
    return out


def by_id(decisions) -> dict[str, object]:
    """Decisions keyed by image or container id."""
    return {(getattr(d, "image", None) or d.container).id: d for d in decisions}
