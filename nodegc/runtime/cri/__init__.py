"""The CRI adapter: containerd, CRI-O or any Kubernetes CRI v1 runtime over gRPC.

The only package that talks gRPC. One listing call per kind of object per observation; what a
listing lacks is fetched once per object and cached where it cannot change:

- a container's finish time (ContainerStatus), for the containers policy.finish_times names
  (until then it is listed as the window [creation, listing]): a CRI container is never
  restarted (the kubelet makes a new attempt), so an exited container's finish time is final
  (`finish_cache`);
- an image's labels and diff ids (ImageStatus, verbose): fixed for an image id. Its layers are
  the chain ids of its diff ids, sized on containerd by its snapshots service (CRI lists one
  total per image; elsewhere the policy estimates per-layer sizes from the totals, see
  docs/containerd.md).

CRI is more permissive than the Docker Engine, so nodegc's own checks are the only protection:
RemoveImage succeeds while containers use the image and RemoveContainer kills a running container.
Every removal therefore re-reads the object's state right before the call and raises Conflict
itself (the window left between that check and the removal is the size of one local RPC).

The runtime's sandbox (pause) image is reported as runtime-pinned even when the runtime says
`pinned=false` (containerd 1.6 does): it is discovered from `Status(verbose=true)` →
`info["config"]` → `sandboxImage` (containerd 1.6/1.7), or given by the `runtime.sandbox_image`
setting. containerd 2.x (config version 3) no longer shows it in Status but lists it `pinned`:
an image the runtime pins is never removed, and then nothing needs saying.

Containers carry the kubelet's labels (pod uid/name/namespace, container name, sandbox id); where
absent they are filled in from CRI metadata, so the policy needs no CRI-specific code.

Events: `GetContainerEvents` (CRI v1, Kubernetes 1.26+; containerd 1.7+). A runtime without it
(containerd 1.6 answers UNIMPLEMENTED) gets a stream that yields nothing and blocks, pinging the
runtime, until `stop_events()` or the runtime stops answering: last use is then learnt at each
listing (a container that lived between two listings goes unnoticed). CRI has no image events.

Its rooms: `adapter.py` (`CriRuntime`: observation and removal), `transport.py` (the channel, one
RPC with its deadline, retried reads, gRPC codes → the interface's errors), `events.py`
(container events; names resolved to image ids), `containerd.py` (what differs between
runtimes: the sandbox image, a listed byte's cost, image volumes, containerd's snapshot sizes),
`decoding.py` (the CRI's answers → the model). `runtime/cri_proto/` is generated code.
"""

from nodegc.runtime.cri.adapter import CriRuntime
from nodegc.runtime.cri.decoding import (
    diff_ids_from_info,
    from_nanos,
    image_labels_from_info,
    normalize_reference,
    pod_labels,
    sandbox_image_from_status,
)
from nodegc.runtime.cri.transport import (
    CRI_API_VERSION,
    DEFAULT_ENDPOINT,
    EVENTLESS_PING_SECONDS,
    MAX_MESSAGE_BYTES,
    grpc_target,
)

__all__ = [
    "CRI_API_VERSION",
    "DEFAULT_ENDPOINT",
    "EVENTLESS_PING_SECONDS",
    "MAX_MESSAGE_BYTES",
    "CriRuntime",
    "diff_ids_from_info",
    "from_nanos",
    "grpc_target",
    "image_labels_from_info",
    "normalize_reference",
    "pod_labels",
    "sandbox_image_from_status",
]
