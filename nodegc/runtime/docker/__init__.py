"""The Docker Engine adapter: the only package that imports `docker`.

Podman's Docker-compatible service (`podman system service`) is served by the same adapter; it is
recognised once, from the `/_ping` the adapter connects with on a unix socket (else from
`/version`), and its differences are handled here (see docs/podman.md): its
own event names, image ids without `sha256:`, 500 answers meaning what Docker's 409 mean, no
`LastTagTime`, local images listed as `localhost/NAME:TAG`, `FinishedAt` before `StartedAt`.

Its rooms: `adapter.py` (`DockerRuntime`: observation and removal), `transport.py` (the SDK's
client, plain HTTP on the unix socket, retries of idempotent reads), `errors.py` (the engine's
error answers → the runtime interface's errors), `decoding.py` (the engine's JSON → the model),
`events.py` (the event stream and log), `podman.py` (Podman's differences), `tags.py` (the
removal of one planned image by its id, tag by tag).
"""

from nodegc.runtime.docker.adapter import DockerRuntime
from nodegc.runtime.docker.decoding import (
    cache_agrees,
    docker_layers,
    finish_window,
    parse_time,
    status_age,
    status_age_range,
)
from nodegc.runtime.docker.errors import classify_error, engine_error
from nodegc.runtime.docker.podman import is_podman, podman_aliases, podman_image_id

__all__ = [
    "DockerRuntime",
    "cache_agrees",
    "classify_error",
    "docker_layers",
    "engine_error",
    "finish_window",
    "is_podman",
    "parse_time",
    "podman_aliases",
    "podman_image_id",
    "status_age",
    "status_age_range",
]
