"""Where the space is: each measured filesystem's used bytes by kind, the rest, and the biggest
holders by name. Pure: the measurements and the engine's holders in, breakdowns out.

A kind's bytes land on the filesystem holding its role (`nodegc.holders.ROLE_OF`: images and
build cache where images are, writable layers where containers are, logs, volumes); the rest is
the measured used bytes (`df`'s Used: capacity - free blocks) minus the sum (files the engine
does not account for; never below 0), and `reserved` the free blocks only root may use (the root
reserve and ext4's reserved clusters: capacity - available counts them as used).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from nodegc.holders import NAMED_KINDS, ROLE_OF, Breakdown, Holder, HolderKind
from nodegc.model import Container, FilesystemStats, Image, Layer
from nodegc.policy.images import image_holdings
from nodegc.policy.space import Ledger

BIGGEST = 5
REST_NAME = "files the engine does not account for"


def lands_on(h: Holder, fs: FilesystemStats, devices: Collection[int]) -> bool:
    """Whether holder `h` is on `fs`: by its device where it was found on a measured one, else
    by its kind's role (a filesystem measured without roles, a path alone, holds every kind)."""
    if h.device is not None and h.device in devices:
        return h.device == fs.device
    return not fs.roles or ROLE_OF.get(h.kind) in fs.roles


def breakdown(
    filesystems: Sequence[FilesystemStats],
    holders: Sequence[Holder],
    top: int = BIGGEST,
    unknown: Collection[HolderKind] = (),
) -> tuple[Breakdown, ...]:
    """One breakdown per measured filesystem, in their order. `unknown`: kinds the runtime
    cannot know, left out of the sums (the rest is measured used - what is known) and named."""
    out = []
    devices = {fs.device for fs in filesystems if fs.device}
    for fs in filesystems:
        here = [h for h in holders if h.kind not in unknown and lands_on(h, fs, devices)]
        sums: dict[HolderKind, int] = {}
        gaps = []
        for kind in HolderKind:
            if kind in ROLE_OF and (not fs.roles or ROLE_OF[kind] in fs.roles):
                if kind in unknown:
                    gaps.append(kind)
                else:
                    sums[kind] = 0
        for h in here:
            sums[h.kind] = sums.get(h.kind, 0) + h.size_bytes
        used = fs.used_bytes if fs.free_bytes is None else fs.capacity_bytes - fs.free_bytes
        sums[HolderKind.REST] = max(0, used - sum(sums.values()))
        sums[HolderKind.RESERVED] = max(0, fs.used_bytes - used)
        named = sorted(
            (h for h in here if h.kind in NAMED_KINDS and h.size_bytes > 0),
            key=lambda h: (-h.size_bytes, h.kind, h.name),
        )
        out.append(
            Breakdown(
                path=fs.path,
                roles=fs.roles,
                used_bytes=fs.used_bytes,
                by_kind=tuple(sums.items()),
                biggest=tuple(named[:top]),
                unknown=tuple(gaps),
                holders=tuple(here),
            )
        )
    return tuple(out)


def untouchable(b: Breakdown, holders: Sequence[Holder] = (), n: int = 3) -> tuple[Holder, ...]:
    """The `n` biggest holders of `b`'s filesystem nodegc may not remove (a running container's
    writable layer or log, a volume, the images in use, the build cache in use, the rest),
    biggest first. The holders are `b`'s own (`holders`: for a breakdown made without)."""
    mine = [
        h
        for h in (b.holders or holders)
        if not h.removable and h.size_bytes > 0 and h.kind not in b.unknown
    ]
    rest = b.bytes_of(HolderKind.REST)
    if rest:
        mine.append(Holder(HolderKind.REST, REST_NAME, rest, False))
    return tuple(sorted(mine, key=lambda h: (-h.size_bytes, h.kind, h.name))[:n])


# `/system/df` on an engine sizes every container's writable layer and, on dockerd before API
# 1.42, counts each image's containers over all of them: past this many containers it takes
# seconds (21 s at 20,000 on dockerd 20.10), and the breakdown is made from cheaper answers.
FULL_USAGE_MAX_CONTAINERS = 1000


def full_usage_worth_asking(containers: int) -> bool:
    """Whether the breakdown may ask the engine's whole disk usage (`/system/df`) on a node
    with `containers` containers; else it is made from the snapshot, narrower requests and
    nodegc's own walk of the writable layers (`runtime.docker_sizes`)."""
    return containers <= FULL_USAGE_MAX_CONTAINERS


def image_split(
    images: Sequence[Image], containers: Sequence[Container], layers: Mapping[str, Sequence[Layer]]
) -> tuple[int, int]:
    """(bytes of images in use, bytes of unused images) from the layers the snapshot holds, as
    `/system/df` splits them: every layer once; an unused image's bytes are those no other
    image shares (its size less its shared size), the rest is in use. An image is in use while
    any container, in any state, was made from it or mounts it."""
    used = {c.image_id for c in containers}
    used.update(m for c in containers for m in c.mounted_images)
    ledger = Ledger(image_holdings(images, layers))
    unused = sum(ledger.frees(i.id).bytes for i in images if i.id not in used)
    total = ledger.held().bytes
    return max(0, total - unused), unused
