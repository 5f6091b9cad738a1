"""The learnt per-byte cost of a runtime's listed image sizes (`policy.cost`), kept in the
state directory as `layer-cost.json`: {"factor": 2.0, "samples": 3}. A missing or unreadable
file is no knowledge (the runtime's first guess is used); it is rewritten atomically (0600)."""

from __future__ import annotations

import json

from nodegc.state.store import StateDir, write_atomically

COST_FILE = "layer-cost.json"


def load_cost(state: StateDir) -> tuple[float, int] | None:
    """(factor, samples) as last learnt; None when nothing was (or the file is unreadable)."""
    try:
        data = json.loads((state.path / COST_FILE).read_text())
        factor, samples = float(data["factor"]), int(data["samples"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (factor, samples) if factor > 0 and samples >= 0 else None


def save_cost(state: StateDir, factor: float, samples: int) -> None:
    state.ensure()
    data = json.dumps({"factor": factor, "samples": samples}).encode()
    write_atomically(state.path / COST_FILE, data)
