"""The Docker Engine adapter: the only module that imports `docker`.

One listing call per kind of object per observation. An exited container's finish time is not in
the listing: it is listed as the window its Status text gives ("Exited (0) 5 minutes ago"), and
fetched (`finish_times`, an inspect) only for the containers policy.finish_times names, then
cached (it cannot change while the container stays dead; the Status text cross-checks the cache,
so a container that restarted and died again is looked up anew).

Podman's Docker-compatible service (`podman system service`) is served by the same adapter; it is
recognised once, from the `/_ping` the adapter connects with on a unix socket (else from
`/version`), and its differences are handled here (see docs/podman.md): its
own event names, image ids without `sha256:`, 500 answers meaning what Docker's 409 mean, no
`LastTagTime`, local images listed as `localhost/NAME:TAG`, `FinishedAt` before `StartedAt`.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import select
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.transport import UnixHTTPAdapter

from nodegc.model import (
    ALL_ROLES,
    BuildCacheRecord,
    Container,
    ContainerState,
    DiskUsage,
    Image,
    Layer,
    LayerStore,
    RuntimeEvent,
    StorePath,
    short_id,
)
from nodegc.runtime import Conflict, NotFound, RuntimeError_, RuntimeUnavailable, docker_tags
from nodegc.runtime.containerd_store import (
    containerd_address,
    containerd_store_paths,
    is_containerd_store,
    store_roots,
)
from nodegc.runtime.layers import chain_ids
from nodegc.runtime.retry import TransportStats, retried

log = logging.getLogger(__name__)

T = TypeVar("T")
# Events that tell about use and arrival; exec and health-check events are filtered out by the
# engine itself so that they cost nothing (docuum #371).
_CONTAINER_ACTIONS = ("create", "start", "die", "destroy")
_IMAGE_ACTIONS = ("pull", "load", "tag", "untag", "delete", "import")
# Podman's names for the same events: its `event` filter knows only these (`die`, `destroy`,
# `delete` and `load` never match), and its stream says `die` and `delete` but `remove` for a
# container and `loadfromarchive` (with no id) for a load.
_PODMAN_FILTER = ("create", "start", "died", "remove", "pull", "loadfromarchive", "tag", "untag",
                  "import")  # fmt: skip
_PODMAN_ACTIONS = {
    ("container", "died"): "die",
    ("container", "remove"): "destroy",
    ("image", "remove"): "delete",
    ("image", "loadfromarchive"): "load",
}
# Image events that say when an image was tagged or pulled (Podman's LastTagTime is always zero).
_PODMAN_TAG_EVENTS = ("pull", "tag", "import")
_HEX_ID = re.compile(r"^[0-9a-f]{64}$")
_INSPECT_POOL = 8
# Connections kept to the engine: enough for the widest removal pool (runtime settings allow 64)
# plus the inspect pool, so none is ever opened and thrown away for want of room.
_CONNECTIONS = 64 + _INSPECT_POOL


def parse_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 with nanoseconds (or the zero time) to an aware datetime."""
    if not value or value.startswith("0001-01-01"):
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return None
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(f"{m.group(1)}{frac}{zone}").astimezone(UTC)


_HUMAN = re.compile(
    r"^(?:Exited \(-?\d+\)|Created|Dead)?\s*(?P<n>Less than a|About an?|\d+)\s+"
    r"(?P<unit>second|minute|hour|day|week|month|year)s?\s+ago",
)
_UNIT_SECONDS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
# Slack on each side of a window read from a listing's Status: the listing is answered a moment
# after the engine wrote the text, and sub-second rounding.
_WINDOW_SLACK = timedelta(seconds=2)


def status_age(status: str) -> float | None:
    """The coarse age in seconds in a listing's Status ("Exited (0) 3 hours ago"), if any."""
    m = _HUMAN.match(status.strip())
    if not m:
        return None
    n = m.group("n")
    count = 0.5 if n.startswith("Less") else 1 if n.startswith("About") else int(n)
    return count * _UNIT_SECONDS[m.group("unit")]


