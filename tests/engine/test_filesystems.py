"""The right filesystem, found without configuration, and a plan that is what frees, per store.

Real engines: Debian forky's dockerd 28.5 from the engine root (`nodegc.testing.rooted`) with
overlay2, with the containerd image store (containerd's root on the data root's filesystem, and
on a loop ext4 of its own), forky's Podman 5.8 (its graphroot), the host's dockerd (Debian 12:
20.10, overlay2), and containerd via CRI (the host's 1.6, forky's 2.1). The figures are
checked against the disk (statvfs of the filesystem the bytes really live on), never against
nodegc's own arithmetic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from nodegc.testing import dockerd
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.engine_root import EngineRootError, engine_root
from nodegc.testing.images import build_layer, build_layered_image_tar
from nodegc.testing.rooted import MountedFilesystem, RootedEngine, RootedPodman
from tests.conftest import require_engine
from tests.engine.helpers import MiB, nodegc_json

THRESHOLDS = (
    "--image-gc-high-threshold=85",
    "--image-gc-low-threshold=75",
    "--minimum-image-ttl-duration=0s",
)
SIZE_MB = 256
SETUPS = ("host-overlay2", "overlay2", "containerd", "containerd-own-fs", "podman-5")


@dataclass
class Setup:
    """An engine, the filesystem its image bytes live on and the one of its data root."""

    name: str
    engine: IsolatedEngine
    images_fs: MountedFilesystem
    data_fs: MountedFilesystem

    @property
    def split(self) -> bool:
        return _device(self.images_fs.mountpoint) != _device(self.data_fs.mountpoint)


def _device(path: Path | str) -> int:
    return os.stat(path).st_dev


def _root_or_fail():  # type: ignore[no-untyped-def]
    try:
        return engine_root("forky")
    except EngineRootError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no forky engine root: {exc}", pytrace=False)
        pytest.skip(f"no forky engine root: {exc}")


@pytest.fixture(params=SETUPS)
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    require_engine()
    name = request.param
    if name == "host-overlay2":
        with IsolatedEngine(size_mb=SIZE_MB) as engine:
            fs = MountedFilesystem(engine.mountpoint)
            yield Setup(name, engine, fs, fs)
        return
    root = _root_or_fail()
    if name == "podman-5":  # forky's Podman 5.8: everything in its graphroot
        with RootedPodman(SIZE_MB, root=root) as podman:
            fs = MountedFilesystem(podman.mountpoint)
            yield Setup(name, podman, fs, fs)
        return
    store = "overlay2" if name == "overlay2" else "containerd"
    own = SIZE_MB if name == "containerd-own-fs" else 0
    with RootedEngine(SIZE_MB, root=root, store=store, containerd_size_mb=own) as engine:
        yield Setup(name, engine, engine.images_fs, MountedFilesystem(engine.mountpoint))


def _images_on_one_base(engine: IsolatedEngine, count: int = 12) -> list[str]:
    """`count` images on one 16 MiB base layer with 4 MiB of their own each."""
    base = build_layer(16 * MiB, name="base")
    tars = [
        build_layered_image_tar([f"app/{n}:1"], [base, build_layer(4 * MiB, name=f"own{n}")])
        for n in range(count)
    ]
    return engine.load_many(tars)


def _named(report: dict, fs: MountedFilesystem) -> dict:  # type: ignore[type-arg]
    """The entry of `report["filesystems"]` that is on `fs` (by device)."""
    found = [f for f in report["filesystems"] if _device(f["path"]) == _device(fs.mountpoint)]
    assert len(found) == 1, (fs.mountpoint, report["filesystems"])
    return found[0]


def test_once_from_92_percent_frees_on_the_image_filesystem_what_it_planned(
    setup: Setup, tmp_path: Path
) -> None:
    """Images are a few percent each; the filesystem holding their bytes is at 92%, 85/75:
    report names that filesystem (found without configuration) and every other one measured;
    `once` ends between 69% and 75% with exit 0; the per-image `freed_bytes` add up to what
    statvfs shows came back on that filesystem within 15%.
    Mutations caught: measuring DockerRootDir with the containerd store (the image filesystem
    would be the wrong device, and at 1% nothing would be freed); one copy per layer as the
    containerd store's cost (freed_bytes add up to half the measured figure, and the loop
    overshoots below 69%)."""
    engine, images_fs = setup.engine, setup.images_fs
    ids = _images_on_one_base(engine)
    images_fs.fill_to_percent(92)
    assert images_fs.usage_percent() == 92
    state = tmp_path / "state"

    code, report = nodegc_json(engine, state, "report", *THRESHOLDS)
    assert code == 0
    assert _device(report["filesystem"]["path"]) == _device(images_fs.mountpoint)
    image_entry = _named(report, images_fs)
    assert "images" in image_entry["roles"] and image_entry["under_pressure"] is True
    data_entry = _named(report, setup.data_fs)
    assert {"logs", "volumes"} <= set(data_entry["roles"])
    assert len(report["filesystems"]) == (2 if setup.split else 1)
    assert report["images"]["usage_percent"] == 92

    before = os.statvfs(images_fs.mountpoint)
    code, out = nodegc_json(engine, state, "once", *THRESHOLDS)
    after = os.statvfs(images_fs.mountpoint)
    assert code == 0, out
    usage = images_fs.usage_percent()
    assert 69 <= usage <= 75, (setup.name, usage)
    measured = (after.f_bavail - before.f_bavail) * after.f_frsize
    images = out["images"]
    assert images["target_reached"] is True
    assert abs(images["bytes_freed"] - measured) <= MiB
    freed = sum(d.get("freed_bytes") or 0 for d in images["decisions"])
    freed += sum(d.get("size_bytes") or 0 for d in images["extra_removals"])
    print(f"{setup.name}: 92% -> {usage}%, freed_bytes {freed}, statvfs {measured}")
    assert abs(freed - measured) <= measured * 15 // 100, (setup.name, freed, measured)
    removed = [d for d in images["decisions"] if d.get("outcome") == "removed"]
    assert 0 < len(removed) < len(ids)
    assert _named(out, images_fs)["after"]["usage_percent"] == usage


@pytest.fixture
def own_fs() -> Iterator[Setup]:
    """Docker 28 with the containerd image store, containerd's root on a filesystem of its own."""
    require_engine()
    root = _root_or_fail()
    with RootedEngine(SIZE_MB, root=root, store="containerd", containerd_size_mb=SIZE_MB) as e:
        yield Setup("containerd-own-fs", e, e.images_fs, MountedFilesystem(e.mountpoint))


