"""The pressure ladder: what image GC frees, in which order, and when each step stops.

Under disk (or inode) pressure image GC climbs down what fills a disk, in this order:

1. `build-cache`: build cache records, least recently used first (`policy.build_cache`);
2. `images`: unused images, least recently used first (`policy.images`);
3. `unshared-build-cache`: the records the removed images held (listed shared before, unshared
   now), when the first plan had shared records and an image went;
4. `dead-containers`: dead containers the caps keep, longest stopped first
   (`containers.remove_under_disk_pressure`; `policy.containers.under_pressure_order`);
5. `images-left`: the images those containers leave unused, when one went;
6. `build-cache-left`: the records those images held, when one of them went.

The first two steps run whatever the disk (`age` and `superseded` removals go anyway; their
space removals stop at the goal); every later step starts only while the measured disk is still
short of the goal, and the ladder ends at the first one that finds it met. Every step stops at
the same goal: what the first plan found the disk asked for (`Goal`, from `policy.targets`).

The hysteresis: once a plan finds the disk above a high threshold, the plans of the later steps
are made with each trigger just past its target (`Ladder.settings`, `targets.while_freeing`), so
they go on to the low thresholds whatever the high ones say. With `projected` (the daemon's
lookahead, `images.lookahead`) the first plan is made as if the byte threshold were crossed.

The planner (`policy.plan`) previews the same ladder on one snapshot; the collector carries out
its steps and measures, nothing more. Pure: measurements and settings in, the ladder out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from nodegc.config import ImageSettings
from nodegc.model import Action, FilesystemStats, ImagePlan, Reason
from nodegc.policy import targets

# Removals that go whatever the disk: no step's goal stops them.
WHATEVER_THE_DISK = frozenset({Reason.AGE, Reason.SUPERSEDED})


def whatever_the_disk(reason: Reason) -> bool:
    """Whether a planned removal goes whatever the disk (`age`, `superseded`)."""
    return reason in WHATEVER_THE_DISK


def loop_may_take(action: Action, reason: Reason) -> bool:
    """Whether a step's closed loop may take a decision: a planned removal, or a candidate the
    plan kept only because it expected the goal met by then (`target-reached`), taken past the
    plan while the measured disk is still short (`Goal.past_plan_reason`)."""
    return action is Action.REMOVE or reason is Reason.TARGET_REACHED


class Step(StrEnum):
    """One step of the ladder (its value is what logs and reports call it)."""

    BUILD_CACHE = "build-cache"
    IMAGES = "images"
    UNSHARED_BUILD_CACHE = "unshared-build-cache"
    DEAD_CONTAINERS = "dead-containers"
    IMAGES_LEFT = "images-left"
    BUILD_CACHE_LEFT = "build-cache-left"


@dataclass(frozen=True, slots=True)
class Goal:
    """Where image GC brings the image filesystem: the stop condition of every step. `bytes`
    and `inodes`: what the first plan found the rules ask for (0: not asked); the byte target is
    usage at or below `low` (percent rule on: `high` < 100) and free space at or above
    `target_free` (byte rule on); the inode target is inode usage at or below `inode_low`."""

    high: int
    low: int
    target_free: int
    inode_low: int
    bytes: int
    inodes: int
    trigger: str = ""

    @classmethod
    def of(cls, plan: ImagePlan) -> Goal:
        """The goal an image plan was asked to reach."""
        return cls(
            plan.high_threshold_percent,
            plan.low_threshold_percent,
            plan.target_free_bytes,
            plan.inode_low_threshold_percent,
            plan.bytes_to_free,
            plan.inodes_to_free,
            plan.trigger,
        )

    @property
    def under_pressure(self) -> bool:
        return bool(self.bytes or self.inodes)

    def bytes_met(self, fs: FilesystemStats) -> bool:
        """`fs` meets the byte targets (`targets.bytes_met`)."""
        return targets.bytes_met(fs, self.high, self.low, self.target_free)

    def met(self, fs: FilesystemStats) -> bool:
        """`fs` is where the goal asked (always, without pressure): the byte targets where bytes
        were asked for, the inode target where inodes were."""
        if self.bytes and not self.bytes_met(fs):
            return False
        return not (self.inodes and fs.inode_usage_percent > self.inode_low)

    def past_plan_reason(self, fs: FilesystemStats) -> Reason:
        """The reason of a removal made past the plan (a candidate the plan kept as
        `target-reached`, taken because the measured disk `fs` is not there yet), for every kind:
        `space` while the byte targets are short, else `inodes`."""
        return Reason.SPACE if self.bytes and not self.bytes_met(fs) else Reason.INODES


@dataclass(frozen=True, slots=True)
class Rung:
    """One step of the ladder and when it starts: `while_short`, only while the measured disk is
    short of the goal (else the ladder ends here); `after`, only when that step removed
    something; `needs_shared`, only when the first plan's build cache had shared records."""

    step: Step
    while_short: bool = True
    after: Step | None = None
    needs_shared: bool = False


