"""Every filesystem the runtime uses: which is under pressure, and what frees space there.

The runtime may keep its bytes on more than one filesystem: Docker's containerd image store
keeps image layers and containers' writable layers in containerd's root and logs and volumes in
`DockerRootDir`; a CRI runtime may report its container filesystem apart from its image
filesystem (KEP-4191). The image thresholds apply to each. What a removal gives back lands on
the filesystem holding it:

- a filesystem with images: build cache records, unused images and dead containers' writable
  layers (the image plan, as on a node with one filesystem);
- a filesystem with containers' writable layers, logs or volumes but no images: dead containers
  (their writable layer, their logs and anonymous volumes go with them). Removing images for it
  would free nothing there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from nodegc.config import ContainerSettings, ImageSettings
from nodegc.model import (
    Action,
    ContainerDecision,
    ContainerPlan,
    FilesystemPlan,
    FilesystemRole,
    FilesystemStats,
    Reason,
)
from nodegc.policy import targets
from nodegc.policy.containers import under_pressure_order
from nodegc.policy.images import pressure_kinds
from nodegc.units import human_bytes

# The kinds of removal whose bytes live on a filesystem holding a role.
_FREES: dict[FilesystemRole, tuple[str, ...]] = {
    FilesystemRole.IMAGES: ("build-cache", "image"),
    FilesystemRole.CONTAINERS: ("container",),
    FilesystemRole.LOGS: ("container",),
    FilesystemRole.VOLUMES: ("container",),
}


def frees_on(roles: Sequence[FilesystemRole]) -> tuple[str, ...]:
    """What frees space on a filesystem holding `roles`: "build-cache", "image", "container"."""
    kinds: dict[str, None] = {}
    for role in roles:
        kinds.update(dict.fromkeys(_FREES.get(role, ())))
    return tuple(kinds)


def plan_filesystems(
    filesystems: Sequence[FilesystemStats],
    container_plan: ContainerPlan,
    images: ImageSettings,
    containers: ContainerSettings,
) -> tuple[FilesystemPlan, ...]:
    """For each filesystem, what the thresholds ask for and what frees it. A filesystem under
    pressure that holds no images gets the dead containers the caps keep, longest stopped first
    (`disk-pressure`; with `containers.remove_under_disk_pressure`), all of them: the runtime
    tells no size for a container's logs, so the closed loop measures and stops at the target."""
    plans = []
    for fs in filesystems:
        asked = targets.wanted(fs, images)
        plan = FilesystemPlan(
            filesystem=fs,
            high_threshold_percent=images.high_threshold_percent,
            low_threshold_percent=images.low_threshold_percent,
            inode_high_threshold_percent=images.inode_high_threshold_percent,
            inode_low_threshold_percent=images.inode_low_threshold_percent,
            bytes_to_free=asked.bytes,
            inodes_to_free=asked.inodes,
            frees=frees_on(fs.roles),
            trigger=asked.trigger,
            target_free_bytes=asked.target_free_bytes,
        )
        if (
            plan.under_pressure
            and not plan.images
            and "container" in plan.frees
            and containers.remove_under_disk_pressure
        ):
            plan = replace(plan, containers=_dead_containers(container_plan))
        plans.append(plan)
    return tuple(plans)


def _dead_containers(container_plan: ContainerPlan) -> tuple[ContainerDecision, ...]:
    """The dead containers the caps keep, as removals for disk pressure, longest stopped first
    (those the caps remove go in every cycle before this)."""
    return tuple(
        replace(d, action=Action.REMOVE, reason=Reason.DISK_PRESSURE)
        for d in under_pressure_order(container_plan)
    )


def filesystem_target_met(fs: FilesystemStats, *, plan: FilesystemPlan) -> bool:
    """Whether a measurement of `plan`'s filesystem shows what its thresholds asked for."""
    met = targets.bytes_met(
        fs, plan.high_threshold_percent, plan.low_threshold_percent, plan.target_free_bytes
    )
    if plan.bytes_to_free and not met:
        return False
    return not (plan.inodes_to_free and fs.inode_usage_percent > plan.inode_low_threshold_percent)


def pressured_elsewhere(plans: Sequence[FilesystemPlan]) -> list[FilesystemPlan]:
    """The filesystems without images under pressure where a removal can help."""
    return [p for p in plans if p.under_pressure and not p.images and p.containers]


def pressure_on_each(
    filesystems: Sequence[FilesystemStats], images: ImageSettings
) -> tuple[tuple[FilesystemStats, tuple[str, ...]], ...]:
    """Each filesystem with what is at or above its high threshold there ("bytes", "inodes",
    both, or nothing): the thresholds apply to every filesystem the runtime uses."""
    return tuple((fs, pressure_kinds(fs, images)) for fs in filesystems)


def short_of_target(
    plans: Sequence[FilesystemPlan], after: Sequence[FilesystemStats]
) -> list[tuple[FilesystemPlan, FilesystemStats]]:
    """The filesystems without images that were under pressure and, as measured `after` (by
    path; one not measured again counts as it was), are still short of their low threshold,
    each with its last measurement. The image filesystem's target is the image plan's."""
    later = {fs.path: fs for fs in after}
    short = []
    for plan in plans:
        if plan.images or not plan.under_pressure:
            continue
        fs = later.get(plan.filesystem.path, plan.filesystem)
        if not filesystem_target_met(fs, plan=plan):
            short.append((plan, fs))
    return short


def short_text(plan: FilesystemPlan, after: FilesystemStats) -> str:
    """Why a filesystem without images is short of its target, in FreeDiskSpaceFailed's words:
    what it holds, its usage as measured `after`, and what removing dead containers gave back
    there (measured against the plan's measurement) of what the thresholds asked for."""
    before = plan.filesystem
    roles = ", ".join(str(r) for r in before.roles) or "measured"
    freed = max(0, after.available_bytes - before.available_bytes)
    went = (
        f"{len(plan.containers)} dead containers planned"
        if plan.containers
        else ("no dead container could go")
    )
    parts = []
    if plan.bytes_to_free or not plan.inodes_to_free:
        parts.append(
            f"filesystem {after.path} ({roles}) is {after.usage_percent}% used "
            f"({human_bytes(after.used_bytes)} of {human_bytes(after.capacity_bytes)}); "
            f"deleting dead containers freed {human_bytes(freed)} of the "
            f"{human_bytes(plan.bytes_to_free)} needed to reach {plan.low_threshold_percent}% "
            f"({went}; removing images frees nothing there)"
        )
    if plan.inodes_to_free:
        inodes = max(0, after.inodes_free - before.inodes_free)
        parts.append(
            f"inodes of {after.path} ({roles}) are {after.inode_usage_percent}% used; deleting "
            f"dead containers freed {inodes:,} inodes of the {plan.inodes_to_free:,} needed to "
            f"reach {plan.inode_low_threshold_percent}% ({went})"
        )
    return "; ".join(parts)
