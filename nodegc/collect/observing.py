"""The collector's observation: a complete snapshot (listings, filesystems, and only the costly
questions the plan needs: build cache and writable-layer sizes, finish times, layers of new
images), folded into history and saved. A mixin of `collect.cycle.Collector`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from nodegc.collect.learn import learn_layers
from nodegc.collect.observe import check_targets, take_snapshot
from nodegc.collect.rebuild import PastEvents, past_events, rebuild_history
from nodegc.config import ImageSettings
from nodegc.model import Image, Snapshot
from nodegc.policy import targets
from nodegc.policy.build_cache import needs_listing
from nodegc.policy.containers import sizes_needed
from nodegc.policy.finish_times import finish_times_needed, with_finish_times
from nodegc.policy.history import observe, record_events
from nodegc.policy.ladder import plan_settings
from nodegc.policy.space import store_costs
from nodegc.runtime import RuntimeError_, RuntimeUnavailable
from nodegc.state.store import StateError

log = logging.getLogger(__name__)


# Finish times asked for per image per round (the adapters' request pool), and the rounds after
# which whatever is still wanted is asked for at once.
FINISH_TIME_BATCH = 8

FINISH_TIME_ROUNDS = 8


class Observing:
    """Methods of `Collector` (`collect.cycle`)."""

    # -- observe ----------------------------------------------------------------------------
    def observe(self) -> Snapshot:
        """A complete snapshot, folded into history (and saved, when this collector persists).

        The costly questions (the build cache, writable-layer sizes: one request) are asked only
        where the plan needs them, for `report` as for a cycle: under disk pressure, or for the
        build cache's maximum age."""
        with self.lock:
            now = self.clock()
            tagged_at: dict[str, datetime] = {}
            asked: set[str] = set()  # new images whose tag time was asked with their layers
            new_ids: list[str] = []
            listed: list[bool] = []  # the listings came: what follows is kept on a failure

            past: list[PastEvents] = []  # history lost: the engine's past events, read once

            def learn(images: Sequence[Image]) -> None:
                # While the engine still answers where it keeps what (Podman's `/info`: a
                # second): the layers of images not seen before, and their tag times (after the
                # past events a lost history needs: Podman's event log, read once, has both).
                listed.append(True)
                if self._history_lost is not None:
                    past.append(past_events(self.runtime, now))
                new_ids.extend(i.id for i in images if i.id not in self.history.images)
                self._learn_layers(images, tagged_at, (set(new_ids), asked))

            try:
                snapshot = take_snapshot(
                    self.runtime,
                    self.settings.images.filesystem_path,
                    now,
                    measure=self.measure,
                    meanwhile=learn,
                )
                check_targets(self.settings.images, snapshot.measured)
                snapshot = self._with_disk_usage(snapshot)
                snapshot = self._resolve_finish_times(snapshot)
                snapshot = self._with_layers(snapshot)
                rest = [i for i in new_ids if i not in asked]
                if rest:
                    tagged_at.update(self.runtime.image_tagged_at(rest))
            except RuntimeError_:
                # Keep what was learnt (layers, tag times, finish times): a retry asks only
                # about what is still unknown. A listing that failed learnt nothing.
                if listed:
                    self.history = record_events(self.history, {}, tagged_at)
                    self.save_history()
                raise
            self.history = observe(self.history, snapshot, now, tagged_at)
            if (lost := self._history_lost) is not None:
                path = self.state.history_path
                self.history = rebuild_history(
                    self.runtime, self.history, snapshot, lost, path, *past
                )
                self._history_lost = None
            self.last_snapshot = snapshot
            self.save_history()
            return snapshot

    def _image_settings(self) -> ImageSettings:
        """The image settings plans are made with: the ladder's while image GC climbs it (the
        hysteresis), else as the policy has them (`policy.ladder.plan_settings`)."""
        if self._ladder is not None:
            return self._ladder.settings
        return plan_settings(self.settings.images, projected=self.projected)

    def _with_disk_usage(self, snapshot: Snapshot) -> Snapshot:
        images, containers = self._image_settings(), self.settings.containers
        pressure = targets.under_pressure(snapshot.filesystem, images)
        cache = needs_listing(self.settings.build_cache, under_pressure=pressure)
        sizes = sizes_needed(snapshot.containers, containers, under_pressure=pressure)
        if not cache and not sizes:
            return snapshot
        try:
            usage = self.runtime.disk_usage(build_cache=cache, container_sizes=sizes)
        except RuntimeUnavailable:
            raise
        except RuntimeError_ as exc:
            # Not a listing the plan can act on partially: no build cache GC this cycle and no
            # writable-layer sizes (the closed loop measures); images and containers go on.
            log.warning(
                "build cache and writable-layer sizes unavailable", extra={"error": str(exc)}
            )
            return snapshot
        return replace(snapshot, disk_usage=usage)

    def _learn_layers(
        self,
        images: Sequence[Image],
        tagged_at: dict[str, datetime],
        new: tuple[set[str], set[str]],
    ) -> None:
        """The layers of the listed images not kept yet, asked of the runtime (once per image
        id, a batch at a time, each kept as it comes), with the tag times of the new ones,
        `new[0]`, into `tagged_at` and their ids into `new[1]`."""
        missing = [i.id for i in images if i.id not in self.layers]
        if missing:
            self._layers_dirty = True
            learn_layers(self.runtime, missing, self.layers, tagged_at, *new)

    def _with_layers(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with every image's layers (learnt by `_learn_layers` as it was taken).
        Images no longer listed are forgotten."""
        listed = {i.id for i in snapshot.images}
        if len(self.layers) > len(listed):
            self.layers = {k: v for k, v in self.layers.items() if k in listed}
            self._layers_dirty = True
        # What each layer costs on the disk is the policy's rule for the runtime's store; where
        # the runtime's listed sizes are not the disk's (CRI), the learnt factor sizes them.
        costs = store_costs(snapshot.store, snapshot.images, self.layers)
        return self.cost.apply(replace(snapshot, layers=costs))

    def _resolve_finish_times(self, snapshot: Snapshot) -> Snapshot:
        """Ask the runtime for the exact finish times the plan and history depend on, and only
        those (`policy.finish_times`): a round at a time, as each answer can settle others.
        Raises RuntimeUnavailable like a listing: nothing is decided on a partial answer."""
        asked: set[str] = set()
        pressure = targets.under_pressure(snapshot.filesystem, self._image_settings())
        for attempt in range(FINISH_TIME_ROUNDS + 1):
            batch = None if attempt == FINISH_TIME_ROUNDS else FINISH_TIME_BATCH
            need = finish_times_needed(
                snapshot,
                self.history,
                self.settings.containers,
                snapshot.taken_at,
                batch,
                under_pressure=pressure,
            )
            need = [i for i in need if i not in asked]
            if not need:
                break
            asked.update(need)
            snapshot = with_finish_times(snapshot, self.runtime.finish_times(need))
        return snapshot

    def apply_events(
        self, used: Mapping[str, datetime], arrived: Mapping[str, datetime] | None = None
    ) -> None:
        """Fold a batch of what the event stream saw into history, and save it once."""
        if not used and not arrived:
            return
        with self.lock:
            self.history = record_events(self.history, used, arrived)
            self.save_history()

    def save_history(self) -> None:
        if not self.persist:
            return
        try:
            self.state.save_history(self.history)
            self.state.save_finish_times(self.runtime.finish_cache)
            if self._layers_dirty:
                self.state.save_layers(self.layers)
                self._layers_dirty = False
            self.history_save_error = None
        except StateError as exc:
            if self.history_save_error != str(exc):
                log.warning("history not saved", extra={"error": str(exc)})
            self.history_save_error = str(exc)
