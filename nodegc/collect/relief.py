"""The closed loop: remove candidates in order, measuring the disk, until it is where the plan
was asked to bring it.

Kind-agnostic: a candidate is anything a removal step can take (an image today; build cache
records and dead containers' writable layers are further kinds) with its key in the space
ledger. The loop does not decide what goes: the candidates come in the planner's order, the
planned ones first, then those a plan kept only because it expected to be done already.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from nodegc.collect.removal import ResultListener, tell
from nodegc.model import FilesystemStats, Outcome, RemovalResult
from nodegc.policy.space import NOTHING, Freed, Ledger

log = logging.getLogger(__name__)

# Measure until the disk is steady or the predicate says it is where it should be.
# settle(done, quiet): measure until the disk is steady for `quiet` seconds or `done` says so.
Settle = Callable[[Callable[[FilesystemStats], bool], float], FilesystemStats]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One removal the loop may carry out.

    `key`: its holder in the ledger (what its removal frees). `planned`: the plan removes it (else
    it is taken only while the measured disk is still short, past the plan). `unconditional`: it
    goes whatever the disk (age). `after`: keys of candidates that must be removed first (an
    image's children); if one of them stays, this one is skipped without asking the engine.
    `item`: what the removal step takes (a decision). `retry`: if the engine refuses it
    (`skipped`), it is tried again after the others, once more for each removal that happened
    since (the engine did not say what holds it: a child it could not name may go first).
    """

    key: str
    item: Any
    planned: bool = True
    unconditional: bool = False
    after: tuple[str, ...] = ()
    retry: bool = False


