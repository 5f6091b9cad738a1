"""Which dead containers' exact finish times a plan depends on. Pure.

A container listing does not say when a dead container stopped (Docker's says "Exited (0) 3 hours
ago", CRI's nothing), and asking costs one request per container. The first cycle on a node with
thousands of dead containers would spend most of its time asking. So the adapter lists each
unknown finish time as a window (`finished_after`, `finished_before`), and the exact time is asked
for only where the window does not settle something that depends on it:

1. the minimum-age rule: the window straddles `now - minimum_age`;
2. the maximum-age rule: the window straddles `now - maximum_age`;
3. the order inside an evict unit (and across units when the global cap trims): the finish time
   breaks ties between dead containers created in the same second;
4. an image's last use, which history takes from its latest-stopping dead container (when no
   live container uses it): the windows that could end after the latest time already known, the
   latest-ending first, a few at a time (`batch`); once those are known the rest usually fall
   behind them;
5. under disk pressure (`under_pressure`, with `containers.remove_under_disk_pressure`): the
   order in which dead containers the caps keep may go, longest stopped first: the windows that
   overlap another candidate's (a window alone, or a known time, orders itself).

With every answer folded in and nothing left to ask, the plan and the history are the same as
with every finish time known (tests/unit/test_finish_times.py holds that as a property).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from nodegc.config import ContainerSettings
from nodegc.model import Container, History, Snapshot
from nodegc.policy.containers import evict_unit
from nodegc.policy.labels import keep_labelled


def finish_times_needed(
    snapshot: Snapshot,
    history: History,
    settings: ContainerSettings,
    now: datetime,
    batch: int | None = 8,
    *,
    under_pressure: bool = False,
) -> list[str]:
    """Ids of the containers whose exact finish time is wanted now (see the module's text);
    `batch` bounds rule 4 per image (None: every candidate); `under_pressure`: the disk is at or
    above the high threshold (rule 5)."""
    need: set[str] = set()
    dead = [c for c in snapshot.containers if c.state.is_dead]
    if all(c.finish_known for c in dead):
        return []  # every rule below names only containers whose finish time is not known
    candidates: list[Container] = []  # dead containers the caps may order
    for c in dead:
        if keep_labelled(c.labels):
            continue
        lo, hi = _window(c)
        boundary = now - settings.minimum_age  # (with 0s too: a window may end after `now`)
        if lo > boundary:
            continue  # too young whatever the exact time
        if hi > boundary:
            need.add(c.id)
            continue
        if settings.maximum_age:
            boundary = now - settings.maximum_age
            if hi < boundary:
                continue  # removed for age whatever the exact time
            if lo < boundary:
                need.add(c.id)
                continue
        candidates.append(c)
    need.update(_ties(candidates, settings))
    need.update(_latest_users(snapshot.containers, dead, history, batch))
    if under_pressure and settings.remove_under_disk_pressure:
        need.update(_overlapping(candidates))
    return sorted(need)


def _overlapping(candidates: list[Container]) -> Iterable[str]:
    """Rule 5: unknown members of each group of windows that overlap one another."""
    spans = sorted(((*_window(c), c) for c in candidates), key=lambda t: (t[0], t[1], t[2].id))
    group: list[Container] = []
    end: datetime | None = None
    for lo, hi, c in [*spans, (None, None, None)]:
        if lo is None or end is None or lo > end:
            if len(group) > 1:
                yield from (m.id for m in group if not m.finish_known)
            group, end = [], None
            if lo is None:
                break
        group.append(c)
        end = hi if end is None or hi > end else end


def with_finish_times(snapshot: Snapshot, found: Mapping[str, datetime | None]) -> Snapshot:
    """The snapshot with the finish times the runtime gave (None: it has none, so the container
    counts as stopped when it was created, as one that never ran)."""
    if not found:
        return snapshot
    containers = tuple(
        replace(c, finished_at=found[c.id], finished_after=None, finished_before=None)
        if c.id in found
        else c
        for c in snapshot.containers
    )
    return replace(snapshot, containers=containers)


def _window(c: Container) -> tuple[datetime, datetime]:
    if c.finish_known:
        return c.stopped_at, c.stopped_at
    return c.finished_after or c.created, c.finished_before


def _ties(candidates: list[Container], settings: ContainerSettings) -> Iterable[str]:
    """Unknown members of groups created in the same second where a cap orders them."""
    groups: dict[tuple[str, datetime], list[Container]] = defaultdict(list)
    if settings.max_per_pod_container >= 0:
        for c in candidates:
            groups[(evict_unit(c), c.created)].append(c)
    if settings.max_dead_containers >= 0 and len(candidates) > settings.max_dead_containers:
        for c in candidates:
            groups[("", c.created)].append(c)
    for members in groups.values():
        if len(members) > 1:
            yield from (c.id for c in members if not c.finish_known)


def _latest_users(
    containers: Iterable[Container],
    dead: list[Container],
    history: History,
    batch: int | None,
) -> Iterable[str]:
    """Rule 4: per image without a live container, the unknown windows that may end after the
    latest stop already known (from history, or from containers whose time is known)."""
    live_images = {c.image_id for c in containers if not c.state.is_dead}
    by_image: dict[str, list[Container]] = defaultdict(list)
    for c in dead:
        if c.image_id not in live_images:
            by_image[c.image_id].append(c)
    for image_id, members in by_image.items():
        record = history.images.get(image_id)
        known = [c.stopped_at for c in members if c.finish_known]
        if record is not None and record.last_used is not None:
            known.append(record.last_used)
        latest = max(known, default=None)
        open_ = [
            c for c in members if not c.finish_known and (latest is None or _window(c)[1] > latest)
        ]
        open_.sort(key=lambda c: _window(c)[1], reverse=True)
        yield from (c.id for c in open_[:batch])
