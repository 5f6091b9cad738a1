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