class Stopping(Protocol):
    """Says when to start no more removals (a `threading.Event`, or several)."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Loop:
    """How one closed loop measures, stops and tells: `measure` the filesystem (statvfs);
    `stopping` set, start no more; `under_pressure` False, measure not at all (only removals that
    go whatever the disk run); at most `workers` removals at once; each result told to
    `listeners` as it is done; `settle`, where the runtime frees after a removal returns."""

    measure: Callable[[], FilesystemStats]
    stopping: Stopping
    under_pressure: bool = True
    workers: int = 1
    listeners: Sequence[ResultListener] = ()
    settle: Settle | None = None


@dataclass
class Relief:
    """What the loop did: results in completion order, planned removals left out because the
    disk had come down first, and the last measurement."""

    results: list[RemovalResult] = field(default_factory=list)
    not_needed: set[str] = field(default_factory=set)
    measured: FilesystemStats | None = None


def relieve(
    candidates: Sequence[Candidate],
    *,
    ledger: Ledger,
    measured: FilesystemStats,
    target_met: Callable[[FilesystemStats], bool],
    loop: Loop,
    remove: Callable[[Candidate, FilesystemStats], RemovalResult],
    skip: Callable[[Candidate, str], RemovalResult],
) -> Relief:
    """Remove `candidates` in order, at most `loop.workers` at once, measuring after each one,
    until `target_met` (unconditional ones whatever the disk). What removals in flight will free
    (by the ledger) counts as coming: nothing more starts while they would reach the target, and
    whether they did is measured when they are done, so at most the removals in flight go past it.
    Near the target (the next candidate alone would reach it, the removals in flight counted as
    done) nothing more starts while one is in flight, so the last removal cannot overshoot by
    more than itself; so too for a candidate whose size the ledger does not know (Podman's dead
    containers): it runs alone, and the disk is measured after it.

    `loop.settle(done)`: the runtime gives space back after a removal returns (containerd's GC):
    called before deciding that more is needed, it measures until the disk is steady (or `done`
    says the target is met) and returns that measurement.

    `remove(candidate, measured)` carries one out (the measurement it was started on tells a
    past-the-plan one why it goes); `skip(candidate, key)` records one whose prerequisite `key`
    stays. A removed candidate's result carries what the ledger says it let go of (attributed
    in the order they started; undone in the ledger when a removal does not happen).
    """
    walk = _Walk(candidates, ledger, measured, target_met, loop.stopping, loop.listeners)
    workers, settle = loop.workers, loop.settle
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remove")
    try:
        while walk.pending or walk.in_flight or walk.again():
            walk.start(pool, workers, remove, skip)
            if not walk.in_flight:
                if walk.again():
                    continue
                break
            done, _ = wait(walk.in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                walk.done(future)
            if loop.under_pressure:
                walk.relief.measured = loop.measure()
                if settle is not None and not target_met(walk.relief.measured):
                    walk.relief.measured = settle(target_met, SETTLE_QUIET_SECONDS)
    finally:
        pool.shutdown(wait=True)
    measured = walk.relief.measured
    # Nothing left to remove: before calling the target missed, give the runtime's GC longer to
    # start (on a busy node it began more than half a second after the answer); after a walk
    # that removed nothing, nothing of its own is coming: no wait.
    short = loop.under_pressure and measured is not None and not target_met(measured)
    if short and settle is not None and walk.removals:
        walk.relief.measured = settle(target_met, SETTLE_FINAL_QUIET_SECONDS)
    for key, (c, result, _) in walk.refused.items():  # refused for good: said once, at the end
        if walk.not_needed(c):
            continue
        walk.finish(result, key)
    return walk.relief


class _Walk:
    """The state of one `relieve`: what is pending, in flight, refused, and what came of it."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        ledger: Ledger,
        measured: FilesystemStats,
        target_met: Callable[[FilesystemStats], bool],
        stopping: Stopping,
        listeners: Sequence[ResultListener],
    ) -> None:
        self.relief = Relief(measured=measured)
        self.start_measured = measured
        self.keys = {c.key for c in candidates}
        self.pending = deque(candidates)
        self.ledger = ledger
        self.target_met = target_met
        self.stopping = stopping
        self.listeners = listeners
        self.outcomes: dict[str, Outcome] = {}
        self.in_flight: dict[Future[RemovalResult], tuple[Candidate, Freed]] = {}
        # Refused candidates to try again, with how many removals had happened when they were.
        self.refused: dict[str, tuple[Candidate, RemovalResult, int]] = {}
        self.removals = 0
        self.ledger_done = 0  # bytes the ledger said the finished removals free

    def coming(self, extra: Freed = NOTHING) -> FilesystemStats:
        """The disk once the removals in flight (and `extra`) are done, as the ledger has it,
        scaled up by what the finished ones really gave back against the ledger (when more:
        listed sizes that understate the disk must not let the last batch overshoot)."""
        freed = sum((f for _, f in self.in_flight.values()), extra)
        now = self.relief.measured
        assert now is not None
        came_back = now.available_bytes - self.start_measured.available_bytes
        ratio = max(1.0, came_back / self.ledger_done) if self.ledger_done > 0 else 1.0
        return replace(
            now,
            available_bytes=min(now.capacity_bytes, now.available_bytes + int(freed.bytes * ratio)),
            inodes_free=min(now.inodes_total, now.inodes_free + (freed.inodes or 0)),
        )

    def finish(self, result: RemovalResult, key: str) -> None:
        self.outcomes[key] = result.outcome
        self.relief.results.append(result)
        tell(self.listeners, [result])

    def one_at_a_time(self, c: Candidate) -> bool:
        """Whether `c` may start only once nothing is in flight: near the target (it alone would
        reach it, the removals in flight counted as done), or what it or one in flight frees is
        unknown to the ledger (no size from the engine: only measuring after it tells)."""
        unsized = not self.ledger.sized(c.key) or any(
            not self.ledger.sized(k.key) for k, _ in self.in_flight.values()
        )
        return unsized or self.target_met(self.coming(self.ledger.frees(c.key)))

    def not_needed(self, c: Candidate) -> bool:
        """Whether a candidate the engine refused is one the measured disk no longer needs: then
        it is not `skipped` (that says the disk still needed it) but, planned, `not-needed`, and
        taken past the plan, kept as the plan had it."""
        assert self.relief.measured is not None
        if c.unconditional or self.stopping.is_set() or not self.target_met(self.relief.measured):
            return False
        if c.planned:
            self.relief.not_needed.add(c.key)
        log.debug("refused, no longer needed", extra={"holder": c.key})
        return True

    def again(self) -> bool:
        """Put back the refused candidates worth another try (a removal happened since, and the
        disk still needs them)."""
        if self.stopping.is_set():
            return False
        short = not self.target_met(self.coming())
        retry = [
            c
            for c, _, at in self.refused.values()
            if at < self.removals and (short or c.unconditional)
        ]
        for c in retry:
            del self.refused[c.key]
            self.outcomes.pop(c.key, None)
        self.pending.extend(retry)
        return bool(retry)

    def start(
        self,
        pool: ThreadPoolExecutor,
        workers: int,
        remove: Callable[[Candidate, FilesystemStats], RemovalResult],
        skip: Callable[[Candidate, str], RemovalResult],
    ) -> None:
        """Start what may start now, in order, while workers are free."""
        pending, in_flight, relief = self.pending, self.in_flight, self.relief
        while pending and len(in_flight) < workers and not self.stopping.is_set():
            c = pending[0]
            if not c.unconditional and self.target_met(self.coming()):
                if in_flight:
                    break  # measure what they really free before going on
                pending.popleft()
                if c.planned:
                    relief.not_needed.add(c.key)
                continue
            if in_flight and not c.unconditional and self.one_at_a_time(c):
                break  # near the target, or a size the ledger does not know: one at a time
            first = [k for k in c.after if k in self.keys]
            if any(k not in self.outcomes and k not in relief.not_needed for k in first):
                break  # its prerequisites first: wait for them
            pending.popleft()
            staying = [k for k in first if self.outcomes.get(k) is not Outcome.REMOVED]
            if staying:
                self.finish(skip(c, staying[0]), c.key)
                continue
            freed = self.ledger.remove(c.key)
            assert relief.measured is not None
            in_flight[pool.submit(remove, c, relief.measured)] = (c, freed)

    def done(self, future: Future[RemovalResult]) -> None:
        """One removal finished: its result (with what the ledger says it freed), or, refused
        where a retry may help, kept aside for another try."""
        c, freed = self.in_flight.pop(future)
        result = future.result()
        if result.outcome is Outcome.REMOVED:
            result = replace(result, size_bytes=freed.bytes)
            self.removals += 1
            self.ledger_done += freed.bytes
        else:
            self.ledger.restore(c.key)
        if c.retry and result.outcome is Outcome.SKIPPED:
            self.outcomes[c.key] = result.outcome
            self.refused[c.key] = (c, result, self.removals)
            return
        self.finish(result, c.key)


