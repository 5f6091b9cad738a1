"""Space accounting: who holds which layers, and what a removal really frees.

Pure and kind-agnostic. A *holder* is anything that keeps layers on the disk: an image, and (for
the kinds other modules add) a build cache record or a dead container's writable layer. Holders
are named by strings the caller chooses (unique across kinds, e.g. "image:sha256:...").
A layer comes back to the disk when its last holder goes, so what removing a holder frees depends
on what was removed before it: the ledger answers that question as removals are marked, in the
order they are planned (or carried out).

The listed size of an image counts every layer it uses, shared or not; summing listed sizes is
what made the kubelet (and nodegc before this module) overestimate what it frees.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from nodegc.model import Image, Layer, LayerStore


@dataclass(frozen=True, slots=True)
class Freed:
    """Bytes and inodes one removal gives back. `inodes` is None when a freed layer's inode
    count is unknown (the runtime does not tell it)."""

    bytes: int = 0
    inodes: int | None = 0

    def __add__(self, other: Freed) -> Freed:
        inodes = None if self.inodes is None or other.inodes is None else self.inodes + other.inodes
        return Freed(self.bytes + other.bytes, inodes)


NOTHING = Freed(0, 0)


class Ledger:
    """Holders and their layers, with the removals marked so far.

    `frees(h)` is what removing `h` frees now, given the removals marked before; `remove(h)` marks
    it and returns the same figure. Removing every holder in any order frees every layer exactly
    once: the figures of a sequence of removals add up to the layers nobody holds any more.
    """

    __slots__ = ("_gone", "_holdings", "_refs")

    def __init__(self, holdings: Mapping[str, Sequence[Layer]]) -> None:
        self._holdings: dict[str, tuple[Layer, ...]] = {}
        self._refs: dict[str, int] = {}
        self._gone: set[str] = set()
        # The common case in bulk (10k images of ~10 layers): keys counted in C.
        keys = Counter[str]()
        for holder, layers in holdings.items():
            stack = tuple(layers)
            unique = {layer.key for layer in stack}
            if len(unique) != len(stack):
                stack = tuple({layer.key: layer for layer in stack}.values())
            self._holdings[holder] = stack
            keys.update(unique)
        self._refs = dict(keys)

    def add(self, holder: str, layers: Iterable[Layer]) -> None:
        """Another holder (e.g. a kind of reclaimable space another planner adds). A layer key
        listed twice for one holder counts once; a holder added again replaces its layers."""
        if holder in self._holdings and holder not in self._gone:
            self._release(holder)
        kept = tuple(layers)
        keys = [layer.key for layer in kept]
        if len(set(keys)) != len(keys):
            unique: dict[str, Layer] = {}
            for layer in kept:
                unique.setdefault(layer.key, layer)
            kept = tuple(unique.values())
            keys = [layer.key for layer in kept]
        self._holdings[holder] = kept
        self._gone.discard(holder)
        refs = self._refs
        get = refs.get
        for key in keys:
            refs[key] = get(key, 0) + 1

    def __contains__(self, holder: object) -> bool:
        return holder in self._holdings

    def layers(self, holder: str) -> tuple[Layer, ...]:
        return self._holdings.get(holder, ())

    def removed(self, holder: str) -> bool:
        return holder in self._gone

    def sized(self, holder: str) -> bool:
        """Whether the engine sized every layer `holder` holds (Podman gives no writable-layer
        sizes: a dead container's figure is then unknown, not 0)."""
        return all(layer.size_bytes is not None for layer in self._holdings.get(holder, ()))

    def frees(self, holder: str) -> Freed:
        """What removing `holder` frees now: its layers no other remaining holder holds."""
        if holder in self._gone or holder not in self._holdings:
            return NOTHING
        refs = self._refs
        size = 0
        inodes: int | None = 0
        for layer in self._holdings[holder]:
            if refs[layer.key] == 1:
                size += layer.size_bytes or 0
                if inodes is not None:
                    inodes = None if layer.inodes is None else inodes + layer.inodes
        return Freed(size, inodes)

    def remove(self, holder: str) -> Freed:
        """Mark `holder` removed; what it frees (nothing when already removed or unknown)."""
        freed = self.frees(holder)
        if holder in self._holdings and holder not in self._gone:
            self._release(holder)
            self._gone.add(holder)
        return freed

    def restore(self, holder: str) -> None:
        """Undo `remove` (the removal did not happen after all): it holds its layers again."""
        if holder in self._gone:
            self._gone.discard(holder)
            refs = self._refs
            for layer in self._holdings[holder]:
                refs[layer.key] += 1

    def _release(self, holder: str) -> None:
        refs = self._refs
        for layer in self._holdings[holder]:
            refs[layer.key] -= 1

    def held(self) -> Freed:
        """Bytes and inodes of every layer some remaining holder holds (a model of the disk)."""
        seen: dict[str, Layer] = {}
        for holder, layers in self._holdings.items():
            if holder in self._gone:
                continue
            for layer in layers:
                seen.setdefault(layer.key, layer)
        total = NOTHING
        for layer in seen.values():
            total = total + Freed(layer.size_bytes or 0, layer.inodes)
        return total


def private_layer(key: str, size_bytes: int) -> tuple[Layer, ...]:
    """The layers of a holder whose real layers are unknown: one of its listed size, shared with
    nobody (what a runtime without layer information gives; overstates shared images)."""
    return (Layer(key=key, size_bytes=max(0, size_bytes), inodes=None),)


def estimate_sizes(
    layers: Mapping[str, Sequence[Layer]], totals: Mapping[str, int]
) -> dict[str, tuple[Layer, ...]]:
    """Fill in unknown layer sizes from the holders' total sizes (CRI lists only a total).

    The keys must be chain ids (a key names its whole prefix, so a holder of layer k holds every
    layer below it). The size of the prefix up to a layer is estimated as the smallest total of
    the holders that hold it: exact when that prefix is itself a whole image (a base image on the
    node), an overestimate of what is shared otherwise (so what a removal frees is never
    overstated; the closed loop measures the rest). Known sizes are kept as they are.
    """
    prefix: dict[str, int] = {}
    for holder, stack in layers.items():
        total = max(0, totals.get(holder, 0))
        for layer in stack:
            if layer.size_bytes is None:
                known = prefix.get(layer.key)
                prefix[layer.key] = total if known is None else min(known, total)
    out: dict[str, tuple[Layer, ...]] = {}
    for holder, stack in layers.items():
        if all(layer.size_bytes is not None for layer in stack):
            out[holder] = tuple(stack)
            continue
        filled: list[Layer] = []
        below = 0  # the estimated size of the prefix under the current layer
        for layer in stack:
            if layer.size_bytes is not None:
                filled.append(layer)
                below += layer.size_bytes
                continue
            upto = max(below, prefix[layer.key])
            filled.append(Layer(layer.key, upto - below, layer.inodes))
            below = upto
        out[holder] = tuple(filled)
    return out


def store_costs(
    store: LayerStore, images: Iterable[Image], layers: Mapping[str, Sequence[Layer]]
) -> dict[str, tuple[Layer, ...]]:
    """Each image's layers with what they cost on the disk in `store` (the runtime declares it).

    - `ONE_COPY` (overlay2, Podman): a layer is its unpacked files: the sizes as told.
    - `CONTENT_AND_SNAPSHOT` (Docker's containerd image store): a layer is its content blob
      and its unpacked snapshot. The engine tells the snapshot sizes (`/history`) and, per
      image, the listed size = content + snapshots, so the image's content bytes are its listed
      size less its snapshots; they are spread over its layers in proportion to their snapshot
      sizes (exact for uncompressed layers; for compressed ones each layer gets the image's
      average ratio). A layer several images share costs the least any of them gives it, so a
      removal's figure is never overstated by one image's ratio.
    - `LISTED` (CRI): sizes as told (None: `image_holdings` estimates them from the listed,
      compressed sizes; what a removal really frees is learnt by measuring).
    """
    if store is not LayerStore.CONTENT_AND_SNAPSHOT:
        return dict(layers)  # type: ignore[arg-type]
    cost: dict[str, int] = {}
    for image in images:
        stack = layers.get(image.id, ())
        if not stack or any(layer.size_bytes is None for layer in stack):
            continue
        unpacked = sum(layer.size_bytes or 0 for layer in stack)
        content = max(0, image.size_bytes - unpacked)
        for layer in stack:
            own = layer.size_bytes or 0
            # No snapshot sizes told (every /history step 0): spread evenly.
            extra = content * own // unpacked if unpacked > 0 else content // len(stack)
            known = cost.get(layer.key)
            cost[layer.key] = own + extra if known is None else min(known, own + extra)
    return {
        image_id: tuple(
            Layer(layer.key, cost.get(layer.key, layer.size_bytes), layer.inodes, layer.size_bytes)
            for layer in stack
        )
        for image_id, stack in layers.items()
    }
