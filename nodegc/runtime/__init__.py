"""The narrow interface between nodegc and a container runtime.

Only the adapter modules in this package talk to an engine; everything else sees this interface.
Adapters carry data and report what the engine said: they hold no rule about what to remove.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from nodegc.model import (
    BuildCacheRecord,
    Container,
    DiskUsage,
    Image,
    Layer,
    LayerStore,
    RuntimeEvent,
    StorePath,
)


class RuntimeError_(Exception):
    """Base of adapter errors; the message names the object and says what the engine said."""


class RuntimeUnavailable(RuntimeError_):
    """The engine could not be reached or did not answer in time: nothing can be decided."""

    # True when other requests to the engine answered (some after a retry): a flaky engine,
    # not a lost one; the message says how many failed.
    flaky = False


class Conflict(RuntimeError_):
    """The engine refused a removal: the object is in use (running, or used by a container)."""


class NotFound(RuntimeError_):
    """The object no longer exists."""


class Runtime(Protocol):
    """What nodegc needs from a container runtime. Listings are complete or raise."""

    name: str
    # Whether `remove_image` takes an image's names off one at a time (Docker, Podman): a kill
    # part-way leaves an image short of tags, so the collector journals the names first and
    # puts them back with `tag_image`. CRI's RemoveImage is one call, with no way to tag.
    walks_tags: bool
    # Finish times of dead containers (they cannot change while the container stays dead),
    # kept by the adapter and persisted by the caller between processes.
    finish_cache: MutableMapping[str, datetime]

    @property
    def frees_asynchronously(self) -> bool:
        """Whether the runtime gives a removal's space back after the request returns (its
        garbage collector runs later: containerd, Docker's containerd image store): the closed
        loop then lets the disk settle before deciding more is needed."""
        ...

    @property
    def listed_size_cost(self) -> float | None:
        """What a listed image byte costs on the disk, as a first guess that the collector's
        `LayerCost` refines from measurements; None where listed sizes are what the disk holds
        (overlay2, Podman)."""
        ...

    def data_root(self) -> str:
        """The directory holding the runtime's images and containers (for statvfs)."""
        ...

    def filesystems(self) -> Sequence[StorePath]:
        """Where the runtime keeps its images, containers' writable layers, logs and volumes,
        with the role of each directory (statvfs is taken there; one filesystem holding several
        is measured once). The first with the images role is the image filesystem."""
        ...

    @property
    def layer_store(self) -> LayerStore:
        """How the runtime keeps a layer on the disk (what removing it frees)."""
        ...

    def list_images(self) -> Sequence[Image]:
        """Every image, in one listing."""
        ...

    def image_tagged_at(self, image_ids: Sequence[str]) -> Mapping[str, datetime]:
        """When each image was last tagged or pulled, where the runtime knows (evidence that it
        was on the node then). Called only for images history has not seen yet."""
        ...

    def image_layers(self, image_ids: Sequence[str]) -> Mapping[str, tuple[Layer, ...]]:
        """The layers of each image, bottom first: an identity shared by every image that shares
        the layer, and its size (and inode count) where the runtime tells it. An image's layers
        never change: called once per image id (the caller keeps the answer in the state
        directory). Images gone meanwhile are left out; raises like a listing otherwise."""
        ...

    def list_containers(self) -> Sequence[Container]:
        """Every container in every state, in one listing. A dead container's finish time is
        given when cached, else as the window the listing vouches for (`finished_after`,
        `finished_before`)."""
        ...

    def finish_times(self, container_ids: Sequence[str]) -> Mapping[str, datetime | None]:
        """The exact finish time of each of these dead containers (a request each; cached).
        None where the container is gone or the runtime has no time for it."""
        ...

    def disk_usage(self, *, build_cache: bool, container_sizes: bool) -> DiskUsage:
        """The costly questions, in one request: the build cache records (`build_cache`; None
        where the engine has none) and the writable-layer bytes of dead containers
        (`container_sizes`; None where the runtime cannot tell). Asked only under disk
        pressure, for `report`, or for the build cache's maximum age."""
        ...

    def remove_build_cache(self, record: BuildCacheRecord) -> int:
        """Remove exactly this build cache record, never one in use (the engine refuses) nor one
        backing an image layer; the bytes the engine says it reclaimed.

        Raises Conflict when the engine kept it (a build uses it now, or it has children),
        NotFound when the engine has no build cache (any more).
        """
        ...

    def remove_container(self, container: Container) -> None:
        """Remove a dead container with its anonymous volumes; never force a running one.

        Raises Conflict when it is running again, NotFound when it is gone.
        """
        ...

    def remove_image(
        self, image: Image, before_delete: Callable[[], None] | None = None
    ) -> str | None:
        """Remove an image by its id with every tag it still has, never forced, touching no
        other image (a tag that names another image by now is left there).

        `before_delete` runs right before the request that deletes the image (nodegc's own
        record that it asked). Returns a note for the audit about names that were not the
        image's any more (None: nothing to say). Raises Conflict (the image keeps every tag it
        had that no other image took meanwhile) when a container uses it, NotFound when it is
        gone.
        """
        ...

    def inspect_image(self, image_id: str) -> Image | None:
        """The image as it is now (its tags and digests), None when it is gone."""
        ...

    def tag_image(self, image_id: str, reference: str) -> None:
        """Give the image the name `reference` ("repo:tag") back (only where `walks_tags`)."""
        ...

    def ping(self) -> None:
        """Raise RuntimeUnavailable unless the engine answers."""
        ...

    def events(self, since: datetime | None = None) -> Iterator[RuntimeEvent]:
        """Container lifecycle and image events as they happen (from `since` when the engine
        still has them). Blocks; ends or raises RuntimeUnavailable when the stream breaks."""
        ...

    def stop_events(self) -> None:
        """Make a blocked `events()` return, from another thread."""
        ...

    def past_events(self, until: datetime) -> Sequence[RuntimeEvent]:
        """What the engine still remembers of events up to `until` (one bounded request; empty
        where it keeps none): evidence of use when history was lost."""
        ...

    def close(self) -> None: ...


def connect(
    runtime_type: str,
    endpoint: str,
    timeout: timedelta,
    finish_cache: MutableMapping[str, datetime] | None = None,
    *,
    sandbox_image: str = "",
) -> Runtime:
    """The adapter for `runtime_type`; the engine is not contacted until first used.

    `sandbox_image` (CRI only): the runtime's pause image, when the runtime does not say.
    """
    if runtime_type == "docker":
        from nodegc.runtime.docker import DockerRuntime

        return DockerRuntime(endpoint, timeout, finish_cache)
    if runtime_type == "cri":
        from nodegc.runtime.cri import CriRuntime

        return CriRuntime(endpoint, timeout, finish_cache, sandbox_image=sandbox_image)
    raise ValueError(f"runtime.type = {runtime_type!r}: unknown; supported: docker, cri")


__all__ = [
    "Conflict",
    "NotFound",
    "Runtime",
    "RuntimeError_",
    "RuntimeUnavailable",
    "connect",
]