# How long the disk must stop giving space back to count as settled, the longest wait for it,
# and the most one closed loop's waits that never settled take together (`settle_within`).
SETTLE_QUIET_SECONDS = 0.5
SETTLE_FINAL_QUIET_SECONDS = 3.0  # the last look, when nothing is left to remove
SETTLE_LIMIT_SECONDS = 15.0
SETTLE_BUDGET_SECONDS = 60.0
_SETTLE_POLL_SECONDS = 0.05


def settled(
    measure: Callable[[], FilesystemStats],
    done: Callable[[FilesystemStats], bool],
    *,
    quiet: float = SETTLE_QUIET_SECONDS,
    limit: float = SETTLE_LIMIT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> FilesystemStats:
    """Measure until the disk stops giving space back (no more free bytes or inodes than the
    reading before for `quiet` seconds) or `done` says it is where it should be, for at most
    `limit` seconds: what a runtime that frees after its removal returns (containerd's GC) has
    given back by then. Only a rise counts as change: the node's other writers (containers
    being created, logs) take space all the time, and the disk of a busy node is never still."""
    last = measure()
    start = since = clock()
    while not done(last) and clock() - start < limit:
        sleep(_SETTLE_POLL_SECONDS)
        now = measure()
        if now.available_bytes > last.available_bytes or now.inodes_free > last.inodes_free:
            since = clock()
        elif clock() - since >= quiet:
            return now
        last = now
    log.debug(
        "waited for the disk to settle",
        extra={"path": last.path, "seconds": round(clock() - start, 3)},
    )
    return last


def settle_within(
    measure: Callable[[], FilesystemStats],
    budget: float = SETTLE_BUDGET_SECONDS,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Settle:
    """`settled` for one closed loop, each call at most `SETTLE_LIMIT_SECONDS`, and the calls
    that end without the disk settling (it kept rising for another reason: another cleaner at
    work) at most `budget` seconds together: such a disk costs the loop that once, not at every
    removal. Waits that end with the disk settled or the target met are not counted: a long
    walk keeps its waits near the target, where they matter. Once the budget is spent, a call
    measures once."""
    left = [budget]

    def settle(done: Callable[[FilesystemStats], bool], quiet: float) -> FilesystemStats:
        limit = min(SETTLE_LIMIT_SECONDS, left[0])
        began = clock()
        measured = settled(measure, done, quiet=quiet, limit=limit, clock=clock, sleep=sleep)
        waited = clock() - began
        if waited >= limit and not done(measured):  # ran to its limit: never settled
            left[0] = max(0.0, left[0] - waited)
        return measured

    return settle
