"""The Docker Engine adapter (`DockerRuntime`): observation and removal over the engine's API.

One listing call per kind of object per observation. An exited container's finish time is not in
the listing: it is listed as the window its Status text gives ("Exited (0) 5 minutes ago"), and
fetched (`finish_times`, an inspect) only for the containers policy.finish_times names, then
cached (it cannot change while the container stays dead; the Status text cross-checks the cache,
so a container that restarted and died again is looked up anew).

Podman's Docker-compatible service is served by the same adapter (its differences: `podman.py`);
the requests themselves are `transport.py`'s, the events `events.py`'s, the decoding of the
answers `decoding.py`'s and the walk of an image's tags `tags.py`'s.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from nodegc.model import (
    ALL_ROLES,
    BuildCacheRecord,
    Container,
    ContainerState,
    DiskUsage,
    Image,
    Layer,
    LayerStore,
    StorePath,
    short_id,
)
from nodegc.runtime import Conflict, NotFound, RuntimeError_, RuntimeUnavailable
from nodegc.runtime.containerd_store import (
    containerd_address,
    containerd_store_paths,
    is_containerd_store,
    store_roots,
)
from nodegc.runtime.docker import tags as docker_tags
from nodegc.runtime.docker.decoding import (
    RECORD_ID,
    build_cache_records,
    cache_agrees,
    container_rows,
    decode_container,
    decode_image,
    decode_state,
    docker_layers,
    finish_time,
    finish_window,
    is_id,
    parse_time,
    row_created,
    writable_sizes,
)
from nodegc.runtime.docker.events import EngineEvents
from nodegc.runtime.docker.podman import (
    normalise_row,
    podman_aliases,
    podman_image_id,
    podman_version_answer,
)
from nodegc.runtime.docker.transport import quote
from nodegc.runtime.layers import chain_ids

log = logging.getLogger("nodegc.runtime.docker")


class DockerRuntime(EngineEvents):
    """A Runtime over the Docker Engine API (low-level APIClient)."""

    name = "docker"
    walks_tags = True

    def __init__(
        self,
        endpoint: str,
        timeout: timedelta,
        finish_cache: MutableMapping[str, datetime] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(endpoint, timeout)
        self._data_root: str | None = None
        # From `/info`: the containerd image store, containerd's address and the snapshotter;
        # and where the engine keeps what (`filesystems`).
        self._containerd_store = False
        self._store_info = ("", "overlayfs")
        self._paths: list[StorePath] | None = None
        self._clock = clock
        # Container id -> finish time, for containers seen dead; shared with the caller to persist.
        self.finish_cache: MutableMapping[str, datetime] = (
            finish_cache if finish_cache is not None else {}
        )
        # False once the engine showed it has no build cache (no BuildKit: Podman's /build/prune
        # is 404): then it is never asked about one again.
        self.has_build_cache = True
        # Inspects `image_layers` made since the last listing, which `image_tagged_at` reuses:
        # a new image costs one inspect and one history request, whatever is asked of it.
        # Only the tag time is kept (a whole inspect per image would raise the peak RSS).
        self._inspected: dict[str, datetime | None] = {}
        # Layer (chain id) -> size, from the histories read: an image made only of layers seen
        # already needs no history request.
        self._layer_sizes: dict[str, int | None] = {}

    def version(self) -> dict[str, Any]:
        """The engine's `/version`; Podman's from the headers of the `/_ping` made on connecting
        (`podman.podman_version_answer`: the same version, without the seconds Podman takes to
        answer `/version`: it runs conmon and the OCI runtime to print theirs)."""
        if self.podman:
            answer = podman_version_answer(self._libpod_version, self.api_version)
            if answer is not None:
                return answer
        data = self._get_json("version", "/version", "/version", {})
        return data if isinstance(data, dict) else {}

    # -- observation ------------------------------------------------------------------------
    def data_root(self) -> str:
        if self._data_root is None:
            info = self._get_json("info", "/info", "/info", {})
            info = info if isinstance(info, dict) else {}
            self._data_root = str(info.get("DockerRootDir") or "/var/lib/docker")
            self._containerd_store = is_containerd_store(info)
            self._store_info = (containerd_address(info), str(info.get("Driver") or "overlayfs"))
        return self._data_root

    def layer_store_driver(self) -> str:
        """The graph driver keeping the layers (`/info` Driver: overlay2, ...); "" with the
        containerd image store (its snapshotter keeps them: `filesystems`)."""
        self.data_root()
        return "" if self._containerd_store else self._store_info[1]

    @property
    def layer_store(self) -> LayerStore:
        """overlay2 (and Podman): one copy per layer; the containerd image store: blob and
        snapshot (learnt from `/info`, asked once)."""
        self.data_root()
        return LayerStore.CONTENT_AND_SNAPSHOT if self._containerd_store else LayerStore.ONE_COPY

    @property
    def frees_asynchronously(self) -> bool:
        """With the containerd image store, containerd's garbage collector gives a removed
        record's or image's snapshots back after the request returns: the closed loop waits for
        the disk to settle. overlay2 and Podman free before they answer."""
        self.data_root()
        return bool(self._containerd_store)

    # Listed sizes are what the disk holds (overlay2, Podman; the containerd image store's
    # layers are sized from its snapshots by `image_layers`): no cost factor to learn.
    listed_size_cost: float | None = None

    def filesystems(self) -> Sequence[StorePath]:
        """Where the engine keeps what: everything under `DockerRootDir` (overlay2, Podman's
        graphroot); with the containerd image store, containerd's snapshotter and content roots
        (asked of containerd, `containerd_store`) and `DockerRootDir` for logs and volumes.
        Asked once (the answer does not change while the engine runs)."""
        if self._paths is None:
            root = self.data_root()
            if not self._containerd_store:
                self._paths = [StorePath(root, ALL_ROLES, "/info DockerRootDir")]
            else:
                address, snapshotter = self._store_info
                roots = store_roots(address, snapshotter, root)
                self._paths = containerd_store_paths(roots, root)
        return self._paths

    def list_images(self) -> Sequence[Image]:
        self._inspected.clear()
        self._podman_tags = None  # a new observation: Podman's event log is read anew
        rows = self._get_json("list images", "/images/json", "/images/json", {})
        if not isinstance(rows, list):
            raise RuntimeError_("list images: engine answered no list")
        images = [decode_image(row) for row in rows]
        if self.podman:
            images = [replace(i, aliases=podman_aliases(i.references)) for i in images]
        return images

    def image_layers(self, image_ids: Sequence[str]) -> dict[str, tuple[Layer, ...]]:
        """Each image's layers: identities are the chain ids of its diff ids (`RootFS.Layers`,
        bottom first: two images share the layers of their common prefix), sizes the `Size` of
        the history steps that made a layer. Two requests per image (one when every layer was
        seen already in this process: no history then), asked once per image id."""

        def one(image_id: str) -> tuple[str, tuple[Layer, ...] | None]:
            what = f"inspect image {short_id(image_id)}"
            try:
                data = self._inspect(
                    what,
                    f"/images/{quote(image_id)}/json",
                    lambda: self.api.inspect_image(image_id),
                )
                diff_ids = [str(d) for d in ((data.get("RootFS") or {}).get("Layers") or [])]
                keys = chain_ids(diff_ids)
                if keys and all(key in self._layer_sizes for key in keys):
                    # Every layer seen already (a re-tag, a config change): no history needed.
                    self._inspected[image_id] = parse_time(
                        (data.get("Metadata") or {}).get("LastTagTime")
                    )
                    sizes = self._layer_sizes
                    return image_id, tuple(Layer(k, sizes[k], None) for k in keys)
                steps = self._inspect_any(
                    f"image history {short_id(image_id)}",
                    f"/images/{quote(image_id)}/history",
                    lambda: self.api.history(image_id),
                )
            except NotFound:
                return image_id, None
            self._inspected[image_id] = parse_time((data.get("Metadata") or {}).get("LastTagTime"))
            layers = docker_layers(diff_ids, steps if isinstance(steps, list) else [])
            self._layer_sizes.update((layer.key, layer.size_bytes) for layer in layers)
            return image_id, layers

        found = self._map(one, image_ids)
        return {image_id: layers for image_id, layers in found if layers is not None}

    def image_tagged_at(self, image_ids: Sequence[str]) -> dict[str, datetime]:
        """When each image was last tagged (a pull or a tag), where the engine knows: one inspect
        per image, so call it only for images history has not seen yet. Podman keeps no tag time
        (its LastTagTime is always zero): its event log says when images were pulled or tagged
        (one request for all)."""
        if self.podman:
            return self._podman_tagged_at(image_ids)

        def one(image_id: str) -> tuple[str, datetime | None]:
            if image_id in self._inspected:
                return image_id, self._inspected.pop(image_id)
            try:
                data = self._inspect(
                    f"inspect image {image_id}",
                    f"/images/{quote(image_id)}/json",
                    lambda: self.api.inspect_image(image_id),
                )
            except NotFound:
                return image_id, None
            return image_id, parse_time((data.get("Metadata") or {}).get("LastTagTime"))

        found = self._map(one, image_ids)
        return {image_id: when for image_id, when in found if when is not None}

    def list_containers(self) -> Sequence[Container]:
        """One listing. A dead container's finish time comes from the cache, else as the window
        its Status text gives; `finish_times` asks for the exact ones a decision needs."""
        rows = self._get_json(
            "list containers", "/containers/json?all=1", "/containers/json", {"all": 1},
            container_rows,
        )  # fmt: skip
        if not isinstance(rows, list):
            raise RuntimeError_("list containers: engine answered no list")
        now = self._clock()
        containers: list[Container] = []
        for row in rows:
            state, created = decode_state(row.get("State")), row_created(row)
            if not state.is_dead or state is ContainerState.CREATED:
                self.finish_cache.pop(row["Id"], None)
                containers.append(decode_container(row, state=state, created=created))
                continue
            status = row.get("Status", "")
            cached = self.finish_cache.get(row["Id"])
            if cached is not None and cache_agrees(cached, status, now):
                finished = (cached, None, None)
            else:
                self.finish_cache.pop(row["Id"], None)  # restarted and died again
                finished = (None, *finish_window(status, created, now))
            containers.append(decode_container(row, finished, state, created))
        live_ids = {c.id for c in containers}
        for gone in set(self.finish_cache) - live_ids:
            del self.finish_cache[gone]
        self._container_image = {c.id: c.image_id for c in containers}
        return containers

    def finish_times(self, container_ids: Sequence[str]) -> dict[str, datetime | None]:
        """The exact finish time of each dead container (one inspect each, in parallel; cached:
        it cannot change while the container stays dead). None: gone, or the engine has none."""
        found = dict(self._map(self._finished_at, container_ids))
        for container_id, finished in found.items():
            if finished is not None:
                self.finish_cache[container_id] = finished
        return found

    def _finished_at(self, container_id: str) -> tuple[str, datetime | None]:
        try:
            data = self._inspect(
                f"inspect container {short_id(container_id)}",
                f"/containers/{quote(container_id)}/json",
                lambda: self.api.inspect_container(container_id),
            )
        except NotFound:
            return container_id, None
        finished = finish_time(data.get("State") or {})
        if finished is not None:  # kept at once: a batch cut short keeps what it learnt
            self.finish_cache[container_id] = finished
        return container_id, finished

    def ping(self) -> None:
        if self._plain is not None:
            self._plain_request("ping", "GET", "/_ping")
        else:
            self._call("ping", lambda: self.api.ping(), read=True)

    # -- disk usage: the build cache and writable layers (asked only under pressure) --------
    def disk_usage(self, *, build_cache: bool, container_sizes: bool) -> DiskUsage:
        """One request. With `build_cache`: `/system/df` (the build cache records and, in the same
        answer, every container's `SizeRw`; `type=` keeps newer engines from computing the rest).
        Without: the containers' listing with sizes, of dead containers only (the engine walks
        each writable layer it sizes, so the running ones are not asked about)."""
        build_cache = build_cache and self.has_build_cache
        if (build_cache or container_sizes) and self.podman:
            # No BuildKit (silent about it), and sizes left to the closed loop's measurements.
            self.has_build_cache = build_cache = container_sizes = False
        if not build_cache and not container_sizes:
            return DiskUsage()
        if build_cache:
            types = ["build-cache", *(["container"] if container_sizes else [])]
            query = urllib.parse.urlencode([("type", t) for t in types])
            data = self._get_json(
                "disk usage", f"/system/df?{query}", "/system/df", {"type": types}
            )
            if not isinstance(data, dict):
                raise RuntimeError_("disk usage: engine answered no object")
            records = build_cache_records(data)
            if records is None:
                self.has_build_cache = False
                log.info("the engine has no build cache (no BuildKit): build cache GC is off")
            sizes = writable_sizes(data.get("Containers")) if container_sizes else None
            if container_sizes and sizes is None:
                sizes = self._dead_container_sizes()
            return DiskUsage(build_cache=records, container_sizes=sizes)
        return DiskUsage(container_sizes=self._dead_container_sizes())

    def _dead_container_sizes(self) -> dict[str, int]:
        filters = json.dumps({"status": ["created", "exited", "dead"]})
        query = urllib.parse.urlencode({"all": "1", "size": "1", "filters": filters})
        rows = self._get_json(
            "list containers with sizes",
            f"/containers/json?{query}",
            "/containers/json",
            {"all": 1, "size": 1, "filters": filters},
        )
        return writable_sizes(rows) or {}

    def remove_build_cache(self, record: BuildCacheRecord) -> int:
        """`POST /build/prune` with `filters={"id":[record id]}`: the engine removes that record
        only, and never while a build uses it (nor a shared one: `all` is not given). The engine
        takes one id per request and matches it as a pattern, so only plain ids are sent."""
        what = f"remove build cache {record.id} ({record.describe()})"
        if not RECORD_ID.match(record.id):
            raise RuntimeError_(f"{what}: not a build cache record id; not sent to the engine")
        if not self.has_build_cache:
            raise NotFound(f"{what}: the engine has no build cache")
        filters = json.dumps({"id": [record.id]})
        try:
            if self._plain is not None:
                path = "/build/prune?" + urllib.parse.urlencode({"filters": filters})
                answer = self._plain_json(what, "POST", path)
            else:
                answer = self._call(
                    what,
                    lambda: self.api._result(
                        self.api._post(self.api._url("/build/prune"), params={"filters": filters}),
                        True,
                    ),
                )
        except NotFound:
            self.has_build_cache = False  # Podman: no /build/prune
            raise
        deleted = list((answer or {}).get("CachesDeleted") or [])
        others = [d for d in deleted if d != record.id]
        if others:
            log.warning(
                "the engine pruned other build cache records than the one asked for",
                extra={"record": record.id, "deleted": others},
            )
        if record.id not in deleted:
            raise Conflict(
                f"{what}: the engine kept it (a build uses it now, it has children, or it is gone)"
            )
        return int((answer or {}).get("SpaceReclaimed") or 0)

    # -- removal ----------------------------------------------------------------------------
    def remove_container(self, container: Container) -> None:
        what = f"remove container {short_id(container.id)} ({container.name})"
        # Never forced: the engine refuses a running container with 409, which is what we want.
        try:
            if self._plain is not None:
                path = f"/containers/{quote(container.id)}?v=True&link=False&force=False"
                self._plain_request(what, "DELETE", path)
            else:
                self._call(
                    what, lambda: self.api.remove_container(container.id, v=True, force=False)
                )
        except RuntimeUnavailable:
            # The answer was lost (a connection reset, cut short): never sent again; a look
            # (a read, retried) says whether the engine carried it out.
            if not self._gone(container):
                raise
            log.info(
                "the answer to a container removal was lost; the container is gone",
                extra={"container": container.id, "container_name": container.name},
            )
        self.finish_cache.pop(container.id, None)

    def _gone(self, container: Container) -> bool:
        """Whether the engine says the container no longer exists (False when it cannot say)."""
        try:
            self._inspect(
                f"inspect container {short_id(container.id)}",
                f"/containers/{quote(container.id)}/json",
                lambda: self.api.inspect_container(container.id),
            )
        except NotFound:
            return True
        except RuntimeError_:
            return False
        return False

    def remove_image(
        self, image: Image, before_delete: Callable[[], None] | None = None
    ) -> str | None:
        """Remove the planned image by its id with every tag it still has, never forced, never
        touching another image (`docker_tags`): a tag that moved to another image meanwhile is
        left there. `before_delete` runs right before the request that deletes it. Returns the
        audit's note on tags that were not the image's any more (None: nothing to say)."""
        walk = docker_tags.remove(
            image,
            inspect=self._inspect_reference,
            delete=lambda ref, by_id: self._delete_image(
                f"remove image {short_id(image.id)} ({image.describe()})", ref
            ),
            tag=self.tag_image,
            untag=self._podman_untag if self._podman and self._plain is not None else None,
            tagged_since=None if self._podman else self._tagged_since,
            before_delete=before_delete,
        )
        return walk.note() or None

    def _tagged_since(self, reference: str, since: float) -> str | None:
        """The image the engine's last `tag` event naming `reference` since `since` was about
        (a bounded `GET /events`, answered at once); None when none (or not on a unix socket)."""
        if self._plain is None:
            return None
        query = docker_tags.tag_events_query(since, datetime.now(UTC).timestamp())
        body = self._plain_request(f"events for tag {reference}", "GET", f"/events?{query}")
        return docker_tags.last_tagged(body, reference)

    def _podman_untag(self, image_id: str, reference: str) -> bool:
        """Podman's `POST /libpod/images/{id}/untag` (also under the compat version prefix, on
        4.3 and 5.8): takes `reference` off that image only; False ("tag not known") when it is
        not that image's."""
        what = f"untag {reference} from image {short_id(image_id)}"
        path = f"/libpod/images/{quote(image_id)}/untag?{docker_tags.untag_query(reference)}"
        try:
            self._plain_request(what, "POST", path)
        except RuntimeError_ as exc:
            if "tag not known" in str(exc) and not isinstance(exc, RuntimeUnavailable):
                return False
            raise
        return True

    def _delete_image(self, what: str, reference: str) -> Any:
        """One unforced DELETE of an image reference (a tag, a digest or the id): the engine's
        rows of what it untagged and deleted. Docker is asked `noprune=1` (never an untagged
        parent: only what was planned goes); Podman, which has no parents to prune, as before."""
        noprune = "False" if self._podman else "True"
        if self._plain is None:
            rows = self._call(
                what,
                lambda: self.api.remove_image(reference, force=False, noprune=not self._podman),
            )
        else:
            path = f"/images/{quote(reference)}?force=False&noprune={noprune}"
            rows = self._plain_json(what, "DELETE", path)
        if self._podman and isinstance(rows, list):
            rows = [normalise_row(row) for row in rows]
        return rows

    def inspect_image(self, image_id: str) -> Image | None:
        try:
            return self._inspect_reference(image_id)
        except NotFound:
            return None

    def _inspect_reference(self, reference: str) -> Image | None:
        """The image `reference` (an id, a tag, a digest) names now; raises NotFound."""
        data = self._inspect(
            f"inspect image {short_id(reference) if is_id(reference) else reference}",
            f"/images/{quote(reference)}/json",
            lambda: self.api.inspect_image(reference),
        )
        image = decode_image(data)
        return replace(image, id=podman_image_id(image.id)) if self._podman else image

    def tag_image(self, image_id: str, reference: str) -> None:
        repository = docker_tags.repository(reference)
        name = reference[len(repository) + 1 :] or "latest"
        what = f"restore tag {reference} on {short_id(image_id)}"
        if self._plain is not None:  # the SDK's `tag` request, never forced
            query = urllib.parse.urlencode({"tag": name, "repo": repository, "force": 0})
            self._plain_request(what, "POST", f"/images/{quote(image_id)}/tag?{query}")
        else:
            self._call(what, lambda: self.api.tag(image_id, repository, name))
