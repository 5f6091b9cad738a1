"""The engine matrix of the test suite: which engines the core scenarios run on, and one
interface to drive any of them (`Node`), whatever its API (Docker's, Podman's compat API, CRI).

    MATRIX ids                     engine (where from)
    docker20                       the host's dockerd (Debian 12: docker.io 20.10), overlay2
    docker28-overlay2              Debian forky's docker.io 28 (engine root), overlay2
    docker28-containerd-same-fs    forky's docker.io 28, containerd image store, one filesystem
    docker28-containerd-own-fs     the same, containerd's root on a loop ext4 of its own
    containerd2-cri                forky's containerd 2.1 through CRI (config version 3)
    podman5                        forky's Podman 5.8 (compat API, runc)

The numbers in the ids are the engines' major versions when the matrix was made; the versions
really run are in `versions()` (and the pytest header). `start_node(spec)` starts one, isolated
as the harnesses always are (its own temp dir, loop filesystems, sockets), and `Node.close()`
removes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import docker

from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.testing.containerd import IsolatedContainerd
from nodegc.testing.containerd import missing_requirements as missing_containerd
from nodegc.testing.engine import IsolatedEngine, missing_requirements
from nodegc.testing.engine_root import EngineRoot, engine_root
from nodegc.testing.loopfs import FillableFilesystem
from nodegc.testing.podman import IsolatedPodman
from nodegc.testing.rooted import RootedEngine, RootedPodman, Store

__all__ = ["MATRIX", "MatrixEngine", "Node", "by_id", "start_node"]

Kind = Literal["docker", "podman", "cri"]
MODERN_SUITE = "forky"
# The labels the kubelet puts on its containers (dockershim / cri-dockerd): one evict unit.
POD_LABELS = {
    "io.kubernetes.pod.uid": "uid-matrix",
    "io.kubernetes.pod.name": "matrix-0",
    "io.kubernetes.pod.namespace": "default",
    "io.kubernetes.container.name": "app",
}


@dataclass(frozen=True)
class MatrixEngine:
    """One engine of the matrix: its id, API kind, root suite (None: the host's) and store."""

    id: str
    kind: Kind
    suite: str | None = None
    store: Store = "overlay2"
    own_containerd_fs: bool = False

    @property
    def builds(self) -> bool:
        """Whether it builds with BuildKit and lists build cache (Docker only)."""
        return self.kind == "docker"


MATRIX: tuple[MatrixEngine, ...] = (
    MatrixEngine("docker20", "docker"),
    MatrixEngine("docker28-overlay2", "docker", MODERN_SUITE),
    MatrixEngine("docker28-containerd-same-fs", "docker", MODERN_SUITE, "containerd"),
    MatrixEngine("docker28-containerd-own-fs", "docker", MODERN_SUITE, "containerd", True),
    MatrixEngine("containerd2-cri", "cri", MODERN_SUITE),
    MatrixEngine("podman5", "podman", MODERN_SUITE),
)


def by_id(*ids: str) -> list[MatrixEngine]:
    """The matrix entries named (all of them when none is)."""
    known = {e.id: e for e in MATRIX}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise KeyError(f"not in the engine matrix: {unknown}")
    return [known[i] for i in ids] if ids else list(MATRIX)


def missing(spec: MatrixEngine) -> list[str]:
    """Why `spec` cannot run here (empty when it can); the root is built on first use."""
    problems = missing_containerd() if spec.kind == "cri" else missing_requirements()
    if spec.suite is not None:  # the engine comes from the root, not the host
        problems = [p for p in problems if not p.endswith(" not found")]
        path = _host_path()
        for tool in ("unshare", "pivot_root", "losetup", "mkfs.ext4"):
            if not any(os.access(Path(d, tool), os.X_OK) for d in path):
                problems.append(f"{tool} not found")
    return problems


def _host_path() -> list[str]:
    return f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin:/sbin:/bin".split(":")


class Node:
    """A started matrix engine and what the scenarios ask of it."""

    def __init__(
        self,
        spec: MatrixEngine,
        harness: IsolatedEngine | IsolatedContainerd,
        root: EngineRoot | None,
    ) -> None:
        self.spec = spec
        self.harness = harness
        self.engine_root = root
        self._pods: dict[str, str] = {}  # CRI: pod uid -> sandbox id

    def __repr__(self) -> str:
        return f"<Node {self.spec.id} {self.harness!r}>"

    # -- where things are ---------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self.harness.endpoint

    @property
    def nodegc_env(self) -> dict[str, str]:
        """Environment for `nodegc` against this engine (the runtime type for CRI)."""
        return {"NODEGC_RUNTIME__TYPE": "cri"} if self.spec.kind == "cri" else {}

    @property
    def images_fs(self) -> FillableFilesystem:
        """The filesystem that holds image and writable-layer bytes (the one to fill)."""
        harness = self.harness
        if isinstance(harness, RootedEngine):
            return harness.images_fs
        return harness

    @property
    def images_mountpoint(self) -> Path:
        """Where `images_fs` is mounted."""
        return self.images_fs.mountpoint

    def log_tail(self, lines: int = 40) -> str:
        return self.harness.log_tail(lines)

    def close(self) -> None:
        self.harness.close()

    # -- Docker-API engines -------------------------------------------------------------------

    @property
    def engine(self) -> IsolatedEngine:
        """The Docker-API harness (Docker, Podman); TypeError for CRI."""
        if not isinstance(self.harness, IsolatedEngine):
            raise TypeError(f"{self.spec.id} has no Docker API")
        return self.harness

    @property
    def ctrd(self) -> IsolatedContainerd:
        """The CRI harness; TypeError for the others."""
        if not isinstance(self.harness, IsolatedContainerd):
            raise TypeError(f"{self.spec.id} is not a CRI engine")
        return self.harness

    def api(self) -> docker.APIClient:
        return self.engine.api()

    # -- inventory ----------------------------------------------------------------------------

    def load(self, tars: Iterable[bytes]) -> list[str]:
        """Load `docker save` tarballs; the image ids as the engine names them, in order."""
        if self.spec.kind == "cri":
            return self.ctrd.import_images(tars)
        return self.engine.load_many(tars)

    def images(self) -> dict[str, list[str]]:
        """Image id -> sorted tags."""
        if self.spec.kind == "cri":
            rows = self.ctrd.img.ListImages(pb.ListImagesRequest(), timeout=30).images
            return {i.id: sorted(i.repo_tags) for i in rows}
        with self.api() as api:
            return {i["Id"]: sorted(i.get("RepoTags") or []) for i in api.images()}

    def containers(self) -> set[str]:
        if self.spec.kind == "cri":
            return set(self.ctrd.containers())
        with self.api() as api:
            return {c["Id"] for c in api.containers(all=True)}

    def hold(self, image_id: str) -> str:
        """A running container of `image_id` (keeps it in use); its id."""
        if self.spec.kind == "cri":
            pod = self.ctrd.run_pod("holder", uid="uid-holder")
            return self.ctrd.run_container(pod, image_id, ["sleep", "3600"], wait=False)
        return self.engine.run_container(image_id, ["sleep", "3600"], wait=False)

    def dead(
        self, image_id: str, n: int, *, one_unit: bool, write_mib: int = 0, start: int = 0
    ) -> list[str]:
        """`n` exited containers of `image_id`, oldest first, each having written `write_mib`
        MiB to its writable layer: all of one kubelet evict unit (pod container), or each of
        its own (`start` numbers the pods, so that calls do not collide)."""
        cmd = ["dd", "if=/dev/urandom", "of=/data", "bs=1M", f"count={write_mib}"]
        command = cmd if write_mib else ["true"]
        ids = []
        for k in range(n):
            if self.spec.kind == "cri":
                ids.append(self._dead_cri(image_id, command, k + start, one_unit))
            else:
                labels = POD_LABELS if one_unit else {}
                ids.append(self.engine.run_container(image_id, command, labels=labels))
        return ids

    def _dead_cri(self, image_id: str, command: Sequence[str], k: int, one_unit: bool) -> str:
        uid = "uid-unit" if one_unit else f"uid-job-{k}"
        if uid not in self._pods:
            self._pods[uid] = self.ctrd.run_pod(uid.removeprefix("uid-"), uid=uid)
        attempt = k if one_unit else 0
        return self.ctrd.run_container(
            self._pods[uid], image_id, command, name="app", attempt=attempt
        )

    def use(self, image_id: str, k: int) -> str:
        """Use `image_id` (a container of it runs to its end; the `k`th use); its id."""
        return self.dead(image_id, 1, one_unit=False, start=1000 + k)[0]

    def remove_containers(self, ids: Iterable[str]) -> None:
        for container_id in ids:
            if self.spec.kind == "cri":
                self.ctrd.rt.RemoveContainer(
                    pb.RemoveContainerRequest(container_id=container_id), timeout=30
                )
            else:
                with self.api() as api:
                    api.remove_container(container_id, force=True)


def _harness(
    spec: MatrixEngine, root: EngineRoot | None, size_mb: int, containerd_size_mb: int
) -> IsolatedEngine | IsolatedContainerd:
    if spec.kind == "cri":
        return IsolatedContainerd(size_mb=size_mb, root=root)
    if spec.kind == "podman":
        return IsolatedPodman(size_mb) if root is None else RootedPodman(size_mb, root=root)
    if root is None:
        return IsolatedEngine(size_mb)
    own = containerd_size_mb if spec.own_containerd_fs else 0
    return RootedEngine(size_mb, root=root, store=spec.store, containerd_size_mb=own)


@contextmanager
def start_node(
    spec: MatrixEngine, *, size_mb: int = 256, containerd_size_mb: int = 256
) -> Iterator[Node]:
    """Start `spec` (building its root first if needed) on a `size_mb` filesystem (for
    `own_containerd_fs`, the data-root's; containerd's own is `containerd_size_mb`); closed on
    exit, pass or fail."""
    root = engine_root(spec.suite) if spec.suite else None
    harness = _harness(spec, root, size_mb, containerd_size_mb)
    with harness:
        yield Node(spec, harness, root)


def versions(specs: Iterable[MatrixEngine]) -> Mapping[str, str]:
    """The engine versions in the roots the matrix uses (package -> Debian version)."""
    found: dict[str, str] = {}
    for suite in sorted({s.suite for s in specs if s.suite}):
        try:
            root = engine_root(suite, build=False)
        except RuntimeError:
            continue
        found.update({f"{suite}:{k}": v for k, v in root.versions.items()})
    return found
