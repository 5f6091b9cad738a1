"""A stateful in-memory runtime implementing the same interface as the real adapters.

Its removals really remove, with the engine's refusals: a running container, an image that a
container references or an image other images were built on (their `parent_id`) is refused with
Conflict; a missing object raises NotFound. Images are made of layers that images share (an
image added without layers is one layer of its size that nothing shares); `measure` is its disk:
capacity, what else uses it, and every layer some remaining image holds, counted once, so a
removal frees a layer only when no other image holds it. Tests use it for the policy and the
cycle; claims about Docker itself are tested against a real engine.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from nodegc.model import (
    ALL_ROLES,
    BuildCacheRecord,
    Container,
    ContainerState,
    DiskUsage,
    FilesystemStats,
    Image,
    Layer,
    LayerStore,
    RuntimeEvent,
    StorePath,
)
from nodegc.runtime import Conflict, NotFound, RuntimeUnavailable


class FakeRuntime:
    name = "fake"
    walks_tags = True
    # Frees before a removal returns, and lists what the disk holds (as overlay2).
    frees_asynchronously = False
    listed_size_cost: float | None = None

    def __init__(
        self,
        data_root: str = "/",
        *,
        capacity_bytes: int = 1000,
        inodes_total: int = 1_000_000,
    ) -> None:
        self.images: dict[str, Image] = {}
        # Image id -> its layers, bottom first (keys shared between images that share a layer).
        self.layers: dict[str, tuple[Layer, ...]] = {}
        # The disk `measure` models: capacity, and what other things use of it.
        self.capacity_bytes = capacity_bytes
        self.other_used_bytes = 0
        self.inodes_total = inodes_total
        self.other_used_inodes = 0
        # What `image_layers` tells: Docker tells sizes but not inodes, CRI tells neither.
        self.tells_layer_sizes = True
        self.tells_layer_inodes = True
        self.containers: dict[str, Container] = {}
        self.tagged_at: dict[str, datetime] = {}
        self.finish_cache: dict[str, datetime] = {}
        self._data_root = data_root
        # Where the runtime says it keeps what (None: all under the data root), and how it
        # keeps a layer.
        self.paths: list[StorePath] | None = None
        self.layer_store = LayerStore.ONE_COPY
        self.calls: list[str] = []
        # Set to make the next calls fail (fault injection); a callable runs before each removal.
        self.unavailable = False
        self.fail_removal: dict[str, Exception] = {}
        self.before_remove: Callable[[str], None] | None = None
        # Runs before each tag is taken off an image (a tag walk, as Docker's); may raise.
        self.before_untag: Callable[[str, str], None] | None = None
        self.event_queue: queue.Queue[RuntimeEvent | None] = queue.Queue()
        self.past: list[RuntimeEvent] = []  # what `past_events` answers
        # Set to list dead containers as the engines do, with a window around their finish time
        # ([finish - window, finish + window], never before creation) instead of the exact time,
        # which `finish_times` then gives (and counts, in `finish_times_asked`).
        self.finish_window: timedelta | None = None
        self.finish_times_asked: list[str] = []
        # BuildKit's build cache (None: an engine without one, as Podman or CRI), the images a
        # shared record backs (it becomes unshared when the last of them goes), and the bytes
        # of each dead container's writable layer (None: a runtime that cannot tell).
        self.build_cache: dict[str, BuildCacheRecord] | None = {}
        self.record_layers: dict[str, tuple[Layer, ...]] = {}
        self.container_sizes: dict[str, int] | None = {}
        self.disk_usage_asked: list[tuple[bool, bool]] = []

    # -- building the inventory ---------------------------------------------------------------
    def add_image(
        self,
        image: Image,
        tagged_at: datetime | None = None,
        layers: Sequence[Layer] | None = None,
    ) -> Image:
        """Add an image; with `layers`, listed with their total size, as the engines list it."""
        if layers:
            image = replace(image, size_bytes=sum(layer.size_bytes or 0 for layer in layers))
            self.layers[image.id] = tuple(layers)
        else:
            self.layers[image.id] = (Layer(key=image.id, size_bytes=image.size_bytes, inodes=0),)
        self.images[image.id] = image
        if tagged_at is not None:
            self.tagged_at[image.id] = tagged_at
        return image

    # -- the disk -----------------------------------------------------------------------------
    def held(self) -> tuple[int, int]:
        """Bytes and inodes of every layer a remaining image or build cache record holds, each
        layer once, plus the writable layers of the containers there."""
        seen: dict[str, Layer] = {}
        for image_id in list(self.images):
            for layer in self.layers.get(image_id, ()):
                seen.setdefault(layer.key, layer)
        for record_id in self.build_cache or {}:
            for layer in self.record_layers.get(record_id, ()):
                seen.setdefault(layer.key, layer)
        return (
            sum(layer.size_bytes or 0 for layer in seen.values()) + self.writable_bytes(),
            sum(layer.inodes or 0 for layer in seen.values()),
        )

    def measure(self, path: str) -> FilesystemStats:
        """The disk as statvfs would show it now (a Collector's `measure`)."""
        used, inodes = self.held()
        return FilesystemStats(
            path=path,
            capacity_bytes=self.capacity_bytes,
            available_bytes=max(0, self.capacity_bytes - self.other_used_bytes - used),
            inodes_total=self.inodes_total,
            inodes_free=max(0, self.inodes_total - self.other_used_inodes - inodes),
        )

    def add_container(self, container: Container) -> Container:
        self.containers[container.id] = container
        return container

    def add_record(self, record: BuildCacheRecord, holds: Sequence[Layer] = ()) -> BuildCacheRecord:
        """A build cache record on the disk: its own bytes (`size_bytes`), or with `holds` the
        image layers its snapshot is (it is listed shared while an image holds one of them)."""
        assert self.build_cache is not None, "this fake engine has no build cache"
        self.record_layers[record.id] = tuple(holds) or (
            Layer(key=f"cache:{record.id}", size_bytes=record.size_bytes, inodes=0),
        )
        self.build_cache[record.id] = record
        self._share()
        return record

    def _share(self) -> None:
        """Each record listed shared exactly while an image holds one of its layers."""
        if not self.build_cache:
            return
        image_keys = {layer.key for i in list(self.images) for layer in self.layers.get(i, ())}
        for record_id, record in list((self.build_cache or {}).items()):
            shared = any(layer.key in image_keys for layer in self.record_layers[record_id])
            if record.shared != shared:
                self.build_cache[record_id] = replace(record, shared=shared)  # type: ignore[index]

    def set_state(self, container_id: str, state: ContainerState) -> None:
        self.containers[container_id] = replace(self.containers[container_id], state=state)

    # -- the Runtime interface ----------------------------------------------------------------
    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.unavailable:
            raise RuntimeUnavailable(f"{name}: fake engine unavailable")

    def data_root(self) -> str:
        self._call("data_root")
        return self._data_root

    def filesystems(self) -> Sequence[StorePath]:
        """`paths` when a test sets them, else everything under the data root."""
        self._call("filesystems")
        return self.paths or [StorePath(self._data_root, ALL_ROLES, "fake")]

    def list_images(self) -> Sequence[Image]:
        self._call("list_images")
        return list(self.images.values())

    def image_tagged_at(self, image_ids: Sequence[str]) -> Mapping[str, datetime]:
        self._call("image_tagged_at")
        return {i: self.tagged_at[i] for i in image_ids if i in self.tagged_at}

    def image_layers(self, image_ids: Sequence[str]) -> Mapping[str, tuple[Layer, ...]]:
        self._call("image_layers")
        found: dict[str, tuple[Layer, ...]] = {}
        for image_id in image_ids:
            if image_id not in self.images:
                continue
            found[image_id] = tuple(
                Layer(
                    layer.key,
                    layer.size_bytes if self.tells_layer_sizes else None,
                    layer.inodes if self.tells_layer_inodes else None,
                )
                for layer in self.layers.get(image_id, ())
            )
        return found

    def list_containers(self) -> Sequence[Container]:
        self._call("list_containers")
        return [self._listed(c) for c in self.containers.values()]

    def _listed(self, c: Container) -> Container:
        if self.finish_window is None or c.finished_at is None or c.id in self.finish_cache:
            return c
        return replace(
            c,
            finished_at=None,
            finished_after=max(c.created, c.finished_at - self.finish_window),
            finished_before=c.finished_at + self.finish_window,
        )

    def finish_times(self, container_ids: Sequence[str]) -> Mapping[str, datetime | None]:
        self._call("finish_times")
        self.finish_times_asked.extend(container_ids)
        found: dict[str, datetime | None] = {}
        for container_id in container_ids:
            c = self.containers.get(container_id)
            found[container_id] = c.finished_at if c is not None else None
            if c is not None and c.finished_at is not None:
                self.finish_cache[container_id] = c.finished_at
        return found

    def disk_usage(self, *, build_cache: bool, container_sizes: bool) -> DiskUsage:
        if not build_cache and not container_sizes:
            return DiskUsage()
        self._call("disk_usage")
        self.disk_usage_asked.append((build_cache, container_sizes))
        records = None
        if build_cache and self.build_cache is not None:
            records = tuple(self.build_cache.values())
        sizes = None
        if container_sizes and self.container_sizes is not None:
            sizes = {
                c.id: self.container_sizes.get(c.id, 0)
                for c in self.containers.values()
                if c.state.is_dead
            }
        return DiskUsage(build_cache=records, container_sizes=sizes)

    def remove_build_cache(self, record: BuildCacheRecord) -> int:
        self._call(f"remove_build_cache {record.id}")
        self._before(record.id)
        if self.build_cache is None:
            raise NotFound(f"build cache {record.id}: the engine has no build cache")
        current = self.build_cache.get(record.id)
        children = [r for r in self.build_cache.values() if r.parent == record.id]
        if current is None or current.in_use or current.shared or children:
            raise Conflict(f"build cache {record.id}: the engine kept it")
        del self.build_cache[record.id]
        del self.record_layers[record.id]
        return current.size_bytes

    def writable_bytes(self) -> int:
        """Bytes the fake's dead and live containers hold in their writable layers."""
        sizes = self.container_sizes or {}
        return sum(sizes.get(c, 0) for c in self.containers)

    def remove_container(self, container: Container) -> None:
        self._call(f"remove_container {container.id}")
        self._before(container.id)
        current = self.containers.get(container.id)
        if current is None:
            raise NotFound(f"container {container.id} ({container.name}): no such container")
        if not current.state.is_dead:
            raise Conflict(f"container {container.id} ({container.name}): it is {current.state}")
        del self.containers[container.id]

    def remove_image(
        self, image: Image, before_delete: Callable[[], None] | None = None
    ) -> str | None:
        self._call(f"remove_image {image.id}")
        self._before(image.id)
        if image.id not in self.images:
            raise NotFound(f"image {image.id}: no such image")
        users = [c for c in list(self.containers.values()) if c.image_id == image.id]
        if users:
            raise Conflict(f"image {image.id}: in use by container {users[0].id}")
        # (a copy first: removals run in several threads)
        children = [i for i in list(self.images.values()) if i.parent_id == image.id]
        if children:
            raise Conflict(f"image {image.id}: image has dependent child images ({children[0].id})")
        for tag in image.tags:  # one name at a time, as Docker's walk
            if self.before_untag is not None:
                self.before_untag(image.id, tag)
            current = self.images[image.id]
            self.images[image.id] = replace(
                current, tags=tuple(t for t in current.tags if t != tag)
            )
        if before_delete is not None:
            before_delete()
        del self.images[image.id]
        self._share()
        return None

    def inspect_image(self, image_id: str) -> Image | None:
        self._call(f"inspect_image {image_id}")
        if image_id in self.images:
            return self.images[image_id]
        return next((i for i in self.images.values() if image_id in i.tags), None)

    def tag_image(self, image_id: str, reference: str) -> None:
        self._call(f"tag_image {image_id} {reference}")
        if image_id not in self.images:
            raise NotFound(f"image {image_id}: no such image")
        for other in self.images.values():  # a name names one image: tagging moves it
            if reference in other.tags and other.id != image_id:
                self.images[other.id] = replace(
                    other, tags=tuple(t for t in other.tags if t != reference)
                )
        current = self.images[image_id]
        if reference not in current.tags:
            self.images[image_id] = replace(current, tags=(*current.tags, reference))

    def _before(self, object_id: str) -> None:
        if self.before_remove is not None:
            self.before_remove(object_id)
        if object_id in self.fail_removal:
            raise self.fail_removal[object_id]

    def ping(self) -> None:
        self._call("ping")

    def events(self, since: datetime | None = None) -> Iterator[RuntimeEvent]:
        """Yields what tests put in `event_queue`; `None` in the queue ends the stream."""
        self._call("events")
        while True:
            event = self.event_queue.get()
            if event is None or self.unavailable:
                return
            yield event

    def stop_events(self) -> None:
        self.event_queue.put(None)

    def past_events(self, until: datetime) -> list[RuntimeEvent]:
        """What tests put in `past` (the engine's memory of events), up to `until`."""
        self._call("past_events")
        return [e for e in self.past if e.time <= until]

    def close(self) -> None:
        self.calls.append("close")
