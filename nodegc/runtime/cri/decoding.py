"""Decoding the CRI's answers into the model: times, references, verbose ImageStatus and Status
info, container states, the kubelet's pod labels, sandboxes. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from nodegc.model import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_SANDBOX_ID,
    ContainerState,
    Sandbox,
)
from nodegc.references import normalized
from nodegc.runtime.cri_proto import api_pb2 as pb

STATES = {
    pb.CONTAINER_CREATED: ContainerState.CREATED,
    pb.CONTAINER_RUNNING: ContainerState.RUNNING,
    pb.CONTAINER_EXITED: ContainerState.EXITED,
    pb.CONTAINER_UNKNOWN: ContainerState.UNKNOWN,
}

POD_LABELS = (LABEL_POD_UID, LABEL_POD_NAME, LABEL_POD_NAMESPACE)


def from_nanos(value: int) -> datetime | None:
    """CRI's nanoseconds since the epoch to an aware datetime; 0 (unset) to None."""
    if value <= 0:
        return None
    return datetime.fromtimestamp(value / 1e9, UTC)


def normalize_reference(reference: str) -> str:
    """An image reference as containerd names it: registry and `library/` made explicit, `:latest`
    added to a bare name ("pause:3.9" -> "docker.io/library/pause:3.9"); image ids unchanged.
    The grammar is nodegc.references' (the one the policy's pin patterns use too)."""
    return normalized(reference)


def image_labels_from_info(info: Mapping[str, str]) -> dict[str, str]:
    """An image config's labels from verbose ImageStatus info (containerd: imageSpec.config.Labels;
    CRI-O: labels); {} when the runtime does not say."""
    try:
        data = json.loads(info.get("info") or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    spec = data.get("imageSpec") or {}
    config = spec.get("config") if isinstance(spec, dict) else None
    labels = (config or {}).get("Labels") if isinstance(config, dict) else None
    if labels is None:
        labels = data.get("labels")
    if not isinstance(labels, dict):
        return {}
    return {str(k): str(v) for k, v in labels.items()}


def diff_ids_from_info(info: Mapping[str, str]) -> list[str]:
    """An image's diff ids, bottom first, from verbose ImageStatus info (containerd:
    imageSpec.rootfs.diff_ids); [] when the runtime does not say."""
    try:
        data = json.loads(info.get("info") or "{}")
    except ValueError:
        return []
    spec = data.get("imageSpec") if isinstance(data, dict) else None
    rootfs = spec.get("rootfs") if isinstance(spec, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        return []
    return [str(d) for d in diff_ids if d]


def sandbox_image_from_status(info: Mapping[str, str]) -> str:
    """The sandbox (pause) image a runtime names in verbose Status info (containerd:
    info["config"] -> sandboxImage); "" when it does not say."""
    try:
        config = json.loads(info.get("config") or "{}")
    except ValueError:
        return ""
    if not isinstance(config, dict):
        return ""
    return str(config.get("sandboxImage") or "")


def uses_any(row: pb.Container, names: Iterable[str]) -> bool:
    refs = {row.image_id, row.image_ref, row.image.image} - {""}
    return not refs.isdisjoint(names)


def names_image(row: pb.Image, reference: str | None) -> bool:
    """Whether the image listed as `row` is the one `reference` names (id, tag or digest)."""
    if not reference:
        return False
    wanted = normalize_reference(reference)
    if wanted == row.id:
        return True
    return any(normalize_reference(n) == wanted for n in (*row.repo_tags, *row.repo_digests) if n)


def pod_labels(row: pb.Container, pod: pb.PodSandbox | None) -> dict[str, str]:
    """The container's labels, with the kubelet's pod labels filled in from CRI metadata where
    absent (container name, pod uid/name/namespace, sandbox id)."""
    labels = dict(row.labels)
    found = {
        LABEL_CONTAINER_NAME: row.metadata.name,
        LABEL_SANDBOX_ID: row.pod_sandbox_id,
    }
    if pod is not None:
        found |= {
            LABEL_POD_UID: pod.metadata.uid,
            LABEL_POD_NAME: pod.metadata.name,
            LABEL_POD_NAMESPACE: pod.metadata.namespace,
        }
    for key, value in found.items():
        if value and not labels.get(key):
            labels[key] = value
    return labels


def decode_sandbox(row: pb.PodSandbox) -> Sandbox:
    return Sandbox(
        id=row.id,
        name=row.metadata.name,
        namespace=row.metadata.namespace,
        uid=row.metadata.uid,
        attempt=int(row.metadata.attempt),
        ready=row.state == pb.SANDBOX_READY,
        created=from_nanos(row.created_at) or datetime.fromtimestamp(0, UTC),
        labels=dict(row.labels),
    )
