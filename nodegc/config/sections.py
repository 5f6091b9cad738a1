"""The sections of the settings ([runtime], [images], [containers], [build_cache], [state],
[metrics], [log]) and the value types they share (durations, counts, caps, percentages), each
with its range. Rules that tie fields of one section together are checked here.

`nodegc.config.settings` assembles them into `Settings` and loads it (re-exporting these).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from nodegc.config.sizes import Size, format_size
from nodegc.durations import format_duration, parse_duration

MAX_PERIOD = timedelta(days=365)
MAX_TIMEOUT = timedelta(days=1)
MAX_AGE = timedelta(days=100 * 365)
# A count beyond this is a typo, not a node (a cap of -1 means "no limit").
MAX_COUNT = 1_000_000_000


def _to_duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool):
        raise ValueError("a duration is a string such as '90s', '2m' or '1h30m'")
    if isinstance(value, int | float):
        raise ValueError(
            f"{value!r} has no unit; write a duration such as '{value}s' or '{value}m'"
        )
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json-unless-none"),
]


def _to_number(value: Any) -> Any:
    """A count or a percentage is a number: a boolean is refused (TOML's `true` would be 1).
    Strings are refused in the config file (`_number_problems`); the environment and the flags
    can only give text, which must then read as a whole number."""
    if isinstance(value, bool):
        raise ValueError("a number is due here, not a boolean; write e.g. 85 or 1")
    return value


Count = Annotated[int, BeforeValidator(_to_number)]
Cap = Annotated[int, BeforeValidator(_to_number), Field(ge=-1, le=MAX_COUNT)]
Percent = Annotated[int, BeforeValidator(_to_number), Field(ge=0, le=100)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


def _default_endpoint(runtime_type: str = "docker") -> str:
    if runtime_type == "cri":
        return "unix:///run/containerd/containerd.sock"
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


class RuntimeSettings(_Section):
    """[runtime]: which engine, where, and how patiently."""

    type: Literal["docker", "cri"] = Field(
        "docker",
        description='The runtime adapter: "docker" (the Docker Engine API) or "cri" (a '
        "Kubernetes CRI v1 runtime over gRPC: containerd, CRI-O).",
    )
    endpoint: str = Field(
        "",
        description="Engine address: unix:///path or tcp://host:port. Default for docker: "
        "DOCKER_HOST, else unix:///var/run/docker.sock; for cri: "
        "unix:///run/containerd/containerd.sock (CRI-O: unix:///var/run/crio/crio.sock).",
    )
    sandbox_image: str = Field(
        "",
        description="cri: the runtime's sandbox (pause) image, never removed. Empty: ask the "
        "runtime (containerd says; others may pin it themselves).",
    )
    timeout: Duration = Field(
        timedelta(seconds=30), description="Time limit of one engine request."
    )
    max_concurrent_removals: Count = Field(
        4, ge=1, le=64, description="Removals in flight at once (a bounded pool)."
    )

    @model_validator(mode="after")
    def _check(self) -> RuntimeSettings:
        if not self.endpoint:
            object.__setattr__(self, "endpoint", _default_endpoint(self.type))  # frozen
        if self.timeout <= timedelta(0):
            raise ValueError(f"runtime.timeout = {format_duration(self.timeout)}: must be above 0s")
        _check_at_most("runtime.timeout", self.timeout, MAX_TIMEOUT)
        if not self.endpoint.startswith(("unix://", "tcp://", "http://", "https://", "npipe://")):
            raise ValueError(
                f"runtime.endpoint = {self.endpoint!r}: must start with unix:// or tcp://"
            )
        return self


class ImageSettings(_Section):
    """[images]: image garbage collection (kubelet: imageGC*)."""

    high_threshold_percent: Percent = Field(
        85, description="Disk usage (percent) at or above which image GC frees space. 100 = off."
    )
    low_threshold_percent: Percent = Field(
        80, description="Disk usage (percent) image GC brings the filesystem down to."
    )
    inode_high_threshold_percent: Percent = Field(
        95,
        description="Inode usage (percent) at or above which image GC frees inodes. 100 = off.",
    )
    inode_low_threshold_percent: Percent = Field(
        90, description="Inode usage (percent) image GC brings the filesystem down to."
    )
    minimum_free: Size = Field(
        ByteSize(0),
        description='Free space (a size: "20GiB") below which image GC frees space, whatever '
        "the percentages; whichever of the two rules asks for more wins. 0 = off.",
    )
    target_free: Size = Field(
        ByteSize(0),
        description="Free space image GC brings the filesystem back up to when it runs (at "
        "least minimum_free). 0 = minimum_free.",
    )
    minimum_age: Duration = Field(
        timedelta(minutes=2),
        description="An image first seen less than this long ago is never removed.",
    )
    maximum_age: Duration = Field(
        timedelta(0),
        description="Remove an unused image not used for this long, whatever the disk. 0s = off.",
    )
    keep_per_repository: Count = Field(
        0,
        ge=0,
        le=10000,
        description="Keep the newest N images of each repository (by when first seen or "
        "tagged); an unused older one goes whatever the disk, reason superseded (never one a "
        "container uses, pinned or younger than minimum_age). 0 = off.",
    )
    pinned: list[str] = Field(
        default_factory=lambda: ["registry.k8s.io/pause:*", "k8s.gcr.io/pause:*"],
        description="Glob patterns matched against every tag and digest: matching images stay.",
    )
    filesystem_path: str = Field(
        "",
        description=(
            "Where to measure the image filesystem (then the one filesystem measured). Empty: "
            "ask the engine where it keeps images, writable layers, logs and volumes."
        ),
    )
    lookahead: Duration = Field(
        timedelta(0),
        description="`nodegc run`: when the disk's fill rate (from the pressure checks) "
        "projects usage to cross the high threshold within this time, image GC starts now as "
        'if it had (reason "projected"). 0s = off.',
    )
    gc_period: Duration = Field(
        timedelta(minutes=5), description="`nodegc run`: period of image GC."
    )
    pressure_check_period: Duration = Field(
        timedelta(seconds=10),
        description="`nodegc run`: how often the disk is measured; crossing the high threshold "
        "starts image GC at once. 0s = off.",
    )

    @model_validator(mode="after")
    def _check(self) -> ImageSettings:
        if self.low_threshold_percent >= self.high_threshold_percent:
            raise ValueError(
                f"images.low_threshold_percent = {self.low_threshold_percent}: must be below "
                f"images.high_threshold_percent ({self.high_threshold_percent})"
            )
        if self.inode_low_threshold_percent >= self.inode_high_threshold_percent:
            raise ValueError(
                f"images.inode_low_threshold_percent = {self.inode_low_threshold_percent}: must "
                f"be below images.inode_high_threshold_percent "
                f"({self.inode_high_threshold_percent})"
            )
        if self.target_free and self.target_free < self.minimum_free:
            raise ValueError(
                f"images.target_free = {format_size(self.target_free)}: must be at least "
                f"images.minimum_free ({format_size(self.minimum_free)}), or 0 (= minimum_free)"
            )
        for name in ("minimum_age", "maximum_age", "pressure_check_period", "lookahead"):
            _check_non_negative(f"images.{name}", getattr(self, name))
        for name in ("minimum_age", "maximum_age"):
            _check_at_most(f"images.{name}", getattr(self, name), MAX_AGE)
        _check_positive("images.gc_period", self.gc_period)
        for name in ("gc_period", "pressure_check_period", "lookahead"):
            _check_at_most(f"images.{name}", getattr(self, name), MAX_PERIOD)
        if self.maximum_age and self.maximum_age <= self.minimum_age:
            raise ValueError(
                f"images.maximum_age = {format_duration(self.maximum_age)}: must be above "
                f"images.minimum_age ({format_duration(self.minimum_age)}), or 0s to turn it off"
            )
        for pattern in self.pinned:
            if not pattern.strip():
                raise ValueError("images.pinned: an empty pattern would match nothing; remove it")
        return self


class ContainerSettings(_Section):
    """[containers]: dead-container garbage collection (kubelet: --maximum-dead-containers*)."""

    minimum_age: Duration = Field(
        timedelta(0),
        description="A dead container that finished less than this long ago is kept.",
    )
    max_per_pod_container: Cap = Field(
        1,
        description="Dead containers kept per (pod, container) or compose service or name. "
        "-1 = no limit, 0 = keep none.",
    )
    max_dead_containers: Cap = Field(
        -1, description="Dead containers kept on the node in all. -1 = no limit."
    )
    maximum_age: Duration = Field(
        timedelta(0),
        description="Remove any dead container that finished longer ago than this. 0s = off.",
    )
    gc_period: Duration = Field(
        timedelta(minutes=1), description="`nodegc run`: period of container GC."
    )
    remove_under_disk_pressure: bool = Field(
        True,
        description="Under disk pressure, when build cache and unused images cannot reach the "
        "low threshold, remove dead containers the caps would keep too (longest stopped first; "
        "never nodegc.io/keep=true, never younger than minimum_age), as the kubelet's eviction "
        "manager does. false: the caps are the only rule.",
    )

    @model_validator(mode="after")
    def _check(self) -> ContainerSettings:
        for name in ("minimum_age", "maximum_age"):
            _check_non_negative(f"containers.{name}", getattr(self, name))
            _check_at_most(f"containers.{name}", getattr(self, name), MAX_AGE)
        _check_positive("containers.gc_period", self.gc_period)
        _check_at_most("containers.gc_period", self.gc_period, MAX_PERIOD)
        if self.maximum_age and self.maximum_age <= self.minimum_age:
            raise ValueError(
                f"containers.maximum_age = {format_duration(self.maximum_age)}: must be above "
                f"containers.minimum_age ({format_duration(self.minimum_age)}), or 0s to turn "
                "it off"
            )
        return self


class BuildCacheSettings(_Section):
    """[build_cache]: BuildKit build cache GC (Docker). Off, and silent, on engines without it."""

    enabled: bool = Field(
        True,
        description="Remove build cache records not in use: under disk pressure first, least "
        "recently used first (before images), and those unused longer than maximum_age.",
    )
    minimum_age: Duration = Field(
        timedelta(minutes=10),
        description="A record used less than this long ago stays (a pipeline's next step finds "
        "its cache).",
    )
    maximum_age: Duration = Field(
        timedelta(0),
        description="Remove a record unused this long, whatever the disk (BuildKit's own idea; "
        "costs one listing per image GC cycle). 0s = off.",
    )

    @model_validator(mode="after")
    def _check(self) -> BuildCacheSettings:
        for name in ("minimum_age", "maximum_age"):
            _check_non_negative(f"build_cache.{name}", getattr(self, name))
            _check_at_most(f"build_cache.{name}", getattr(self, name), MAX_AGE)
        if self.maximum_age and self.maximum_age <= self.minimum_age:
            raise ValueError(
                f"build_cache.maximum_age = {format_duration(self.maximum_age)}: must be above "
                f"build_cache.minimum_age ({format_duration(self.minimum_age)}), or 0s to turn "
                "it off"
            )
        return self


class StateSettings(_Section):
    """[state]: where history and the audit record live."""

    directory: str = Field("/var/lib/nodegc", description="State directory (0700).")

    @model_validator(mode="after")
    def _check(self) -> StateSettings:
        if not self.directory.strip():
            raise ValueError(
                f"state.directory = {self.directory!r}: must not be empty (the state files would "
                "land in the current directory); give a path such as /var/lib/nodegc"
            )
        return self


class MetricsSettings(_Section):
    """[metrics]: the one read-only HTTP listener of `nodegc run`."""

    enabled: bool = Field(True, description="Serve /metrics, /healthz, /readyz and /status.")
    address: str = Field("127.0.0.1:9797", description="host:port to listen on.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names answered in the Host header besides loopback names and IP "
        "addresses (e.g. a Kubernetes Service name); any other is refused with 421 (DNS "
        "rebinding). Empty: loopback and IP addresses only.",
    )

    @model_validator(mode="after")
    def _check(self) -> MetricsSettings:
        _host, sep, port = self.address.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"metrics.address = {self.address!r}: must be host:port, e.g. 127.0.0.1:9797"
            )
        for name in self.allowed_hosts:
            if not name.strip() or any(c in name for c in " \t/:@[]*") or len(name) > 253:
                raise ValueError(
                    f"metrics.allowed_hosts: {name!r} is not a host name; write names only "
                    '(no scheme, port or wildcard), e.g. ["nodegc.kube-system.svc"]'
                )
        return self


class LogSettings(_Section):
    """[log]: how nodegc writes its log."""

    format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: text on a terminal, JSON lines otherwise."
    )
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Threshold.")


def _check_non_negative(name: str, value: timedelta) -> None:
    if value < timedelta(0):
        raise ValueError(f"{name} = {format_duration(value)}: must not be negative")


def _check_positive(name: str, value: timedelta) -> None:
    if value <= timedelta(0):
        raise ValueError(f"{name} = {format_duration(value)}: must be above 0s")


def _check_at_most(name: str, value: timedelta, limit: timedelta) -> None:
    # Beyond these the scheduler's dates, the socket timeouts and `now - age` overflow.
    if value > limit:
        days = limit.days
        raise ValueError(
            f"{name} = {format_duration(value)}: out of range; must be at most "
            f"{format_duration(limit)} ({days} days)"
        )
