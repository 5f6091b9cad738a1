"""What a cycle learns from the engine about new images, kept as it comes.

A big node's first cycle asks about every new image (its layers, its tag time: an inspect and a
history request each, thousands of requests). Asked a batch at a time, each batch's answers are
kept as soon as they arrive, so an engine that fails part-way (a lost connection after the
retries, a restart) costs only the batch in flight: the caller saves what was learnt, and the
next attempt asks only about what is still unknown.
"""

from __future__ import annotations

from collections.abc import Collection, MutableMapping, Sequence
from datetime import datetime

from nodegc.model import Layer
from nodegc.runtime import Runtime

# Images asked about per batch: big enough to keep the adapter's inspect pool busy, small enough
# that a failure loses little.
LAYER_BATCH = 100


def learn_layers(
    runtime: Runtime,
    missing: Sequence[str],
    layers: MutableMapping[str, tuple[Layer, ...]],
    tagged_at: MutableMapping[str, datetime],
    new: Collection[str],
    asked: set[str],
) -> None:
    """Ask `runtime` for the layers of the `missing` image ids into `layers`, a batch at a time;
    for the ones among them history has not seen (`new`), their tag times into `tagged_at`
    (the adapter reuses the inspect the layers took; an image with no tag time is left out) and
    their ids into `asked`. Raises like a listing, with every finished batch already in
    `layers`, `tagged_at` and `asked`."""
    for start in range(0, len(missing), LAYER_BATCH):
        batch = missing[start : start + LAYER_BATCH]
        layers.update(runtime.image_layers(batch))
        fresh = [i for i in batch if i in new]
        if fresh:
            tagged_at.update(runtime.image_tagged_at(fresh))
            asked.update(fresh)
