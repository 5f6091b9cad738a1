"""What a listed byte really costs on the disk, learnt from measured removals.

Pure. CRI lists an image's compressed size; containerd keeps the compressed blob in its content
store and the unpacked snapshot beside it, so removing an image gives back more than its listed
size (twice it for a layer that does not compress, more for one that does). A runtime that says
its listed sizes are not the disk's (`Runtime.listed_size_cost`, a first guess) has its layer
sizes scaled by a factor; after each image GC the factor is learnt again from what the disk
really gave back against what the scaled sizes said (the cycle keeps it in the state dir).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from nodegc.model import Layer

# A factor outside these bounds is taken for noise (something else wrote or freed meanwhile).
MIN_FACTOR = 0.5
MAX_FACTOR = 8.0
# The least a sample must have freed (by the ledger and on the disk) to be learnt from.
MIN_SAMPLE_BYTES = 1024 * 1024


def scaled(layers: Mapping[str, Sequence[Layer]], factor: float) -> dict[str, tuple[Layer, ...]]:
    """Every known layer size times `factor` (unknown sizes stay unknown)."""
    if factor == 1.0:
        return {k: tuple(v) for k, v in layers.items()}
    return {
        holder: tuple(
            layer
            if layer.size_bytes is None
            else replace(layer, size_bytes=round(layer.size_bytes * factor))
            for layer in stack
        )
        for holder, stack in layers.items()
    }


def learnt(factor: float, ledger_freed: int, measured_freed: int) -> float | None:
    """The factor after a sample: removals the (scaled by `factor`) ledger said free
    `ledger_freed` bytes gave back `measured_freed` on the disk. None when the sample is too
    small or out of bounds to learn from (the factor stays)."""
    if ledger_freed < MIN_SAMPLE_BYTES or measured_freed < MIN_SAMPLE_BYTES or factor <= 0:
        return None
    sample = factor * measured_freed / ledger_freed
    if not MIN_FACTOR <= sample <= MAX_FACTOR:
        return None
    return round(sample, 4)
