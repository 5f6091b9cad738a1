"""What each image layer takes unpacked, as containerd's snapshots service says (CRI on containerd).

CRI lists one compressed size per image, and its verbose ImageStatus gives the image config
(diff ids), no per-layer size (measured on containerd 1.6 and 2.1.9). Estimated from the images'
totals alone, a layer several images share takes the bytes of the smallest of them: sixteen
images on one base each seemed to free almost nothing, and the plan planned them all. containerd
serves its own API on the socket CRI uses: `containerd.services.snapshots.v1.Snapshots/Usage`
gives a committed snapshot's size, and containerd commits an image layer's snapshot under its
chain id (the keys `runtime.layers.chain_ids` gives). One request per layer the first time it is
seen (a chain id's content never changes: cached for the adapter's life).

Only the two messages of that one call are needed; they are described here (field numbers as in
containerd's api/services/snapshots/v1/snapshots.proto) rather than generated stubs for the whole
service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

log = logging.getLogger(__name__)

METHOD = "/containerd.services.snapshots.v1.Snapshots/Usage"
NAMESPACE = "k8s.io"  # containerd's CRI plugin keeps its images there
USAGE_TIMEOUT = 5.0
SNAPSHOTTER_PREFIX = "io.containerd.snapshotter.v1."


def _message_classes() -> tuple[Any, Any]:
    f = descriptor_pb2.FileDescriptorProto(
        name="nodegc/containerd_snapshots_usage.proto",
        package="containerd.services.snapshots.v1",
        syntax="proto3",
    )
    string, int64 = (
        descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    )
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    request = f.message_type.add(name="UsageRequest")
    request.field.add(name="snapshotter", number=1, type=string, label=optional)
    request.field.add(name="key", number=2, type=string, label=optional)
    response = f.message_type.add(name="UsageResponse")
    response.field.add(name="size", number=1, type=int64, label=optional)
    response.field.add(name="inodes", number=2, type=int64, label=optional)
    pool = descriptor_pool.DescriptorPool()  # its own pool: no clash with generated stubs
    file = pool.Add(f)
    return (
        message_factory.GetMessageClass(file.message_types_by_name["UsageRequest"]),
        message_factory.GetMessageClass(file.message_types_by_name["UsageResponse"]),
    )


UsageRequest, UsageResponse = _message_classes()


def snapshotter_of(mountpoint: str) -> str | None:
    """The snapshotter an image filesystem's mountpoint (CRI ImageFsInfo) names: containerd
    reports its snapshotter's root, `<root>/io.containerd.snapshotter.v1.<name>`."""
    last = mountpoint.rstrip("/").rsplit("/", 1)[-1]
    return last.removeprefix(SNAPSHOTTER_PREFIX) if last.startswith(SNAPSHOTTER_PREFIX) else None


class LayerSizes:
    """Unpacked sizes of committed snapshots by chain id, asked of containerd once each.

    A runtime that does not serve the call (a proxy in between) gives None for every layer from
    its first refusal on; a layer not unpacked gives None for now: the policy then estimates from
    the images' totals."""

    def __init__(self, channel: Callable[[], grpc.Channel], snapshotter: str) -> None:
        self._channel = channel  # the adapter's current channel (it makes a new one on failures)
        self.snapshotter = snapshotter
        self._sizes: dict[str, int | None] = {}
        self._served = True

    def size(self, chain_id: str) -> int | None:
        """Bytes the layer's snapshot takes unpacked; None when containerd does not say."""
        if chain_id in self._sizes:
            return self._sizes[chain_id]
        if not self._served:
            return None
        try:
            call = self._channel().unary_unary(
                METHOD,
                request_serializer=UsageRequest.SerializeToString,
                response_deserializer=UsageResponse.FromString,
            )
            response = call(
                UsageRequest(snapshotter=self.snapshotter, key=chain_id),
                metadata=(("containerd-namespace", NAMESPACE),),
                timeout=USAGE_TIMEOUT,
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code is grpc.StatusCode.UNIMPLEMENTED:
                self._served = False
                log.info(
                    "the runtime gives no snapshot sizes: layer sizes estimated from the images'",
                    extra={"snapshotter": self.snapshotter, "layer": chain_id},
                )
            else:  # not unpacked (NOT_FOUND), or a passing failure: unknown for now
                log.debug(
                    "no snapshot size",
                    extra={"snapshotter": self.snapshotter, "layer": chain_id, "code": str(code)},
                )
            return None
        self._sizes[chain_id] = int(response.size)
        return self._sizes[chain_id]
