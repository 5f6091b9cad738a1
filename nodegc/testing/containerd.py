"""A private, disposable containerd (with its CRI plugin) on its own small loop-mounted ext4.

`IsolatedContainerd` owns everything under one short temp dir (`/tmp/ngcc-<hex>`): a sparse disk
image, its loop device and mount (containerd's root lives there, so image GC frees real bytes of a
small filesystem), containerd's state dir, socket, config and log, an `opt` dir, empty CNI dirs,
and a cgroup parent of the same name for every pod it runs. It never talks to the system's
containerd (nor to the containerd of a dockerd). Teardown kills containers, shims and containerd
by pid, unmounts, detaches the loop device and removes the dir; it carries on past failures and
also runs from a `weakref.finalize` fallback at exit.

    with IsolatedContainerd(size_mb=256) as ctrd:
        sandbox = ctrd.run_pod("web")
        ctrd.run_container(sandbox, image_id, ["true"], name="app")

The recipe, known to work with Debian's containerd 1.6 on a machine without CAP_SYS_RESOURCE:
config `version = 2`; `restrict_oom_score_adj = true`; the sandbox image is a local pause image
(FROM scratch, busybox `sleep`) imported with `ctr -n k8s.io images import`; pods use the node's
network namespace (`NamespaceOption(network=NODE)`) and no hostname, so no CNI plugin is needed.
Needs root, containerd, containerd-shim-runc-v2, runc, ctr, losetup, mkfs.ext4 and mount/umount.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc

from nodegc.runtime.cri import normalize_reference
from nodegc.runtime.cri_proto import api_pb2 as pb
from nodegc.runtime.cri_proto import api_pb2_grpc as pb_grpc
from nodegc.testing import processes
from nodegc.testing.containerd_config import config_toml
from nodegc.testing.containerd_process import (
    ContainerdError,
    containerd_paths,
    new_resources,
    teardown,
    teardown_at_exit,
)
from nodegc.testing.engine_root import EngineRoot
from nodegc.testing.images import image_ids_of, merge_image_tars
from nodegc.testing.loopfs import FillableFilesystem, make_loop_filesystem
from nodegc.testing.pause_image import PAUSE_TAG, pause_image_tar, repo_tags

__all__ = [
    "DEFAULT_SIZE_MB",
    "PAUSE_TAG",
    "ContainerdError",
    "IsolatedContainerd",
    "missing_requirements",
    "pause_image_tar",
]

DEFAULT_SIZE_MB = 256
START_TIMEOUT = 30.0
RPC_TIMEOUT = 30.0
IMPORT_TIMEOUT = 30.0
POLL_INTERVAL = 0.02
NAMESPACE = "k8s.io"  # containerd's namespace for CRI objects
REQUIRED_TOOLS = (
    "containerd", "containerd-shim-runc-v2", "runc", "ctr", "losetup", "mkfs.ext4", "mount",
    "umount",
)  # fmt: skip


def missing_requirements() -> list[str]:
    """Why an IsolatedContainerd cannot run here (empty when it can): not root, or missing tools."""
    problems = [] if os.geteuid() == 0 else ["needs root (loop devices, mounts, containerd)"]
    path = processes.tool_path()
    problems += [
        f"{tool} not found" for tool in REQUIRED_TOOLS if not shutil.which(tool, path=path)
    ]
    return problems


class IsolatedContainerd(FillableFilesystem):
    """A containerd of our own on a `size_mb` ext4 loop filesystem; a context manager.

    `start()` prepares the filesystem, starts containerd and imports the pause image;
    `close()` removes everything (safe to call twice).
    """

    def __init__(
        self,
        size_mb: int = DEFAULT_SIZE_MB,
        *,
        base_dir: str | os.PathLike[str] = "/tmp",
        start_timeout: float = START_TIMEOUT,
        sandbox_image_tag: str = PAUSE_TAG,
        root: EngineRoot | None = None,
    ) -> None:
        """`root`: run the containerd of that engine root (`nodegc.testing.engine_root`)
        instead of the host's."""
        self.engine_root = root
        self._res = new_resources(Path(base_dir), size_mb)
        self._finalizer = weakref.finalize(self, teardown_at_exit, self._res)
        self.start_timeout = start_timeout
        self.sandbox_image_tag = sandbox_image_tag
        self.sandbox_image_id = ""
        self._channel: grpc.Channel | None = None
        self._sandbox_configs: dict[str, pb.PodSandboxConfig] = {}
        self._fill_count = 0

    # -- identity and paths -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """`ngcc-<hex>`: the temp dir's name and the pods' cgroup parent."""
        return self._res.name

    @property
    def root(self) -> Path:
        return self._res.root

    @property
    def endpoint(self) -> str:
        return f"unix://{self._res.socket_path}"

    @property
    def mountpoint(self) -> Path:
        """The loop-mounted filesystem that holds containerd's root."""
        return self._res.mountpoint

    @property
    def containerd_root(self) -> Path:
        return self._res.containerd_root

    @property
    def log_path(self) -> Path:
        return self._res.log_path

    @property
    def cgroup_parent(self) -> str:
        return f"/{self._res.name}"

    @property
    def sandbox_image(self) -> str:
        """The sandbox image reference as containerd names it."""
        return normalize_reference(self.sandbox_image_tag)

    @property
    def pid(self) -> int | None:
        """containerd's pid while it runs."""
        process = self._res.process
        if process is None or process.poll() is not None:
            return None
        return process.pid

    def __repr__(self) -> str:
        state = "running" if self.pid else "stopped"
        return f"<IsolatedContainerd {self.name} {state} {self.endpoint}>"

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException as exc:
            try:
                self.close()
            except ContainerdError as cleanup:
                exc.add_note(f"and then: {cleanup}")
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Prepare the filesystem, start containerd, wait for CRI, import the pause image."""
        if not self._finalizer.alive:
            raise ContainerdError(f"{self.name} is closed")
        if self.pid is not None:
            return
        res = self._res
        if not res.mounted:
            make_loop_filesystem(res.image, res.mountpoint, res.size_mb)
            res.mounted = True
        for d in (res.state, res.root / "opt", res.root / "cni" / "bin", res.root / "cni" / "conf"):
            d.mkdir(parents=True, exist_ok=True)
        res.config_path.write_text(
            config_toml(containerd_paths(res), self.sandbox_image, self.config_version)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINERD_", "DOCKER_"))}
        env["PATH"] = processes.tool_path()
        argv = ["containerd", "--config", str(res.config_path), "--log-level", "info"]
        if self.engine_root is None:
            argv[0] = shutil.which("containerd", path=env["PATH"]) or "containerd"
        else:
            argv = self.engine_root.wrap(argv, binds=[res.root])
        with open(res.log_path, "ab") as log:
            res.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
        res.pids.add(res.process.pid)
        self._wait_ready()
        (self.sandbox_image_id,) = self.import_images([pause_image_tar(self.sandbox_image_tag)])

    @property
    def config_version(self) -> int:
        """The config format the containerd run here takes: 3 from containerd 2.0, else 2."""
        if self.engine_root is not None and self.engine_root.version("containerd") >= (2,):
            return 3
        return 2

    def close(self) -> None:
        """Kill everything, unmount, detach the loop device, remove the temp dir."""
        self._close_channel()
        if self._finalizer.detach() is None:
            return
        problems = teardown(self._res)
        if problems:
            raise ContainerdError(f"cleanup of {self.name} incomplete: " + "; ".join(problems))

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of containerd's log, for failure reports."""
        return processes.log_tail(self._res.log_path, lines)

    def _wait_ready(self) -> None:
        """Poll CRI Status until the runtime is ready; raise with the log tail if it dies."""
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while time.monotonic() < deadline:
            process = self._res.process
            if process is not None and process.poll() is not None:
                raise ContainerdError(
                    f"containerd exited with {process.returncode}:\n{self.log_tail()}"
                )
            if self._res.socket_path.exists():
                try:
                    status = self.rt.Status(pb.StatusRequest(), timeout=1.0)
                except grpc.RpcError as exc:
                    last = str(exc.details() if isinstance(exc, grpc.Call) else exc)
                else:
                    ready = {c.type: c.status for c in status.status.conditions}
                    if ready.get("RuntimeReady"):
                        return
                    last = f"conditions {ready}"
            time.sleep(POLL_INTERVAL * 5)
        raise ContainerdError(
            f"containerd not ready after {self.start_timeout:.0f} s ({last}):\n{self.log_tail()}"
        )

    # -- CRI clients --------------------------------------------------------------------------

    def _stub_channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix://{self._res.socket_path}")
        return self._channel

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    @property
    def rt(self) -> pb_grpc.RuntimeServiceStub:
        """A RuntimeService client (the harness's own channel)."""
        return pb_grpc.RuntimeServiceStub(self._stub_channel())

    @property
    def img(self) -> pb_grpc.ImageServiceStub:
        """An ImageService client (the harness's own channel)."""
        return pb_grpc.ImageServiceStub(self._stub_channel())

    # -- images -------------------------------------------------------------------------------

    def import_images(self, tars: Iterable[bytes]) -> list[str]:
        """Import `docker save` tarballs (one `ctr import`); returns the image ids in order."""
        merged = merge_image_tars(tars)
        ids = image_ids_of(merged)
        with tempfile.NamedTemporaryFile(dir=self._res.root, suffix=".tar") as tmp:
            tmp.write(merged)
            tmp.flush()
            self.ctr("images", "import", tmp.name)
        # containerd 2.x lists an imported image in CRI, and each of its names, a moment after
        # `ctr import` returns: wait until every id has every name of the tarball.
        wanted = dict(zip(ids, repo_tags(merged), strict=True))
        deadline = time.monotonic() + IMPORT_TIMEOUT
        while missing := self._missing_names(wanted):
            if time.monotonic() >= deadline:
                raise ContainerdError(f"images or names {missing} missing from CRI after import")
            time.sleep(POLL_INTERVAL)
        return ids

    def _missing_names(self, wanted: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """Per image id, which of `wanted`'s names CRI does not list (yet); the id itself when
        the image is not listed at all."""
        rows = self.img.ListImages(pb.ListImagesRequest(), timeout=RPC_TIMEOUT).images
        listed = {i.id: set(i.repo_tags) for i in rows}
        missing = {}
        for image_id, tags in wanted.items():
            if image_id not in listed:
                missing[image_id] = [image_id]
            elif lacking := [
                t for t in map(normalize_reference, tags) if t not in listed[image_id]
            ]:
                missing[image_id] = lacking
        return missing

    def import_image(self, tar_bytes: bytes) -> str:
        """Import one tarball; returns its image id."""
        return self.import_images([tar_bytes])[0]

    def ctr(self, *args: str) -> str:
        """Run `ctr` against this containerd in the CRI namespace; returns its stdout."""
        argv = ["ctr", "--address", str(self._res.socket_path), "--namespace", NAMESPACE, *args]
        if self.engine_root is not None:
            return self.engine_root.run(argv, binds=[self._res.root]).stdout
        return processes.run(argv)

    def image_ids(self) -> set[str]:
        return {
            i.id for i in self.img.ListImages(pb.ListImagesRequest(), timeout=RPC_TIMEOUT).images
        }

    # -- pods and containers ------------------------------------------------------------------

    def run_pod(
        self,
        name: str,
        *,
        namespace: str = "default",
        uid: str | None = None,
        attempt: int = 0,
        labels: Mapping[str, str] | None = None,
        log_directory: str = "",
    ) -> str:
        """Run a pod sandbox in the node's network namespace (no CNI); returns its id.
        `log_directory`: where its containers' logs go (the kubelet's /var/log/pods/<pod>)."""
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(
                name=name, namespace=namespace, uid=uid or str(uuid.uuid4()), attempt=attempt
            ),
            labels=dict(labels or {}),
            log_directory=log_directory,
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE)
                ),
            ),
        )
        response = self.rt.RunPodSandbox(
            pb.RunPodSandboxRequest(config=config), timeout=RPC_TIMEOUT
        )
        self._sandbox_configs[response.pod_sandbox_id] = config
        return response.pod_sandbox_id

    def stop_pod(self, sandbox_id: str) -> None:
        """Stop a sandbox (its containers are killed); it stays, not ready."""
        self.rt.StopPodSandbox(
            pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=RPC_TIMEOUT
        )

    def create_container(
        self,
        sandbox_id: str,
        image: str,
        command: Sequence[str] = ("true",),
        *,
        name: str = "app",
        attempt: int = 0,
        labels: Mapping[str, str] | None = None,
        log_path: str = "",
    ) -> str:
        """Create (not start) a container in a sandbox; returns its id. `log_path`: its log,
        relative to the sandbox's log directory (the kubelet's `<name>/<attempt>.log`)."""
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=attempt),
            image=pb.ImageSpec(image=image),
            command=list(command),
            labels=dict(labels or {}),
            log_path=log_path,
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE)
                )
            ),
        )
        response = self.rt.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=sandbox_id,
                config=config,
                sandbox_config=self._sandbox_configs[sandbox_id],
            ),
            timeout=RPC_TIMEOUT,
        )
        return response.container_id

    def run_container(
        self,
        sandbox_id: str,
        image: str,
        command: Sequence[str] = ("true",),
        *,
        wait: bool = True,
        **options: Any,
    ) -> str:
        """Create and start a container (`options`: `create_container`'s name, attempt, labels,
        log_path); wait until it has exited unless `wait=False`."""
        container_id = self.create_container(sandbox_id, image, command, **options)
        self.rt.StartContainer(
            pb.StartContainerRequest(container_id=container_id), timeout=RPC_TIMEOUT
        )
        if wait:
            self.wait_state(container_id, pb.CONTAINER_EXITED)
        return container_id

    def container_state(self, container_id: str) -> int:
        status = self.rt.ContainerStatus(
            pb.ContainerStatusRequest(container_id=container_id), timeout=RPC_TIMEOUT
        )
        return status.status.state

    def wait_state(self, container_id: str, state: int, timeout: float = 30.0) -> None:
        """Poll until the container is in `state` (a pb.ContainerState)."""
        deadline = time.monotonic() + timeout
        while self.container_state(container_id) != state:
            if time.monotonic() >= deadline:
                raise ContainerdError(
                    f"container {container_id[:12]} not {pb.ContainerState.Name(state)} "
                    f"after {timeout:.0f} s"
                )
            time.sleep(POLL_INTERVAL)

    def stop_container(self, container_id: str) -> None:
        """Kill a running container at once (CRI StopContainer with a 0 s grace period)."""
        self.rt.StopContainer(
            pb.StopContainerRequest(container_id=container_id, timeout=0), timeout=RPC_TIMEOUT
        )

    def containers(self) -> dict[str, int]:
        """Every container's id -> CRI state."""
        rows = self.rt.ListContainers(pb.ListContainersRequest(), timeout=RPC_TIMEOUT).containers
        return {c.id: c.state for c in rows}

    def sandboxes(self) -> dict[str, int]:
        """Every sandbox's id -> CRI state."""
        rows = self.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=RPC_TIMEOUT).items
        return {s.id: s.state for s in rows}
