"""The per-byte cost of listed image sizes, for runtimes whose listed sizes are not the disk's.

CRI lists compressed sizes; containerd keeps the compressed blob and the unpacked snapshot. A
runtime says so as data (`listed_size_cost`: its first guess of what a listed byte costs on the
disk; absent or None: listed sizes are the disk's). The observed layers are then sized by the
learnt factor before the policy plans (`policy.cost.scaled`), and each image GC that gave back
enough to measure teaches the factor again (`policy.cost.learnt`), kept in the state dir.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from nodegc.model import Outcome, RemovalResult, Snapshot
from nodegc.policy.cost import learnt, scaled
from nodegc.policy.images import image_holdings
from nodegc.state.cost import load_cost, save_cost
from nodegc.state.store import StateDir, StateError

log = logging.getLogger(__name__)


class LayerCost:
    """The factor for one runtime and state directory."""

    def __init__(self, prior: float | None, state: StateDir, *, persist: bool) -> None:
        self.prior = prior
        self.state = state
        self.persist = persist
        kept = load_cost(state) if prior is not None else None
        self.factor: float = kept[0] if kept else (prior or 1.0)
        self.samples: int = kept[1] if kept else 0

    @property
    def active(self) -> bool:
        return self.prior is not None

    def apply(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with every image's layers sized by the factor (estimated first where the
        runtime lists only totals)."""
        if not self.active:
            return snapshot
        holdings = image_holdings(snapshot.images, snapshot.layers)
        return replace(snapshot, layers=scaled(holdings, self.factor))

    def learn(self, results: Sequence[RemovalResult], measured_freed: int) -> None:
        """After image removals the ledger (at this factor) said free what `results` carry, the
        disk gave back `measured_freed`: learn the factor from it when the sample is big enough."""
        if not self.active:
            return
        ledger_freed = sum(
            r.size_bytes or 0 for r in results if r.kind == "image" and r.outcome is Outcome.REMOVED
        )
        factor = learnt(self.factor, ledger_freed, measured_freed)
        if factor is None:
            return
        log.info(
            "learnt what a listed image byte costs on the disk",
            extra={
                "factor": factor,
                "was": self.factor,
                "ledger_freed_bytes": ledger_freed,
                "measured_freed_bytes": measured_freed,
            },
        )
        self.factor, self.samples = factor, self.samples + 1
        if self.persist:
            try:
                save_cost(self.state, self.factor, self.samples)
            except (OSError, StateError) as exc:
                log.warning("layer cost not saved", extra={"error": str(exc)})
