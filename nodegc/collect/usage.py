"""Where the space is, asked of the runtime: for `report`, and when image GC cannot reach its
target (never in a cycle below the thresholds: `/system/df` walks writable layers and volumes).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from nodegc.holders import Breakdown, Holder
from nodegc.model import FilesystemStats
from nodegc.policy.breakdown import breakdown, untouchable
from nodegc.runtime import Runtime, RuntimeError_, RuntimeUnavailable
from nodegc.runtime.docker_usage import space_holders

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpaceReport:
    """The breakdown of each measured filesystem, and the holders it was made of."""

    filesystems: tuple[Breakdown, ...]
    holders: tuple[Holder, ...]

    def untouchable(self, path: str | None = None, n: int = 3) -> tuple[Holder, ...]:
        """The `n` biggest holders nodegc may not remove, on the filesystem at `path` (the
        first, the image filesystem, by default)."""
        for b in self.filesystems:
            if path is None or b.path == path:
                return untouchable(b, self.holders, n)
        return ()


def explain(runtime: Runtime, filesystems: Sequence[FilesystemStats]) -> SpaceReport | None:
    """The breakdown, or None where the runtime cannot say (Podman, CRI) or the engine failed
    to answer (said in the log: an explanation is never worth failing a command for)."""
    try:
        holders = space_holders(runtime)
    except RuntimeUnavailable:
        raise
    except RuntimeError_ as exc:
        log.warning("where the space is: unavailable", extra={"error": str(exc)})
        return None
    if holders is None:
        return None
    return SpaceReport(breakdown(filesystems, holders), tuple(holders))