def status_age_range(status: str) -> tuple[float, float] | None:
    """Bounds in seconds on the age a listing's Status text gives ("Exited (0) 3 hours ago").

    The engine writes go-units' HumanDuration, which truncates or rounds to the unit shown
    ("About an hour" and "N hours" round in newer versions, truncate in older ones; days and
    weeks are counted from rounded hours): "N units" means an age in [N, N + 1) units, give or
    take half a unit (at most an hour). Wide enough for every version; None when unparsable.
    """
    m = _HUMAN.match(status.strip())
    if not m:
        return None
    n, unit = m.group("n"), _UNIT_SECONDS[m.group("unit")]
    if n.startswith("Less"):
        return 0.0, 1.0
    count = 1 if n.startswith("About") else int(n)
    give = min(unit / 2, 3600)
    return max(0.0, count * unit - give), (count + 1) * unit + give


def finish_window(status: str, created: datetime, listed_at: datetime) -> tuple[datetime, datetime]:
    """When a dead container listed at `listed_at` may have stopped, from its Status text: never
    before its creation nor after the listing; the whole span when the text says nothing."""
    ages = status_age_range(status)
    if ages is None:
        return created, max(created, listed_at)
    after = listed_at - timedelta(seconds=ages[1]) - _WINDOW_SLACK
    before = min(listed_at, listed_at - timedelta(seconds=ages[0]) + _WINDOW_SLACK)
    return max(created, after), max(created, before)


def cache_agrees(finished_at: datetime, status: str, now: datetime) -> bool:
    """Whether a cached finish time fits the listing's coarse "N units ago" text."""
    coarse = status_age(status)
    if coarse is None:
        return True
    actual = (now - finished_at).total_seconds()
    return abs(actual - coarse) <= max(90.0, 0.6 * coarse)


# How the engine's error answers map onto the runtime interface's errors: the first rule whose
# status matches (None: any) and whose text is in the message (lowercased; None: any text) wins;
# no rule: RuntimeError_. Docker says 409 for "in use" and "running"; Podman says 500 for some.
_ERROR_RULES: tuple[tuple[int | None, str | None, type[RuntimeError_]], ...] = (
    (404, None, NotFound),
    (409, None, Conflict),
    # Podman: removing a running or paused container ("cannot remove container ... as it is
    # running - running or paused containers cannot be removed without force: container state
    # improper").
    (500, "container state improper", Conflict),
    # Podman: deleting by id an image that has been tagged again meanwhile ("unable to delete
    # image ... by ID with more than one tag (...): please force removal").
    (500, "by id with more than one tag", Conflict),
    # Podman: an image a container uses ("image is in use by a container").
    (500, "in use by a container", Conflict),
    # Gone is gone, whatever the status: Docker answers 500 "unrecognized image ID" or "No such
    # image" for an image removed between listing and removal, Podman 500 "image not known" /
    # "no such container". The caller skips it as already gone, never as failed.
    (None, "no such image", NotFound),
    (None, "unrecognized image id", NotFound),
    (None, "image not known", NotFound),
    (None, "no such container", NotFound),
    (None, "no such object", NotFound),
)


def classify_error(status: int, message: str) -> type[RuntimeError_]:
    """The runtime error an engine's answer `status` with `message` means (see _ERROR_RULES)."""
    text = message.lower()
    for rule_status, needle, error in _ERROR_RULES:
        if (rule_status is None or rule_status == status) and (needle is None or needle in text):
            return error
    return RuntimeError_


def engine_error(what: str, status: int, message: str) -> RuntimeError_:
    """The exception for an error answer: NotFound and Conflict say what the engine said;
    anything else also gives the status."""
    error = classify_error(status, message)
    if error is RuntimeError_:
        return RuntimeError_(f"{what}: engine answered {status}: {message}")
    return error(f"{what}: {message}")


def podman_image_id(object_id: str) -> str:
    """An image id as Docker writes it: Podman's events and `Deleted` rows omit `sha256:`."""
    return f"sha256:{object_id}" if _HEX_ID.match(object_id) else object_id


def podman_aliases(references: Sequence[str]) -> tuple[str, ...]:
    """The short names Podman resolves to a local image: `myapp:1` for `localhost/myapp:1` (it
    lists an image loaded or built as `myapp:1` under `localhost/`), so pins match either."""
    return tuple(r.removeprefix("localhost/") for r in references if r.startswith("localhost/"))


