"""Running containers on a Docker-API engine for tests: network none, a short stop timeout.

`ContainerSpec` says what to run; `run_container(api, spec)` creates and starts it (and waits for
its exit unless told not to); `run_dead_containers` makes many exited ones with a few threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import docker

__all__ = ["ContainerSpec", "run_container", "run_dead_containers"]


@dataclass(frozen=True)
class ContainerSpec:
    """One container to run: `image`, `cmd`, an optional `name` and `labels`; `wait` for its
    exit; `stop_timeout` seconds before SIGKILL on stop (1: busybox as pid 1 ignores SIGTERM,
    which would make every stop of the engine take 10 s)."""

    image: str
    cmd: Sequence[str] | str = ("true",)
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    detach: bool = True
    wait: bool = True
    stop_timeout: int | None = 1


def run_container(api: docker.APIClient, spec: ContainerSpec) -> str:
    """Create + start a container with network "none"; wait for its exit if asked."""
    cmd = spec.cmd
    container = api.create_container(
        spec.image,
        command=cmd if isinstance(cmd, str) else list(cmd),
        name=spec.name,
        labels=dict(spec.labels),
        detach=spec.detach,
        stop_timeout=spec.stop_timeout,
        host_config=api.create_host_config(network_mode="none"),
    )
    container_id: str = container["Id"]
    api.start(container_id)
    if spec.wait:
        api.wait(container_id)
    return container_id


def run_dead_containers(
    new_api: Callable[[], docker.APIClient],
    specs: Sequence[ContainerSpec],
    *,
    workers: int = 4,
    thread_name_prefix: str = "",
) -> list[str]:
    """Run every spec to its exit (`new_api()` gives each of `workers` threads its own client);
    ids in the specs' order."""
    n = len(specs)
    workers = max(1, min(workers, n))

    def batch(indices: range) -> list[tuple[int, str]]:
        with new_api() as api:
            return [(i, run_container(api, specs[i])) for i in indices]

    ids = [""] * n
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix) as pool:
        for results in pool.map(batch, [range(k, n, workers) for k in range(workers)]):
            for i, container_id in results:
                ids[i] = container_id
    if any(spec.wait for spec in specs):
        with new_api() as api:
            _until_listed_dead(
                api, {cid for cid, spec in zip(ids, specs, strict=True) if spec.wait}
            )
    return ids


# How long the listing may lag behind a container's exit. On Docker 28.5.2 a test comparing the
# listing before and after a dry run failed once in about 20 runs (at load 3, its containers made
# here just before): what this wait rules out.
LISTING_LAG_LIMIT = 60.0


def _until_listed_dead(api: docker.APIClient, ids: set[str]) -> None:
    """Until the engine's listing shows none of `ids` running (`wait` returns at the exit,
    which the listing's view may show a moment later): what a test compares is the listing."""
    deadline = time.monotonic() + LISTING_LAG_LIMIT
    while True:
        # ("running" only: Podman 4.3 answers 500 to a "restarting" filter; these have no
        # restart policy.)
        live = {c["Id"] for c in api.containers(filters={"status": "running"})}
        if not live & ids:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still listed running after their exit: {sorted(live & ids)}")
        time.sleep(0.05)
