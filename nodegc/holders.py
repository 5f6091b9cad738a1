"""What holds the bytes of a filesystem, by kind and by name: the data `report`, `status` and
the FreeDiskSpaceFailed line explain a full disk with (issue 22). Pure data.

The runtime lists the holders it knows (`nodegc.runtime.docker_usage`); the policy sums them per
filesystem and names the biggest (`nodegc.policy.breakdown`); what the engine does not account
for is the rest: measured used bytes minus the sum.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from nodegc.model import FilesystemRole


class HolderKind(enum.StrEnum):
    """The kinds of a breakdown. The values are part of the JSON and metrics contract."""

    IMAGES_IN_USE = "images_in_use"
    IMAGES_UNUSED = "images_unused"
    BUILD_CACHE_IN_USE = "build_cache_in_use"
    BUILD_CACHE_RECLAIMABLE = "build_cache_reclaimable"
    CONTAINERS_RUNNING = "containers_running"  # writable layers of containers not dead
    CONTAINERS_DEAD = "containers_dead"
    LOGS = "logs"  # container log files (json-file, local)
    VOLUMES_NAMED = "volumes_named"  # named volumes, and anonymous ones a container uses
    VOLUMES_ANONYMOUS_UNUSED = "volumes_anonymous_unused"  # anonymous, no container uses it
    REST = "rest"  # measured used bytes the engine does not account for
    RESERVED = "reserved"  # free blocks only root may use (root reserve, ext4 reserved clusters)


# Where each kind's bytes live: on the filesystem holding that role.
ROLE_OF: dict[HolderKind, FilesystemRole] = {
    HolderKind.IMAGES_IN_USE: FilesystemRole.IMAGES,
    HolderKind.IMAGES_UNUSED: FilesystemRole.IMAGES,
    HolderKind.BUILD_CACHE_IN_USE: FilesystemRole.IMAGES,
    HolderKind.BUILD_CACHE_RECLAIMABLE: FilesystemRole.IMAGES,
    HolderKind.CONTAINERS_RUNNING: FilesystemRole.CONTAINERS,
    HolderKind.CONTAINERS_DEAD: FilesystemRole.CONTAINERS,
    HolderKind.LOGS: FilesystemRole.LOGS,
    HolderKind.VOLUMES_NAMED: FilesystemRole.VOLUMES,
    HolderKind.VOLUMES_ANONYMOUS_UNUSED: FilesystemRole.VOLUMES,
}

# Kinds whose holders are named one by one in "the biggest holders".
NAMED_KINDS = frozenset(
    {
        HolderKind.CONTAINERS_RUNNING,
        HolderKind.CONTAINERS_DEAD,
        HolderKind.LOGS,
        HolderKind.VOLUMES_NAMED,
        HolderKind.VOLUMES_ANONYMOUS_UNUSED,
    }
)


class Holder(msgspec.Struct, frozen=True):
    """One holder of bytes: a container's writable layer or log file, a volume, or a kind's
    total (images, build cache). `removable`: nodegc may remove it (an unused image, a
    reclaimable build cache record, a dead container with its log); engine text, untrusted.

    A frozen msgspec Struct rather than a frozen dataclass: a big node makes two per container
    (40,000 at 20,000 containers), and a Struct is made in C, ten times faster (48 ms of a
    `report` down to 5)."""

    kind: HolderKind
    name: str
    size_bytes: int
    removable: bool
    path: str = ""  # a log file's path
    pod: str | None = None  # "namespace/name" of a container's pod
    # The filesystem (st_dev) a file holder was found on: it lands there, whatever the roles
    # (a CRI container's log lives where the kubelet's pod log directory is). None: by role.
    device: int | None = None


@dataclass(frozen=True, slots=True)
class Holdings:
    """What a runtime says holds the space: its holders, and the kinds it cannot know (reported
    as unknown, null in JSON, never as 0: volumes and build cache on CRI, ...)."""

    holders: tuple[Holder, ...]
    unknown: frozenset[HolderKind] = frozenset()


@dataclass(frozen=True, slots=True)
class Breakdown:
    """One measured filesystem's bytes by kind (`rest` included) and its biggest named holders
    (biggest first)."""

    path: str
    roles: tuple[FilesystemRole, ...]
    used_bytes: int
    by_kind: tuple[tuple[HolderKind, int], ...]
    biggest: tuple[Holder, ...]
    unknown: tuple[HolderKind, ...] = ()  # kinds the runtime cannot know here (not in by_kind)
    holders: tuple[Holder, ...] = ()  # the holders on this filesystem

    def bytes_of(self, kind: HolderKind) -> int:
        return dict(self.by_kind).get(kind, 0)

    def sizes(self) -> dict[HolderKind, int | None]:
        """Every kind of this filesystem in order, None for one the runtime cannot know."""
        known: dict[HolderKind, int | None] = dict(self.by_kind)
        out: dict[HolderKind, int | None] = {}
        for kind in HolderKind:
            if kind in known:
                out[kind] = known[kind]
            elif kind in self.unknown:
                out[kind] = None
        return out