def is_podman(version: Any) -> bool:
    """Whether a `/version` answer is Podman's (its components name "Podman Engine")."""
    if not isinstance(version, dict):
        return False
    components = version.get("Components") or []
    names = [str(c.get("Name", "")) for c in components if isinstance(c, dict)]
    return any(name.lower().startswith("podman") for name in names)


class DockerRuntime:
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
        self.endpoint = endpoint
        self.timeout = timeout
        self._client: docker.APIClient | None = None
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
        self.requests = 0  # engine requests made (retries included), for benchmarks and tests
        self.transport = TransportStats()  # connection faults: a flaky engine or a lost one
        # Per-object requests on a unix socket skip the SDK's HTTP stack (see _PlainHTTP).
        self._plain = (
            _PlainHTTP(endpoint.removeprefix("unix://"), self.timeout.total_seconds())
            if endpoint.startswith("unix://")
            else None
        )
        # Container id -> image id, from listings and create events (destroy events lack it).
        self._container_image: dict[str, str] = {}
        self._event_stream: Any = None
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
        self._podman: bool | None = None  # learnt on connecting (/_ping) or from /version
        self._connecting = threading.Lock()  # one connection made, whichever thread asks first

    @property
    def podman(self) -> bool:
        """Whether the engine is Podman's Docker-compatible service: from the first `/_ping` on a
        unix socket, else asked once (`/version`)."""
        self.api  # noqa: B018  (connecting pings, where that says)
        if self._podman is None:
            version = self._call("version", lambda: self.api.version(), read=True)
            self._podman = is_podman(version)
            if self._podman:
                log.info("the engine is Podman", extra={"endpoint": self.endpoint})
        return self._podman

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def api(self) -> docker.APIClient:
        if self._client is None:
            with self._connecting:
                return self._connect()
        return self._client

    def _connect(self) -> docker.APIClient:
        if self._client is None:
            # On a unix socket the API version and the engine's kind come from one `/_ping` (its
            # Api-Version and Libpod-Api-Version headers) instead of the SDK's `/version`, which
            # Podman answers in seconds (it runs conmon and the OCI runtime to print their
            # versions: 2.4 s here with the machine busy, against 0.02 s for dockerd).
            version = self._ping_version() if self._plain is not None else "auto"
            with self._errors("connect"):
                self._client = docker.APIClient(
                    base_url=self.endpoint,
                    timeout=max(1, int(self.timeout.total_seconds())),
                    version=version,
                    max_pool_size=_CONNECTIONS,
                )
                _tune_unix_socket_client(self._client)
                self.requests += 1 if version == "auto" else 0
        return self._client

    def _ping_version(self) -> str:
        """The engine's API version from `GET /_ping` on the plain path ("auto" when it does not
        say); learns whether it is Podman on the way."""
        plain = self._plain
        assert plain is not None
        try:
            status, headers = self._read(lambda: plain.head_of("GET", "/_ping"))
        except (OSError, http.client.HTTPException) as exc:
            raise self._unavailable("connect", exc) from None
        if status >= 400:
            raise RuntimeUnavailable(f"connect: engine at {self.endpoint} answered {status}")
        self._podman = "libpod-api-version" in headers
        if self._podman:
            log.info("the engine is Podman", extra={"endpoint": self.endpoint})
        version = headers.get("api-version", "")
        return version if re.fullmatch(r"\d+\.\d+", version) else "auto"

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Translate the SDK's exceptions into the runtime interface's."""
        try:
            yield
        except docker.errors.APIError as exc:
            raise engine_error(what, exc.status_code or 0, _explanation(exc)) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise self._unavailable(what, exc) from None
        except docker.errors.DockerException as exc:
            raise RuntimeUnavailable(f"{what}: engine at {self.endpoint}: {exc}") from None
        except requests.exceptions.RequestException as exc:
            raise RuntimeUnavailable(f"{what}: engine at {self.endpoint}: {exc}") from None

    def _call(self, what: str, fn: Callable[[], T], *, read: bool = False) -> T:
        """`fn()` (one request through the SDK); a `read` (idempotent) is retried briefly when
        its connection fails (`runtime.retry`), never a change."""
        with self._errors(what):
            return self._read(fn) if read else self._counted(fn)

    def _counted(self, fn: Callable[[], T]) -> T:
        self.requests += 1
        return fn()

    def _read(self, fn: Callable[[], T]) -> T:
        return retried(lambda: self._counted(fn), self.transport)

    def _unavailable(self, what: str, exc: BaseException) -> RuntimeUnavailable:
        """The engine did not answer `what` (after the retries a read gets): the message says
        whether its other requests answered (a flaky engine) or not (a lost one)."""
        cause = _root_cause(exc)
        stats = self.transport
        if stats.flaky:
            error = RuntimeUnavailable(
                f"{what}: engine at {self.endpoint} flaky, this request failed: {cause} "
                f"({stats.describe(self.requests)})"
            )
            error.flaky = True
            return error
        return RuntimeUnavailable(
            f"{what}: engine at {self.endpoint} unreachable or too slow: {cause}"
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._plain is not None:
            self._plain.close()

    # -- observation ------------------------------------------------------------------------
    def data_root(self) -> str:
        if self._data_root is None:
            info = self._call("info", lambda: self.api.info(), read=True)
            self._data_root = str(info.get("DockerRootDir") or "/var/lib/docker")
            self._containerd_store = is_containerd_store(info)
            self._store_info = (containerd_address(info), str(info.get("Driver") or "overlayfs"))
        return self._data_root

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
        rows = self._get_json("list images", "/images/json", "/images/json", {})
        if not isinstance(rows, list):
            raise RuntimeError_("list images: engine answered no list")
        images = [_image(row) for row in rows]
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
                    f"/images/{_quote(image_id)}/json",
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
                    f"/images/{_quote(image_id)}/history",
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
                    f"/images/{_quote(image_id)}/json",
                    lambda: self.api.inspect_image(image_id),
                )
            except NotFound:
                return image_id, None
            return image_id, parse_time((data.get("Metadata") or {}).get("LastTagTime"))

        found = self._map(one, image_ids)
        return {image_id: when for image_id, when in found if when is not None}

    def _podman_tagged_at(self, image_ids: Sequence[str]) -> dict[str, datetime]:
        """The latest pull, tag or import event of each image in Podman's event log. A load has no
        id in Podman's events (`loadfromarchive`, named after a temp file): loaded images get no
        evidence from it."""
        if not image_ids:
            return {}
        wanted = set(image_ids)
        filters = json.dumps({"type": ["image"], "event": list(_PODMAN_TAG_EVENTS)})
        # stream=false: the log so far, then the answer ends (Podman 4.3's `until` loses events).
        query = {"since": "0", "stream": "false", "filters": filters}
        found: dict[str, datetime] = {}
        for raw in self._event_log("read the image events", query):
            event = self._event(raw)
            if event is None or event.image_id not in wanted:
                continue
            if event.image_id not in found or event.time > found[event.image_id]:
                found[event.image_id] = event.time
        return found

    def past_events(self, until: datetime) -> list[RuntimeEvent]:
        """What the engine still remembers of container and image events up to `until`, in one
        request (Docker keeps its last 256 events in memory; Podman its event log). Container
        events carry the image as the container was created from it (`image_ref`), resolved by
        the caller: the containers are mostly gone, so none is inspected here."""
        names = _PODMAN_FILTER if self.podman else (*_CONTAINER_ACTIONS, *_IMAGE_ACTIONS)
        filters = json.dumps({"type": ["container", "image"], "event": list(names)})
        query = {"since": "0", "filters": filters}
        query.update({"stream": "false"} if self.podman else {"until": f"{until.timestamp():.9f}"})
        events = []
        for raw in self._event_log("read the engine's past events", query):
            event = self._event(raw, lookup=False)
            if event is not None:
                events.append(event)
        return events

    def _event_log(self, what: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /events that ends by itself (`until`, or Podman's stream=false): its objects."""
        query = urllib.parse.urlencode(params)
        if self._plain is not None:
            body = self._plain_request(what, "GET", f"/events?{query}")
        else:

            def read() -> bytes:
                response = self.api._get(self.api._url("/events") + "?" + query)
                self.api._raise_for_status(response)
                return bytes(response.content)

            body = self._call(what, read, read=True)
        found: list[dict[str, Any]] = []
        for line in body.splitlines():
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            if isinstance(raw, dict):
                found.append(raw)
        return found

    def list_containers(self) -> Sequence[Container]:
        """One listing. A dead container's finish time comes from the cache, else as the window
        its Status text gives; `finish_times` asks for the exact ones a decision needs."""
        rows = self._get_json(
            "list containers", "/containers/json?all=1", "/containers/json", {"all": 1}
        )
        if not isinstance(rows, list):
            raise RuntimeError_("list containers: engine answered no list")
        now = self._clock()
        containers: list[Container] = []
        for row in rows:
            state = _state(row.get("State"))
            container = _container(row, None)
            if not state.is_dead or state is ContainerState.CREATED:
                self.finish_cache.pop(row["Id"], None)
            else:
                status = row.get("Status", "")
                cached = self.finish_cache.get(row["Id"])
                if cached is not None and cache_agrees(cached, status, now):
                    container = replace(container, finished_at=cached)
                else:
                    self.finish_cache.pop(row["Id"], None)  # restarted and died again
                    after, before = finish_window(status, container.created, now)
                    container = replace(container, finished_after=after, finished_before=before)
            containers.append(container)
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
                f"/containers/{_quote(container_id)}/json",
                lambda: self.api.inspect_container(container_id),
            )
        except NotFound:
            return container_id, None
        state = data.get("State") or {}
        finished, started = parse_time(state.get("FinishedAt")), parse_time(state.get("StartedAt"))
        if finished is not None and started is not None and finished < started:
            # Podman: a container that exits at once can say it finished a few ms before it started.
            finished = started
        if finished is not None:  # kept at once: a batch cut short keeps what it learnt
            self.finish_cache[container_id] = finished
        return container_id, finished

    def _inspect(self, what: str, path: str, sdk: Callable[[], Any]) -> Any:
        """GET `path` (an inspect), through the plain path on a unix socket, else the SDK."""
        data = self._inspect_any(what, path, sdk)
        if not isinstance(data, dict):
            raise RuntimeError_(f"{what}: engine answered no object")
        return data

    def _inspect_any(self, what: str, path: str, sdk: Callable[[], Any]) -> Any:
        if self._plain is None:
            return self._call(what, sdk, read=True)
        return self._plain_json(what, "GET", path)

    def _map(self, fn: Callable[[str], T], items: Sequence[str]) -> list[T]:
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(_INSPECT_POOL, len(items))) as pool:
            return list(pool.map(fn, items))

    def ping(self) -> None:
        self._call("ping", lambda: self.api.ping(), read=True)

    def events(self, since: datetime | None = None) -> Iterator[RuntimeEvent]:
        names = _PODMAN_FILTER if self.podman else (*_CONTAINER_ACTIONS, *_IMAGE_ACTIONS)
        filters = {"type": ["container", "image"], "event": list(names)}
        with self._errors("watch events"):
            stream = self._read(lambda: self.api.events(since=since, filters=filters, decode=True))
            self._event_stream = stream
        try:
            with self._errors("watch events"):
                for raw in stream:
                    event = self._event(raw)
                    if event is not None:
                        yield event
        finally:
            self._event_stream = None
            stream.close()

    def stop_events(self) -> None:
        stream = self._event_stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # closing a broken stream may raise anything
                log.debug("closing the event stream failed", exc_info=True)

    def _event(self, raw: dict[str, Any], *, lookup: bool = True) -> RuntimeEvent | None:
        """One event of the engine's; `lookup`: ask the engine what image an unknown container
        or reference names (the live stream; never for the past, whose objects are gone)."""
        kind, action = raw.get("Type"), str(raw.get("Action") or "").split(":", 1)[0]
        actor = raw.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        object_id = str(actor.get("ID") or raw.get("id") or "")
        if self._podman:
            action = _PODMAN_ACTIONS.get((str(kind), action), action)
            if kind == "image":
                object_id = podman_image_id(object_id)
        nanos = raw.get("timeNano")
        when = (
            datetime.fromtimestamp(nanos / 1e9, UTC)
            if nanos
            else datetime.fromtimestamp(raw.get("time") or 0, UTC)
        )
        if kind == "container" and action in _CONTAINER_ACTIONS:
            image_id = self._container_image.get(object_id)
            if image_id is None and action != "destroy" and lookup:
                image_id = self._image_id_of_container(object_id)
            if action == "destroy" and lookup:
                self._container_image.pop(object_id, None)
            return RuntimeEvent(
                "container", action, object_id, image_id, when, attrs.get("name", ""),
                image_ref=str(attrs.get("image") or ""),
            )  # fmt: skip
        if kind == "image" and action in _IMAGE_ACTIONS:
            image_id = object_id if object_id.startswith("sha256:") else None
            # A Podman load names a temp file, not the image: nothing to look up.
            if image_id is None and action in ("pull", "tag", "load") and object_id and lookup:
                image_id = self._image_id_of(object_id)
            return RuntimeEvent("image", action, object_id, image_id, when, attrs.get("name", ""))
        return None

    def _image_id_of_container(self, container_id: str) -> str | None:
        try:
            data = self._call(
                f"inspect container {short_id(container_id)}",
                lambda: self.api.inspect_container(container_id),
                read=True,
            )
        except RuntimeError_:
            return None
        image_id = str(data.get("Image") or "") or None
        if image_id:
            self._container_image[container_id] = image_id
        return image_id

    def _image_id_of(self, reference: str) -> str | None:
        try:
            data = self._call(
                f"inspect image {reference}", lambda: self.api.inspect_image(reference), read=True
            )
        except RuntimeError_:
            return None
        return str(data.get("Id") or "") or None

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
            records = _build_cache_records(data)
            if records is None:
                self.has_build_cache = False
                log.info("the engine has no build cache (no BuildKit): build cache GC is off")
            sizes = _writable_sizes(data.get("Containers")) if container_sizes else None
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
        return _writable_sizes(rows) or {}

    def _get_json(self, what: str, plain_path: str, sdk_path: str, params: dict[str, Any]) -> Any:
        if self._plain is not None:
            return self._plain_json(what, "GET", plain_path)
        return self._call(
            what,
            lambda: self.api._result(self.api._get(self.api._url(sdk_path), params=params), True),
            read=True,
        )

    def remove_build_cache(self, record: BuildCacheRecord) -> int:
        """`POST /build/prune` with `filters={"id":[record id]}`: the engine removes that record
        only, and never while a build uses it (nor a shared one: `all` is not given). The engine
        takes one id per request and matches it as a pattern, so only plain ids are sent."""
        what = f"remove build cache {record.id} ({record.describe()})"
        if not _RECORD_ID.match(record.id):
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
                path = f"/containers/{_quote(container.id)}?v=True&link=False&force=False"
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
                f"/containers/{_quote(container.id)}/json",
                lambda: self.api.inspect_container(container.id),
            )
        except NotFound:
            return True
        except RuntimeError_:
            return False
        return False

    def _plain_request(self, what: str, method: str, path: str) -> bytes:
        """`method` `path` of the engine's API (the SDK's version prefix added) on the unix
        socket; the answer's body, or the errors the SDK's calls raise through `_errors`."""
        plain = self._plain
        assert plain is not None
        target = f"/v{self.api.api_version}{path}"
        try:
            if method == "GET":  # a read: asked again when its connection fails
                status, body = self._read(lambda: plain(method, target))
            else:  # a change: never sent twice (its answer lost, it may have been carried out)
                status, body = self._counted(lambda: plain(method, target))
        except (OSError, http.client.HTTPException) as exc:
            raise self._unavailable(what, exc) from None
        if status < 400:
            return body
        raise engine_error(what, status, _message(body) or f"HTTP {status}")

    def _plain_json(self, what: str, method: str, path: str) -> Any:
        body = self._plain_request(what, method, path)
        try:
            return json.loads(body) if body.strip() else None
        except ValueError:
            raise RuntimeError_(f"{what}: engine answered malformed JSON") from None

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
        path = f"/libpod/images/{_quote(image_id)}/untag?{docker_tags.untag_query(reference)}"
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
            path = f"/images/{_quote(reference)}?force=False&noprune={noprune}"
            rows = self._plain_json(what, "DELETE", path)
        if self._podman and isinstance(rows, list):
            rows = [_normalise_row(row) for row in rows]
        return rows

    def inspect_image(self, image_id: str) -> Image | None:
        try:
            return self._inspect_reference(image_id)
        except NotFound:
            return None

    def _inspect_reference(self, reference: str) -> Image | None:
        """The image `reference` (an id, a tag, a digest) names now; raises NotFound."""
        data = self._inspect(
            f"inspect image {short_id(reference) if _is_id(reference) else reference}",
            f"/images/{_quote(reference)}/json",
            lambda: self.api.inspect_image(reference),
        )
        image = _image(data)
        return replace(image, id=podman_image_id(image.id)) if self._podman else image

    def tag_image(self, image_id: str, reference: str) -> None:
        repository = docker_tags.repository(reference)
        name = reference[len(repository) + 1 :] or "latest"
        self._call(
            f"restore tag {reference} on {short_id(image_id)}",
            lambda: self.api.tag(image_id, repository, name),
        )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _PlainHTTP:
    """Requests on the engine's unix socket over plain, kept-alive http.client connections.

    Used for the per-object requests (inspects, removals), which are most of a busy cycle's.
    Through the SDK (requests, urllib3) each cost about 0.8 ms of client CPU with a few in flight,
    here about 0.25 ms: on a small node that CPU is taken from the engine, which needs it for the
    removals themselves. The requests (method, path, query) and the handling of the answers are
    the SDK's.
    """

    def __init__(self, socket_path: str, timeout: float) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._idle: list[_UnixConnection] = []
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str) -> tuple[int, bytes]:
        status, _, body = self.exchange(method, path)
        return status, body

    def head_of(self, method: str, path: str) -> tuple[int, dict[str, str]]:
        """`method` `path`: the answer's status and headers (names lowercased)."""
        status, headers, _ = self.exchange(method, path)
        return status, headers

    def exchange(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        """`method` `path`: the answer's status, headers (names lowercased) and body."""
        conn = self._take()
        try:
            conn.request(method, path)
            response = conn.getresponse()
            body = response.read()
        except BaseException:
            conn.close()
            raise
        headers = {name.lower(): value for name, value in response.getheaders()}
        if response.will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)
        return response.status, headers, body

    def _take(self) -> _UnixConnection:
        """An idle connection the engine has not closed meanwhile, else a new one."""
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.sock is not None and not _readable(conn.sock):
                    return conn
                conn.close()  # closed by the engine (EOF waiting) or out of step: not reusable
        return _UnixConnection(self.socket_path, self.timeout)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _is_id(reference: str) -> bool:
    return reference.startswith("sha256:") or bool(_HEX_ID.match(reference))


