"""The collector's recovery: what interrupted removals left (the intent journal) put right
before a cycle acts: tags put back, removals that finished unrecorded audited, objects someone
else removed recorded as `gone`. A mixin of `collect.cycle.Collector`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nodegc.collect import intents
from nodegc.collect.removal import log_result, tell
from nodegc.model import (
    Outcome,
    Reason,
    RemovalResult,
)
from nodegc.state.audit import audit_path, read_audit
from nodegc.state.journal import Intent

log = logging.getLogger(__name__)


# The detail of an audit line written at replay for a removal an interrupted run carried out.
FINISHED_BEFORE_A_KILL = (
    "gone when nodegc started again: an earlier run was removing it when it was interrupted, "
    "before it could record it"
)

# ... and for one found gone that nodegc had not asked the engine to delete (outcome `gone`).
GONE_BY_SOMEONE_ELSE = (
    "gone when nodegc started again: removed by someone else (an earlier run planned it but "
    "had not asked the engine to delete it when it was interrupted)"
)


class Recovering:
    """Methods of `Collector` (`collect.cycle`)."""

    def recover(self) -> None:
        """Put right what interrupted removals left (the intent journal): tags put back,
        removals that finished unrecorded recorded. Before every cycle that acts, and when the
        daemon finds the engine back. Never for `report` or a dry run. Raises like a listing."""
        with self.lock:
            if self.persist:
                intents.replay(self.runtime, self.journal, self._record_finished)

    def _record_finished(self, finished: Sequence[Intent], gone: Sequence[Intent] = ()) -> None:
        """Audit the removals an interrupted run carried out but could not record (those the
        audit record has a line for since the intent was written were recorded already), and
        the objects it had planned that someone else removed meanwhile (outcome `gone`)."""
        if not finished and not gone:
            return
        since = min(i.started_at for i in [*finished, *gone])
        try:
            entries, _ = read_audit(audit_path(self.settings), since)
        except OSError:
            entries = []
        recorded = {(e.get("kind"), e.get("id")) for e in entries}
        results = []
        for intent, mine in [*((i, True) for i in finished), *((i, False) for i in gone)]:
            if (intent.kind, intent.object_id) in recorded:
                continue
            try:
                reason = Reason(intent.reason)
            except ValueError:
                log.warning(
                    "journal entry with an unknown reason", extra={"object": intent.object_id}
                )
                continue
            result = RemovalResult(
                kind=intent.kind,
                id=intent.object_id,
                name=intent.name,
                reason=reason,
                outcome=Outcome.REMOVED if mine else Outcome.GONE,
                detail=FINISHED_BEFORE_A_KILL if mine else GONE_BY_SOMEONE_ELSE,
                size_bytes=intent.size_bytes if mine else 0,
                tags=intent.tags,
                pod=intent.pod,
            )
            log_result(result, {"object": intent.object_id, "pid": intent.pid})
            results.append(result)
        tell(self.listeners, results)