def test_a_full_data_root_beside_the_containerd_store_is_freed_of_dead_containers_not_images(
    own_fs: Setup, tmp_path: Path
) -> None:
    """The data root (logs, volumes) at 92% while containerd's filesystem is nearly empty:
    report shows the pressure there and plans no image for it; `once` removes the dead
    containers (their logs go with them) down to the low threshold there and no image.
    Mutation caught: thresholds on the image filesystem only (nothing would be said or freed),
    or images removed for a filesystem they are not on."""
    engine, data_fs = own_fs.engine, own_fs.data_fs
    ids = _images_on_one_base(engine, count=3)
    busybox = engine.load(_busybox())
    # Two dead containers whose logs (json-file, under the data root) are ~20 MiB each.
    dead = [
        engine.run_container(
            busybox, ["sh", "-c", "yes 0123456789abcdef0123456789 | head -c 9000000"]
        )
        for _ in range(2)
    ]
    data_fs.fill_to_percent(92)
    assert data_fs.usage_percent() == 92
    state = tmp_path / "state"
    env = {"NODEGC_CONTAINERS__MINIMUM_AGE": "0s"}

    code, report = nodegc_json(engine, state, "report", *THRESHOLDS, env=env)
    assert code == 0
    entry = _named(report, data_fs)
    assert entry["under_pressure"] is True and entry["usage_percent"] == 92
    assert entry["frees"] == ["container"] and entry["containers_planned"] == 2
    assert _named(report, own_fs.images_fs)["under_pressure"] is False
    assert not [d for d in report["images"]["decisions"] if d["action"] == "remove"]

    code, out = nodegc_json(engine, state, "once", *THRESHOLDS, env=env)
    assert code == 0, out
    with engine.api() as api:
        assert {i["Id"] for i in api.images()} >= set(ids)
        left = {c["Id"] for c in api.containers(all=True)}
    assert not left & set(dead)
    assert data_fs.usage_percent() <= 75
    assert _named(out, data_fs)["after"]["usage_percent"] == data_fs.usage_percent()


def _busybox() -> bytes:
    from nodegc.testing.images import busybox_image_tar

    return busybox_image_tar()