@dataclass(frozen=True, slots=True)
class Ladder:
    """The steps in order, their goal, and the image settings the plans after the first are made
    with (the hysteresis)."""

    goal: Goal
    settings: ImageSettings
    rungs: tuple[Rung, ...]

    def starts(self, rung: Rung, *, removed: Collection[Step], shared: bool) -> bool:
        """Whether `rung` is taken, given the steps that removed something and whether the first
        plan had shared records (`while_short` is the measured disk's, checked after this)."""
        if rung.after is not None and rung.after not in removed:
            return False
        return shared or not rung.needs_shared

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(r.step for r in self.rungs)


_RUNGS = (
    Rung(Step.BUILD_CACHE, while_short=False),
    Rung(Step.IMAGES, while_short=False),
    Rung(Step.UNSHARED_BUILD_CACHE, after=Step.IMAGES, needs_shared=True),
    Rung(Step.DEAD_CONTAINERS),
    Rung(Step.IMAGES_LEFT, after=Step.DEAD_CONTAINERS),
    Rung(Step.BUILD_CACHE_LEFT, after=Step.IMAGES_LEFT),
)
# The steps `containers.remove_under_disk_pressure` turns on.
_DEAD_CONTAINER_STEPS = frozenset({Step.DEAD_CONTAINERS, Step.IMAGES_LEFT, Step.BUILD_CACHE_LEFT})


def plan_settings(
    settings: ImageSettings, *, projected: bool = False, found: Goal | None = None
) -> ImageSettings:
    """The image settings a plan is made with: as configured; once a plan of this image GC found
    the disk under pressure (`found`), each trigger just past its target (the hysteresis);
    `projected` with nothing found yet, as if the byte threshold had been crossed."""
    if found is not None and found.under_pressure:
        return targets.while_freeing(
            settings, found_bytes=bool(found.bytes), found_inodes=bool(found.inodes)
        )
    if projected:
        return targets.while_freeing(settings, found_bytes=True, found_inodes=False)
    return settings


def pressure_ladder(
    fs: FilesystemStats,
    settings: ImageSettings,
    *,
    projected: bool = False,
    dead_containers: bool = True,
) -> Ladder:
    """The ladder for the image filesystem as measured (`fs`) with the configured `settings`:
    the steps in order (`dead_containers`: `containers.remove_under_disk_pressure`, the steps
    of dead containers and what they leave), the goal every step stops at (what the rules of
    `policy.targets` ask of `fs`; trigger `projected` when the lookahead started it) and the
    settings the later plans are made with."""
    first = plan_settings(settings, projected=projected)
    asked = targets.wanted(fs, first)
    trigger = targets.PROJECTED if projected and asked.trigger else asked.trigger
    goal = Goal(
        high=first.high_threshold_percent,
        low=first.low_threshold_percent,
        target_free=asked.target_free_bytes,
        inode_low=first.inode_low_threshold_percent,
        bytes=asked.bytes,
        inodes=asked.inodes,
        trigger=trigger,
    )
    rungs = tuple(r for r in _RUNGS if dead_containers or r.step not in _DEAD_CONTAINER_STEPS)
    later = plan_settings(settings, projected=projected, found=goal)
    return Ladder(goal, later, rungs)
