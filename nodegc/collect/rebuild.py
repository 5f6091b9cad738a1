"""History lost (missing, truncated, garbage, the wrong shape, empty): rebuilt from what the
engine can tell before anything is planned on it.

A fresh history counts every image with no container now as never used, and never-used images
go first: after a lost file, an image whose containers ran an hour ago and are gone would go
before one last used a month ago. The listing gives the containers still there (creation and
finish times, live ones: `policy.history.observe`) and the tag times; the engine's remembered
events (`Runtime.past_events`: Docker keeps its last 256, Podman its event log) give the uses of
containers that are gone (`policy.history.rebuild`). One log line says that history was
rebuilt, naming the file and what was wrong with it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from nodegc.model import History, RuntimeEvent, Snapshot
from nodegc.policy.history import rebuild
from nodegc.runtime import Runtime, RuntimeError_, RuntimeUnavailable

log = logging.getLogger(__name__)

# The engine's past events as read, or the engine error asking them raised.
PastEvents = list[RuntimeEvent] | RuntimeError_


def past_events(runtime: Runtime, until: datetime) -> PastEvents:
    """The engine's past events up to `until`, or the engine error asking them raised: read
    before they are needed (Podman's event log then serves the same observation's tag times,
    one read instead of two), the error raised or told where they are used."""
    try:
        return list(runtime.past_events(until))
    except RuntimeError_ as exc:
        return exc


def rebuild_history(
    runtime: Runtime,
    history: History,
    snapshot: Snapshot,
    problem: str,
    path: Path,
    read: PastEvents | None = None,
) -> History:
    """`history` (observed from `snapshot` already) with the use the engine's past events show
    (`read`: as `past_events` read them already, else asked now). Raises RuntimeUnavailable
    like a listing; any other engine error leaves the events out."""
    if read is None:
        read = past_events(runtime, snapshot.taken_at)
    if isinstance(read, RuntimeUnavailable):
        raise read
    if isinstance(read, RuntimeError_):
        log.warning(
            "the engine's past events are unavailable: history rebuilt from the listing only",
            extra={"path": str(path), "error": str(read)},
        )
        read = []
    rebuilt = rebuild(history, snapshot, read)
    used = sum(1 for r in rebuilt.images.values() if r.last_used is not None)
    level = logging.INFO if problem == "missing" else logging.WARNING
    log.log(
        level,
        f"history rebuilt from what the engine shows: {path} was {problem}",
        extra={
            "path": str(path),
            "problem": problem,
            "images": len(rebuilt.images),
            "images_used": used,
            "events": len(read),
        },
    )
    return rebuilt