@pytest.mark.parametrize("suite", ["host", "forky"])
def test_cri_names_its_image_filesystem_from_image_fs_info(suite: str) -> None:
    """containerd 1.6 (host) and 2.1 (forky root) via CRI: ImageFsInfo names the image
    filesystem (no separate container filesystem: writable layers live there too), on the
    runtime's own loop filesystem; the layer store is the listed (compressed) one."""
    from nodegc.model import FilesystemRole, LayerStore
    from nodegc.runtime.cri import CriRuntime
    from nodegc.testing.containerd import IsolatedContainerd
    from nodegc.testing.containerd import missing_requirements as containerd_missing

    if problems := containerd_missing():
        pytest.skip("; ".join(problems))
    root = _root_or_fail() if suite == "forky" else None
    with IsolatedContainerd(size_mb=SIZE_MB, root=root) as ctrd:
        cri = CriRuntime(ctrd.endpoint, timedelta(seconds=30))
        try:
            (only,) = cri.filesystems()
            assert only.roles == (FilesystemRole.IMAGES, FilesystemRole.CONTAINERS)
            assert _device(only.path) == _device(ctrd.mountpoint)
            assert cri.data_root() == only.path
            assert cri.layer_store is LayerStore.LISTED
        finally:
            cri.close()


class SystemContainerdEngine(RootedEngine):
    """dockerd 28 with the containerd image store using a containerd it does not manage
    (`--containerd`), as Docker 29 does with the system's containerd: that containerd's root is
    wherever its configuration says (here DATA_ROOT/containerd, its own loop filesystem: not
    the managed layout DATA_ROOT/containerd/daemon, which a guess would measure)."""

    def _start_daemon(self) -> None:
        res = self._res
        sock, conf = res.root / "ctrd.sock", res.root / "ctrd.toml"
        conf.write_text(
            "version = 3\n"
            f'root = "{res.containerd_root}"\n'
            f'state = "{res.exec_root}/ctrd-state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", '
            '"io.containerd.cri.v1.runtime"]\n'
            f'[grpc]\n  address = "{sock}"\n'
        )
        argv = dockerd.dockerd_argv(res)
        argv[0] = "dockerd"
        argv.remove("--storage-driver=overlay2")
        argv.append(f"--containerd={sock}")
        features = {"features": {"containerd-snapshotter": True}}
        (res.root / "daemon.json").write_text(json.dumps(features) + "\n")
        script = (
            f'containerd --config "{conf}" >"{res.root}/ctrd.log" 2>&1 &\n'
            f'for i in $(seq 600); do [ -S "{sock}" ] && break; sleep 0.1; done\n'
            'exec "$@"\n'
        )
        dockerd.launch(
            res, self.engine_root.wrap(["sh", "-c", script, "sh", *argv], binds=[res.root])
        )


def test_a_containerd_docker_does_not_manage_is_asked_where_its_root_is(tmp_path: Path) -> None:
    """Docker 29's layout (dockerd on the system's containerd, whose root is not under the data
    root): containerd's introspection names its root, the report measures it, and `once` from
    92% ends between 69 and 75% with the per-image figures adding up to the disk's.
    Mutation caught: the managed layout assumed instead of asking (that path does not exist:
    report fails)."""
    require_engine()
    root = _root_or_fail()
    with SystemContainerdEngine(
        SIZE_MB, root=root, store="containerd", containerd_size_mb=SIZE_MB
    ) as engine:
        images_fs = engine.containerd_fs
        assert not (engine.containerd_root / "daemon").exists()
        _images_on_one_base(engine)
        images_fs.fill_to_percent(92)
        state = tmp_path / "state"
        code, report = nodegc_json(engine, state, "report", *THRESHOLDS)
        assert code == 0, report
        assert report["filesystem"]["path"].startswith(f"{engine.containerd_root}/io.containerd.")
        assert _device(report["filesystem"]["path"]) == _device(images_fs.mountpoint)
        before = os.statvfs(images_fs.mountpoint)
        code, out = nodegc_json(engine, state, "once", *THRESHOLDS)
        after = os.statvfs(images_fs.mountpoint)
        assert code == 0, out
        assert 69 <= images_fs.usage_percent() <= 75
        measured = (after.f_bavail - before.f_bavail) * after.f_frsize
        freed = sum(d.get("freed_bytes") or 0 for d in out["images"]["decisions"])
        print(f"system containerd: 92% -> {images_fs.usage_percent()}%, {freed} vs {measured}")
        assert abs(freed - measured) <= measured * 15 // 100
