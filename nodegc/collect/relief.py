"""The closed loop: remove candidates in order, measuring the disk, until it is where the plan
was asked to bring it.

Kind-agnostic: a candidate is anything a removal step can take (an image today; build cache
records and dead containers' writable layers are further kinds) with its key in the space
ledger. The loop does not decide what goes: the candidates come in the planner's order, the
planned ones first, then those a plan kept only because it expected to be done already.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from nodegc.collect.removal import ResultListener, tell
from nodegc.model import FilesystemStats, Outcome, RemovalResult
from nodegc.policy.space import Freed, Ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One removal the loop may carry out.

    `key`: its holder in the ledger (what its removal frees). `planned`: the plan removes it (else
    it is taken only while the measured disk is still short, past the plan). `unconditional`: it
    goes whatever the disk (age). `after`: keys of candidates that must be removed first (an
    image's children); if one of them stays, this one is skipped without asking the engine.
    `item`: what the removal step takes (a decision).
    """

    key: str
    item: Any
    planned: bool = True
    unconditional: bool = False
    after: tuple[str, ...] = ()


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
    measure: Callable[[], FilesystemStats],
    target_met: Callable[[FilesystemStats], bool],
    under_pressure: bool,
    remove: Callable[[Candidate, FilesystemStats], RemovalResult],
    skip: Callable[[Candidate, str], RemovalResult],
    workers: int,
    stopping: threading.Event,
    listeners: Sequence[ResultListener] = (),
) -> Relief:
    """Remove `candidates` in order, at most `workers` at once, measuring after each completion,
    until `target_met` (unconditional ones whatever the disk). What removals in flight will free
    (by the ledger) counts as coming: nothing more starts while they would reach the target, and
    whether they did is measured when they are done, so at most the removals in flight go past it.

    `remove(candidate, measured)` carries one out (the measurement it was started on tells a
    past-the-plan one why it goes); `skip(candidate, key)` records one whose prerequisite `key`
    stays. A removed candidate's result carries what the ledger says it let go of (attributed
    in the order they started; undone in the ledger when a removal does not happen).
    """
    relief = Relief(measured=measured)
    keys = {c.key for c in candidates}
    pending = deque(candidates)
    outcomes: dict[str, Outcome] = {}
    in_flight: dict[Future[RemovalResult], tuple[Candidate, Freed]] = {}

    def coming() -> FilesystemStats:
        """The disk once the removals in flight are done, as the ledger has it."""
        freed = sum((f for _, f in in_flight.values()), Freed(0, 0))
        now = relief.measured
        assert now is not None
        return replace(
            now,
            available_bytes=min(now.capacity_bytes, now.available_bytes + freed.bytes),
            inodes_free=min(now.inodes_total, now.inodes_free + (freed.inodes or 0)),
        )

    def finish(result: RemovalResult, key: str) -> None:
        outcomes[key] = result.outcome
        relief.results.append(result)
        tell(listeners, [result])

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remove")
    try:
        while pending or in_flight:
            while pending and len(in_flight) < workers and not stopping.is_set():
                c = pending[0]
                if not c.unconditional and target_met(coming()):
                    if in_flight:
                        break  # measure what they really free before going on
                    pending.popleft()
                    if c.planned:
                        relief.not_needed.add(c.key)
                    continue
                first = [k for k in c.after if k in keys]
                if any(k not in outcomes and k not in relief.not_needed for k in first):
                    break  # its prerequisites first: wait for them
                pending.popleft()
                staying = [k for k in first if outcomes.get(k) is not Outcome.REMOVED]
                if staying:
                    finish(skip(c, staying[0]), c.key)
                    continue
                freed = ledger.remove(c.key)
                assert relief.measured is not None
                in_flight[pool.submit(remove, c, relief.measured)] = (c, freed)
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                c, freed = in_flight.pop(future)
                result = future.result()
                if result.outcome is Outcome.REMOVED:
                    result = replace(result, size_bytes=freed.bytes)
                else:
                    ledger.restore(c.key)
                finish(result, c.key)
            if under_pressure:
                relief.measured = measure()
    finally:
        pool.shutdown(wait=True)
    return relief
