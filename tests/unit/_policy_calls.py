"""Every call the mutation-survivor tests (tests/unit/test_mutation_survivors_*.py) make into
`nodegc.policy`, in one place: when the policy's signatures change (settings as small frozen
policy objects instead of long argument lists), this module is the one to adapt.

Each function takes the observation positionally and the settings as keyword overrides of the
unit suite's defaults (`tests.unit.builders.image_settings`, `container_settings`), and returns
what the policy returns.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from nodegc import policy
from nodegc.config import BuildCacheSettings, ImageSettings
from nodegc.holders import Holder
from nodegc.model import (
    BuildCachePlan,
    BuildCacheRecord,
    Container,
    ContainerPlan,
    FilesystemPlan,
    FilesystemStats,
    History,
    Image,
    ImagePlan,
    Layer,
    LayerStore,
    Plan,
    RuntimeEvent,
    Sandbox,
    Snapshot,
)
from nodegc.policy import (
    breakdown,
    build_cache,
    containers,
    cost,
    filesystems,
    fillrate,
    finish_times,
    space,
    targets,
)
from nodegc.policy import history as history_policy
from nodegc.policy import images as image_policy
from nodegc.policy import sandboxes as sandbox_policy
from nodegc.policy.fillrate import FillRate
from nodegc.policy.sandboxes import SandboxPlan
from nodegc.policy.space import Ledger
from tests.unit.builders import NOW, container_settings, history, image_settings


def plan_with(
    snap: Snapshot,
    *,
    hist: History | None = None,
    now: datetime = NOW,
    images: Mapping[str, object] | None = None,
    containers: Mapping[str, object] | None = None,
    cache: BuildCacheSettings | None = None,
    dependents_first: bool = True,
    containers_under_pressure: bool = True,
) -> Plan:
    """The whole cycle's plan (`nodegc.policy.plan`): image and container settings as overrides."""
    return policy.plan(
        snap,
        hist if hist is not None else history(),
        image_settings(**(images or {})),
        container_settings(**(containers or {})),
        now,
        build_cache=cache,
        scope=policy.Scope(dependents_first, containers_under_pressure),
    )


def plan_images_with(
    disk: FilesystemStats,
    images: Sequence[Image],
    *,
    containers: Sequence[Container] = (),
    hist: History | None = None,
    now: datetime = NOW,
    layers: Mapping[str, Sequence[Layer]] | None = None,
    leaving: Collection[str] = (),
    freed_before: int = 0,
    other_holders: Mapping[str, Sequence[Layer]] | None = None,
    **settings: object,
) -> ImagePlan:
    """The image plan alone (`plan_images`), image settings as overrides."""
    return image_policy.plan_images(
        disk,
        list(images),
        list(containers),
        hist if hist is not None else history(),
        image_settings(**settings),
        now,
        counted=image_policy.Counted(
            layers=layers or {},
            leaving_containers=leaving,
            freed_before=freed_before,
            other_holders=other_holders or {},
        ),
    )


def plan_build_cache_with(
    records: Sequence[BuildCacheRecord] | None,
    *,
    bytes_wanted: int = 0,
    inodes_wanted: bool = False,
    under_pressure: bool | None = None,
    now: datetime = NOW,
    **settings: object,
) -> BuildCachePlan:
    """The build cache plan alone (`plan_build_cache`), build cache settings as overrides."""
    return build_cache.plan_build_cache(
        records,
        BuildCacheSettings(**settings),
        now,
        bytes_wanted=bytes_wanted,
        inodes_wanted=inodes_wanted,
        under_pressure=under_pressure,
    )


def plan_containers_with(
    items: Sequence[Container], *, now: datetime = NOW, **settings: object
) -> ContainerPlan:
    """The container plan alone (`plan_containers`), container settings as overrides."""
    return containers.plan_containers(list(items), container_settings(**settings), now)


def finish_times_needed_with(
    snap: Snapshot,
    *,
    hist: History | None = None,
    now: datetime = NOW,
    batch: int | None = 8,
    under_pressure: bool = False,
    **settings: object,
) -> list[str]:
    """Which finish times the plan needs (`finish_times_needed`), container settings as
    overrides."""
    return finish_times.finish_times_needed(
        snap,
        hist if hist is not None else history(),
        container_settings(**settings),
        now,
        batch,
        under_pressure=under_pressure,
    )


def wanted_with(disk: FilesystemStats, **settings: object) -> targets.Wanted:
    """What the disk asks of image GC (`targets.wanted`), image settings as overrides."""
    return targets.wanted(disk, image_settings(**settings))


def image_settings_with(**settings: object) -> ImageSettings:
    """The image settings a policy function takes directly (the unit suite's defaults)."""
    return image_settings(**settings)


def target_met_with(after: FilesystemStats, plan: ImagePlan) -> bool:
    """Whether a measurement after image GC shows what `plan` asked for (`target_met`)."""
    return image_policy.target_met(after, plan)