def _quote(name: str) -> str:
    """A name in an API path, quoted as the SDK quotes it."""
    return urllib.parse.quote(name, safe="/:")


def _message(body: bytes) -> str:
    """The engine's error message: the JSON `message`, else the text (as the SDK reads it)."""
    try:
        return str(json.loads(body)["message"]).strip()
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace").strip()


def _normalise_row(row: Any) -> Any:
    """A Podman image-delete row with its id written as Docker writes it (`sha256:`)."""
    if isinstance(row, dict) and isinstance(row.get("Deleted"), str):
        return {**row, "Deleted": podman_image_id(row["Deleted"])}
    return row


def _tune_unix_socket_client(client: docker.APIClient) -> None:
    """Reuse connections to a unix socket across objects, and skip what only a network needs.

    The SDK's unix-socket adapter keys its connection pools by the whole URL, path included, and
    keeps 25: every request about another object (each inspect, each removal) made a new pool and
    a new connection, and closed the oldest pool's. Keyed by the socket, connections are kept
    alive and reused. And `requests` looked up ~/.netrc and the proxy variables on every request,
    which a unix socket never uses. The requests and their answers are the same; the client's
    CPU per request is about halved.
    """
    adapter = getattr(client, "_custom_adapter", None)
    if not isinstance(adapter, UnixHTTPAdapter):
        return
    get_connection = adapter.get_connection
    base_url = client.base_url

    def one_pool(url: str, proxies: Any = None) -> Any:
        return get_connection(base_url, proxies)

    adapter.get_connection = one_pool  # type: ignore[method-assign]
    client.trust_env = False


