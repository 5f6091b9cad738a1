"""The collector's removals: one removal carried out through the runtime (intent journaled,
the engine's answer turned into a result, told to the listeners), batches of them, and what
happens when the engine is lost meanwhile (no more start). A mixin of
`collect.cycle.Collector`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from nodegc.collect import intents
from nodegc.collect.removal import carry_out, log_result, tell
from nodegc.collect.report import CycleReport
from nodegc.model import (
    ContainerDecision,
    ImageDecision,
    Outcome,
    RemovalResult,
    short_id,
)
from nodegc.runtime import RuntimeError_, RuntimeUnavailable

log = logging.getLogger(__name__)


class Executing:
    """Methods of `Collector` (`collect.cycle`)."""

    def _child_stays(self, d: ImageDecision, child_id: str) -> RemovalResult:
        """A parent whose child this cycle could not remove: the engine would refuse it."""
        i = d.image
        result = RemovalResult(
            kind="image",
            id=i.id,
            name=i.describe(),
            reason=d.reason,
            outcome=Outcome.SKIPPED,
            detail=f"an image built on it stays: {short_id(child_id)}",
            tags=i.tags,
        )
        log_result(result, {"image": i.id, "tags": list(i.tags), "child": child_id})
        return result

    def _remove_all(
        self, decisions: Sequence[ContainerDecision] | Sequence[ImageDecision]
    ) -> list[RemovalResult]:
        if not decisions:
            return []
        workers = min(self.settings.runtime.max_concurrent_removals, len(decisions))
        now = self.clock()
        batch = [
            intents.image_intent(d.image, str(d.reason), now)
            if isinstance(d, ImageDecision)
            else intents.container_intent(d.container, str(d.reason), now)
            for d in decisions
        ]
        self._walks = intents.Walks(self.runtime, self.journal, batch)
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remove") as pool:
                attempted = list(pool.map(self._remove_and_tell, decisions))
        finally:
            self._walks.close()
        results = [r for r in attempted if r is not None]
        self._not_attempted += len(attempted) - len(results)
        return results

    def _remove_one(self, decision: ContainerDecision | ImageDecision) -> RemovalResult | None:
        """One removal; a dead container's result carries its writable layer's size (the
        engine's, when it was asked). None when it was not started (the engine was lost)."""
        result = self._carry_out(decision)
        if (
            result is not None
            and isinstance(decision, ContainerDecision)
            and result.outcome is Outcome.REMOVED
        ):
            last = self.last_snapshot
            sizes = last.disk_usage.container_sizes if last is not None else None
            size = (sizes or {}).get(decision.container.id, 0)
            if size:
                result = replace(result, size_bytes=size)
        return result

    def _check_engine(self, exc: RuntimeUnavailable) -> None:
        """A removal found the engine unreachable (or too slow): is it gone, or was it this one
        request (an answer cut short, one stalled DELETE)? A ping says; meanwhile no removal
        starts. Gone: none starts any more in this cycle."""
        with self._probing:
            if self._engine_lost is not None:
                return
            try:
                self.runtime.ping()
            except RuntimeError_:
                self._engine_lost = exc
                self._lost.set()

    def _stop_if_engine_lost(self, report: CycleReport) -> None:
        """At the first sign the engine is unreachable no removal is started (those in flight
        may fail): the cycle ends here, raising it, with `report` saying what was done."""
        if self._engine_lost is None:
            return
        report.not_attempted = self._not_attempted
        report.error = str(self._engine_lost)
        log.error(
            "engine unreachable during removals: no more were started",
            extra={
                "removed": sum(1 for r in report.results if r.outcome is Outcome.REMOVED),
                "attempted": len(report.results),
                "not_attempted": report.not_attempted,
                "error": report.error,
            },
        )
        raise self._engine_lost

    def _carry_out(self, decision: ContainerDecision | ImageDecision) -> RemovalResult | None:
        """One removal's result; None when it was not started (the engine was lost)."""
        with self._probing:  # wait while a failure is being checked
            if self._engine_lost is not None:
                return None
        if isinstance(decision, ContainerDecision):
            c = decision.container
            kind, obj_id, name, size = "container", c.id, c.name, 0
            fields = {
                "container": c.id,
                "container_name": c.name,
                "pod": c.pod,
                "unit": decision.evict_unit,
            }

            def remove() -> None:
                what = f"remove container {short_id(c.id)} ({c.name})"
                self._walks.check(what, c.id)
                self._walks.mark_sent(what, c.id)
                self.runtime.remove_container(c)
        else:
            i = decision.image
            kind, obj_id, name, size = "image", i.id, i.describe(), decision.frees_bytes
            fields = {
                "image": i.id,
                "tags": list(i.tags),
                "size_bytes": i.size_bytes,
                "frees_bytes": decision.frees_bytes,
            }

            def remove() -> None:
                notes.append(self._walks.remove_image(i) or "")

        fields["reason"] = str(decision.reason)
        notes: list[str] = []  # what happened to tags no longer the image's

        def attempt() -> None:
            try:
                remove()
            except RuntimeUnavailable as exc:
                self._check_engine(exc)
                raise

        outcome, detail = carry_out(attempt, self.stopping)
        detail = detail or "".join(notes)
        if kind == "container":
            self._walks.finish(obj_id)  # answered either way: final (an image settles itself)
        result = RemovalResult(
            kind=kind,
            id=obj_id,
            name=name,
            reason=decision.reason,
            outcome=outcome,
            detail=detail,
            size_bytes=size if outcome is Outcome.REMOVED else 0,
            tags=decision.image.tags if isinstance(decision, ImageDecision) else (),
            pod=decision.container.pod if isinstance(decision, ContainerDecision) else None,
        )
        log_result(result, fields)
        return result

    def _remove_and_tell(self, decision: ContainerDecision | ImageDecision) -> RemovalResult | None:
        """`_remove_one`, its result told (audited) as soon as it is done, not when the batch
        is: a kill loses no finished one."""
        result = self._remove_one(decision)
        if result is not None:
            tell(self.listeners, [result])
        return result

    def _not_started(self, d: ContainerDecision | ImageDecision) -> RemovalResult:
        """The result of a removal the closed loop handed over after the engine was found lost."""
        if isinstance(d, ImageDecision):
            i = d.image
            kind, obj_id, name, tags, pod = "image", i.id, i.describe(), i.tags, None
            fields: dict[str, object] = {"image": i.id, "tags": list(i.tags)}
        else:
            c = d.container
            kind, obj_id, name, tags, pod = "container", c.id, c.name, (), c.pod
            fields = {"container": c.id, "container_name": c.name, "pod": c.pod}
        result = RemovalResult(
            kind=kind,
            id=obj_id,
            name=name,
            reason=d.reason,
            outcome=Outcome.SKIPPED,
            detail="not attempted: the engine is unreachable",
            tags=tags,
            pod=pod,
        )
        log_result(result, fields)
        return result


class Either:
    """Set when either event is (the image loop's "start no more": stopping, or engine lost)."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)
