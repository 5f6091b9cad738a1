"""Races on a real engine: containers created and started while `nodegc once` removes.

Every unused image is a candidate and every dead container of the pod too. A racer thread
creates containers from candidate images (by id or by tag), starts dead containers that are
planned for removal and restarts running ones, while `once` runs. Afterwards: every container
has its image, every surviving image has every tag it had, and no container that was running
was removed. Two races are also forced at an exact point, through the fault proxy.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest

from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.faultproxy import Fault, FaultProxy
from nodegc.testing.images import build_image_tar
from tests.engine.helpers import create_container, nodegc
from tests.reliability.scene import POD, outcomes, record_stats

EVERYTHING = (
    "--image-gc-high-threshold=1",
    "--image-gc-low-threshold=0",
    "--minimum-image-ttl-duration=0s",
    "--maximum-dead-containers-per-container=0",
    "--output=json",
)


# Podman's 500 answers when nodegc removed the object first (its lookup then the operation):
# "image not known", "layer not known", a create by an image id it no longer has ("parsing named
# reference ID: ... cannot specify 64-byte hexadecimal strings"), a start of a container it no
# longer has ("... does not exist in database: no such container").
GONE_ON_PODMAN = (
    "image not known",
    "layer not known",
    "cannot specify 64-byte hexadecimal",
    "no such container",
)


def gone_on_podman(exc: docker.errors.APIError) -> bool:
    """Whether an engine error says the object was removed first: a fair outcome of the race."""
    return any(w in str(exc) for w in GONE_ON_PODMAN)


@dataclass(frozen=True)
class Creation:
    """A container the racer created: from which image, when the call began and returned."""

    image: str
    began: float
    finished: float


@dataclass
class Racer:
    """A thread that keeps using what nodegc is removing, and what it did."""

    engine: IsolatedEngine
    references: list[str]  # ids and tags of candidate images
    dead: list[str]  # dead pod containers (startable)
    running: list[str]
    seed: int
    owner: dict[str, str] = field(default_factory=dict)  # reference -> image id
    created: dict[str, Creation] = field(default_factory=dict)  # container id -> its creation
    started: list[str] = field(default_factory=list)
    restarts: int = 0
    refused: int = 0  # operations that found their object gone: nodegc won the race
    stop: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)  # nodegc began to look

    def create(self, seed: int) -> None:
        """Create containers from candidate images (by id or by tag) until told to stop."""
        rng = random.Random(seed)
        self.go.wait(60)
        with self.engine.api(timeout=10) as api:
            while not self.stop.is_set():
                ref = rng.choice(self.references)
                began = time.monotonic()
                try:
                    container = create_container(api, ref)
                except docker.errors.NotFound:
                    self.refused += 1  # nodegc removed it first: a fair outcome
                    continue
                except docker.errors.APIError as exc:
                    if not gone_on_podman(exc):  # Podman: the image removed first
                        raise
                    self.refused += 1
                    continue
                self.created[container] = Creation(self.owner[ref], began, time.monotonic())

    def lifecycle(self, seed: int) -> None:
        """Start dead containers nodegc plans to remove; restart running ones."""
        rng = random.Random(seed)
        self.go.wait(60)
        with self.engine.api(timeout=10) as api:
            while not self.stop.is_set():
                try:
                    if self.dead and rng.random() < 0.7:
                        container = self.dead.pop(rng.randrange(len(self.dead)))
                        api.start(container)
                        self.started.append(container)
                    else:
                        api.restart(rng.choice(self.running), timeout=0)
                        self.restarts += 1
                except docker.errors.NotFound:
                    self.refused += 1
                except docker.errors.APIError as exc:
                    if not gone_on_podman(exc):  # Podman: the container removed first
                        raise
                    self.refused += 1

    def threads(self) -> list[threading.Thread]:
        jobs = [(self.create, self.seed), (self.create, self.seed + 1000)]
        jobs.append((self.lifecycle, self.seed + 2000))
        return [threading.Thread(target=f, args=(n,), daemon=True) for f, n in jobs]


def startable_dead_container(api: docker.APIClient, image: str) -> str:
    """A created (dead) pod container that can be started: it sleeps."""
    created = api.create_container(
        image,
        command=["sleep", "600"],
        labels=POD,
        host_config=api.create_host_config(network_mode="none"),
    )
    return str(created["Id"])


def tags_of(api: docker.APIClient) -> dict[str, set[str]]:
    return {i["Id"]: set(i.get("RepoTags") or []) for i in api.images(all=True)}


def engine_races(
    gone: dict[str, str], racer: Racer, tags: dict[str, set[str]], proxy: FaultProxy
) -> int:
    """How many containers (id -> image id, for those whose image is gone) lost their image to
    the engine's own race; fails if any existed before nodegc's DELETE of that image was sent.

    dockerd checks "is a container using this image?" and deletes without a lock against
    container creation: a container whose creation overlaps an unforced DELETE can end up
    without its image. No client can prevent that; a DELETE sent after the container existed
    must be refused (409), and that is nodegc's contract.
    """
    deletes = [x for x in proxy.exchanges if x.method == "DELETE" and "/images/" in x.path]
    races = 0
    for container, image in gone.items():
        creation = racer.created[container]  # only the racer creates containers
        names = {image, *tags.get(image, ())}
        sent = [x.sent for x in deletes if x.path.split("/images/", 1)[1] in names]
        assert sent, f"{image} is gone but nodegc never asked to remove it"
        assert creation.finished > min(sent), (
            f"container {container} existed before nodegc removed its image {image}"
        )
        races += 1
    return races


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_racing_creates_starts_and_restarts_lose_nothing(
    engine: IsolatedEngine, busybox: str, api: docker.APIClient, proxy: FaultProxy,
    tmp_path: Path, seed: int,
) -> None:  # fmt: skip
    """Whatever wins each race: no in-use image removed, no tag lost, no running container."""
    rng = random.Random(seed)
    tars = []
    for n in range(24):
        tags = [f"cand/{n}:{t}" for t in range(rng.choice([1, 1, 3]))]
        tars.append(build_image_tar(tags, 16 * 1024))
    images = engine.load_many(tars)
    before = tags_of(api)
    owner = {ref: i for i in images for ref in (i, *before[i])}
    dead = [startable_dead_container(api, busybox) for _ in range(8)]
    running = [
        engine.run_container(busybox, ["sleep", "600"], wait=False, stop_timeout=0)
        for _ in range(2)
    ]
    racer = Racer(engine, sorted(owner), list(dead), running, seed, owner)
    # The racer starts when nodegc first lists images, so that its moves land in the cycle.
    proxy.add(Fault.hook(racer.go.set), method="GET", path=r"/images/json$", times=1)
    threads = racer.threads()
    for thread in threads:
        thread.start()
    try:
        proc = nodegc(None, tmp_path / "state", "once", *EVERYTHING, endpoint=proxy.endpoint)
    finally:
        racer.go.set()
        racer.stop.set()
        for thread in threads:
            thread.join(30)
    assert proc.returncode in (0, 1), proc.stderr
    assert racer.created, "the racer never got going"

    after = tags_of(api)
    containers = api.containers(all=True)
    gone = {c["Id"]: c["ImageID"] for c in containers if c["ImageID"] not in after}
    races = engine_races(gone, racer, before, proxy)  # fails on any that was nodegc's doing
    record_stats(
        f"races[{seed}]",
        created=len(racer.created),
        started=len(racer.started),
        restarts=racer.restarts,
        refused=racer.refused,
        engine_races=races,
        deletes=sum(1 for x in proxy.exchanges if x.method == "DELETE"),
    )
    for image_id, tags in after.items():
        assert before.get(image_id, tags) <= tags, f"{image_id} lost tags"
    present = {c["Id"] for c in containers}
    for container in [*running, *racer.started]:
        assert container in present, f"running container {container} was removed"
    report = json.loads(proc.stdout)
    removed = {i for i, o in outcomes(report, "images").items() if o == "removed"}
    assert removed.isdisjoint(after), "an image reported removed is still there"


def test_container_created_from_an_image_mid_removal_keeps_it_whole(
    engine: IsolatedEngine, api: docker.APIClient, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Right before the second untag a container starts using the image: skipped, 3 tags."""
    tags = ["race/a:1", "race/b:2", "race/c:3"]
    image = engine.load(build_image_tar(tags, 16 * 1024))
    made: list[str] = []
    proxy.add(
        Fault.hook(lambda: made.append(create_container(api, image))),
        method="DELETE",
        path=r"/images/race/b:2$",
        times=1,
    )
    proc = nodegc(None, tmp_path / "s", "once", *EVERYTHING, endpoint=proxy.endpoint)
    assert proxy.errors == [] and made
    decision = outcomes(json.loads(proc.stdout), "images")
    assert decision[image] == "skipped", proc.stdout
    assert sorted(api.inspect_image(image)["RepoTags"]) == tags
    assert api.inspect_container(made[0])["Image"] == image


def test_dead_container_started_mid_removal_is_not_removed(
    engine: IsolatedEngine, busybox: str, api: docker.APIClient, proxy: FaultProxy,
    tmp_path: Path,
) -> None:  # fmt: skip
    """A dead container started right before its DELETE: refused, skipped, still running."""
    victim, other = (startable_dead_container(api, busybox) for _ in range(2))
    proxy.add(
        Fault.hook(lambda: api.start(victim)),
        method="DELETE",
        path=f"/containers/{victim}$",
    )
    proc = nodegc(None, tmp_path / "s", "once", *EVERYTHING, endpoint=proxy.endpoint)
    assert proxy.errors == []
    decision = outcomes(json.loads(proc.stdout), "containers")
    assert decision[victim] == "skipped" and decision[other] == "removed"
    assert api.inspect_container(victim)["State"]["Running"] is True