def _explanation(exc: docker.errors.APIError) -> str:
    text = exc.explanation
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return str(text or exc).strip()


def _root_cause(exc: BaseException) -> str:
    for _ in range(10):
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return str(exc) or type(exc).__name__


def _state(value: Any) -> ContainerState:
    try:
        return ContainerState(str(value).lower())
    except ValueError:
        return ContainerState.UNKNOWN


def docker_layers(diff_ids: Sequence[str], history: Sequence[Any]) -> tuple[Layer, ...]:
    """Layers from an image's diff ids and its `/history` rows (newest first, as the engine
    answers). Steps that made no layer have size 0; when as many steps have a size as there are
    layers (or as many steps as layers) they map one to one, else zero-size steps that are not
    metadata (`#(nop)`) fill in the layers with no size of their own. Inodes: not told."""
    steps = [row for row in reversed(history) if isinstance(row, dict)]
    sizes = [max(0, int(row.get("Size") or 0)) for row in steps]
    n = len(diff_ids)
    if sum(1 for size in sizes if size > 0) == n:
        per_layer = [size for size in sizes if size > 0]
    elif len(sizes) == n:
        per_layer = sizes
    else:
        per_layer = []
        nonzero_left = sum(1 for size in sizes if size > 0)
        for row, size in zip(steps, sizes, strict=True):
            if len(per_layer) == n:
                break
            if size > 0:
                per_layer.append(size)
                nonzero_left -= 1
            elif n - len(per_layer) > nonzero_left and "#(nop)" not in str(
                row.get("CreatedBy") or ""
            ):
                per_layer.append(0)
        per_layer += [0] * (n - len(per_layer))
    return tuple(
        Layer(key=key, size_bytes=size, inodes=None)
        for key, size in zip(chain_ids(diff_ids), per_layer, strict=True)
    )


