"""The pause image of the containerd harness: busybox whose command sleeps (no registry to pull
`registry.k8s.io/pause` from), and the names a `docker save` tarball gives its images."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

from nodegc.testing.containerd_process import ContainerdError
from nodegc.testing.images import busybox_image_tar

__all__ = ["PAUSE_TAG", "pause_image_tar", "repo_tags"]

PAUSE_TAG = "nodegc-test/pause:1"


def pause_image_tar(tag: str = PAUSE_TAG) -> bytes:
    """A pause image: `busybox_image_tar` with its command made `sleep` for ~68 years.

    The config (hence the image id) changes, so the manifest is rewritten to name the new one.
    """
    source = busybox_image_tar([tag])
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(source), mode="r:") as src,
        tarfile.open(fileobj=out, mode="w:") as dst,
    ):
        manifest = json.loads(_member(src, "manifest.json"))
        old_config = manifest[0]["Config"]
        config = json.loads(_member(src, old_config))
        config["config"]["Cmd"] = ["sleep", "2147483647"]
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        new_config = f"{_sha256(config_bytes)}.json"
        manifest[0]["Config"] = new_config
        for member in src:
            if member.name in ("manifest.json", old_config):
                continue
            reader = src.extractfile(member) if member.isfile() else None
            dst.addfile(member, reader)
        for name, payload in (
            ("manifest.json", json.dumps(manifest).encode()),
            (new_config, config_bytes),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(payload), 0o644
            dst.addfile(info, io.BytesIO(payload))
    return out.getvalue()


def repo_tags(tar_bytes: bytes) -> list[list[str]]:
    """The RepoTags of each image of a `docker save` tarball, in its manifest's order."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as archive:
        manifest = json.loads(_member(archive, "manifest.json"))
    return [list(entry.get("RepoTags") or []) for entry in manifest]


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    reader = archive.extractfile(name)
    if reader is None:
        raise ContainerdError(f"{name} is not a regular file in the image tarball")
    return reader.read()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