def learnt_with(factor: float, ledger_freed: int, measured_freed: int) -> float | None:
    """The cost factor learnt from one sample (`policy.cost.learnt`)."""
    return cost.learnt(factor, ledger_freed, measured_freed)


def uses_from_events_with(
    events: Sequence[RuntimeEvent], images: Sequence[Image]
) -> dict[str, datetime]:
    """The images the engine's remembered events show in use (`policy.history`)."""
    return history_policy.uses_from_events(list(events), list(images))


def plan_sandboxes_with(
    sandboxes: Sequence[Sandbox],
    *,
    containers: Sequence[Container] = (),
    now: datetime = NOW,
    **settings: object,
) -> SandboxPlan:
    """The pod sandbox plan (`plan_sandboxes`), container settings as overrides."""
    return sandbox_policy.plan_sandboxes(
        list(sandboxes), list(containers), container_settings(**settings), now
    )


def fill_rate_after(measurements: Sequence[tuple[float, FilesystemStats]]) -> FillRate | None:
    """The fill rate estimate after folding in each (time, measurement) in turn."""
    rate = None
    for at, measured in measurements:
        rate = fillrate.update(rate, measured, at)
    return rate


def ledger_of(holdings: Mapping[str, Sequence[Layer]]) -> Ledger:
    """The layer accounting over `holdings` (`policy.space.Ledger`)."""
    return Ledger(holdings)


def store_costs_with(
    store: LayerStore, images: Sequence[Image], layers: Mapping[str, Sequence[Layer]]
) -> dict[str, tuple[Layer, ...]]:
    """What each image's layers cost on the disk in `store` (`policy.space.store_costs`)."""
    return space.store_costs(store, list(images), layers)


def short_text_of(plan: FilesystemPlan, after: FilesystemStats) -> str:
    """The `FreeDiskSpaceFailed` words for a filesystem without images short of its target
    (`policy.filesystems.short_text`)."""
    return filesystems.short_text(plan, after)


def while_freeing_with(
    *, found_bytes: bool, found_inodes: bool, **settings: object
) -> ImageSettings:
    """The settings later plans of one image GC use (`targets.while_freeing`: hysteresis)."""
    return targets.while_freeing(
        image_settings(**settings), found_bytes=found_bytes, found_inodes=found_inodes
    )


def wanted_under(disk: FilesystemStats, settings: ImageSettings) -> targets.Wanted:
    """What the disk asks with settings already made (`targets.wanted`)."""
    return targets.wanted(disk, settings)


def retry_refused_for(records: Sequence[BuildCacheRecord]) -> bool:
    """Whether a refused build cache record is tried again after the others
    (`build_cache.retry_refused`)."""
    return build_cache.retry_refused(list(records))


def seconds_until_level(available: int, level: int, rate: FillRate) -> float | None:
    """Seconds until free space falls to `level` (`fillrate.seconds_until`)."""
    return fillrate.seconds_until(available, level, rate)


def breakdown_of(filesystems: Sequence[FilesystemStats], holders: Sequence[Holder]) -> tuple:
    """Where the space is on each filesystem (`policy.breakdown.breakdown`)."""
    return breakdown.breakdown(list(filesystems), list(holders))


def untouchable_of(b: object, holders: Sequence[Holder], n: int = 3) -> tuple[Holder, ...]:
    """The biggest holders nodegc may not remove (`policy.breakdown.untouchable`)."""
    return breakdown.untouchable(b, list(holders), n)  # type: ignore[arg-type]


def filesystem_target_met_with(after: FilesystemStats, plan: FilesystemPlan) -> bool:
    """Whether a filesystem's measurement meets its plan (`filesystem_target_met`)."""
    return filesystems.filesystem_target_met(after, plan=plan)


def seconds_until_high_with(disk: FilesystemStats, rate: FillRate, **settings: object):
    """Seconds until a byte rule triggers at `rate` (`fillrate.seconds_until_high`)."""
    return fillrate.seconds_until_high(disk, image_settings(**settings), rate)


def pressured_elsewhere_of(plans: Sequence[FilesystemPlan]) -> list[FilesystemPlan]:
    """The filesystems without images under pressure where a removal helps
    (`filesystems.pressured_elsewhere`)."""
    return filesystems.pressured_elsewhere(list(plans))


def projected_with(disk: FilesystemStats, rate: FillRate, **settings: object) -> bool:
    """Whether image GC starts now for the lookahead (`fillrate.projected`)."""
    return fillrate.projected(disk, image_settings(**settings), rate)


def bytes_met_with(after: FilesystemStats, high: int, low: int, target: int) -> bool:
    """Whether a measurement meets the byte targets (`targets.bytes_met`)."""
    return targets.bytes_met(after, high, low, target)