def _image(row: dict[str, Any]) -> Image:
    tags = tuple(t for t in row.get("RepoTags") or () if t and t != "<none>:<none>")
    digests = tuple(d for d in row.get("RepoDigests") or () if d and d != "<none>@<none>")
    return Image(
        id=row["Id"],
        tags=tags,
        digests=digests,
        size_bytes=int(row.get("Size") or 0),
        labels=dict(row.get("Labels") or {}),
        parent_id=str(row.get("ParentId") or ""),
    )


# BuildKit's record ids: random lowercase base-32 (and digests for some internal records).
_RECORD_ID = re.compile(r"^[a-z0-9:]{8,80}$")


def _build_cache_records(data: dict[str, Any]) -> tuple[BuildCacheRecord, ...] | None:
    """`/system/df`'s `BuildCache` (null when empty); None when the engine has none (no key)."""
    if "BuildCache" not in data:
        return None
    records = []
    for row in data.get("BuildCache") or ():
        parents = row.get("Parents") or ([row["Parent"]] if row.get("Parent") else [])
        records.append(
            BuildCacheRecord(
                id=str(row.get("ID") or ""),
                parent=str(parents[0]) if parents else None,
                type=str(row.get("Type") or ""),
                description=str(row.get("Description") or ""),
                in_use=bool(row.get("InUse")),
                shared=bool(row.get("Shared")),
                size_bytes=max(0, int(row.get("Size") or 0)),
                created_at=parse_time(row.get("CreatedAt")),
                last_used=parse_time(row.get("LastUsedAt")),
                usage_count=int(row.get("UsageCount") or 0),
            )
        )
    return tuple(r for r in records if r.id)


def _writable_sizes(rows: Any) -> dict[str, int] | None:
    """Container id -> `SizeRw` (bytes of its writable layer) from a listing with sizes."""
    if not isinstance(rows, list):
        return None
    return {
        str(row["Id"]): max(0, int(row.get("SizeRw") or 0))
        for row in rows
        if isinstance(row, dict) and row.get("Id")
    }


def _container(row: dict[str, Any], finished_at: datetime | None) -> Container:
    names = row.get("Names") or []
    name = names[0].lstrip("/") if names else short_id(row["Id"])
    return Container(
        id=row["Id"],
        name=name,
        image_id=row.get("ImageID") or "",
        state=_state(row.get("State")),
        created=datetime.fromtimestamp(int(row.get("Created") or 0), UTC),
        finished_at=finished_at,
        labels=dict(row.get("Labels") or {}),
    )
