"""What differs between CRI runtimes, and containerd's own parts: the sandbox (pause) image (the
setting, verbose Status, containerd 2.x's config), what a listed byte costs on the disk, whether
images can be mounted as volumes, and layer sizes from containerd's snapshots service."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from nodegc.model import StorePath
from nodegc.runtime.containerd_config import sandbox_image_of_endpoint
from nodegc.runtime.containerd_snapshots import LayerSizes, snapshotter_of
from nodegc.runtime.cri.decoding import sandbox_image_from_status
from nodegc.runtime.cri.events import CriEvents
from nodegc.runtime.cri_proto import api_pb2 as pb

log = logging.getLogger("nodegc.runtime.cri")


class RuntimeDifferences(CriEvents):
    """The sandbox image, the cost of a listed byte, image volumes and containerd's snapshot
    sizes (state set by the adapter)."""

    _sizes_of: LayerSizes | Literal[False] | None  # False: not containerd
    _sandbox_setting: str
    _sandbox_discovered: str | None
    _sandbox_warned: bool

    def filesystems(self) -> Sequence[StorePath]:
        raise NotImplementedError  # the adapter's

    def _image_volumes_possible(self) -> bool:
        """Whether the runtime can mount an image into a container (KEP-4639): containerd from
        2.1, and any other CRI runtime (CRI-O from 1.31; asked, as nodegc cannot tell)."""
        name, numbers = self._runtime_version()
        return name != "containerd" or numbers >= (2, 1)

    @property
    def listed_size_cost(self) -> float:
        """What a listed image byte costs on the disk, as a first guess (`collect.cost` learns
        the real one): containerd keeps the compressed blob and the unpacked snapshot (twice a
        layer's unpacked size for content that does not compress, twice the listed compressed
        size at least); other runtimes (CRI-O) list what unpacks."""
        name, _ = self._runtime_version()
        return 2.0 if name == "containerd" else 1.0

    def sandbox_image(self) -> str | None:
        """The runtime's sandbox (pause) image reference: the setting, else what the runtime says
        in verbose Status (asked once); None when neither says."""
        if self._sandbox_setting:
            return self._sandbox_setting
        if self._sandbox_discovered is None:
            status = self._call("status", self.rt.Status, pb.StatusRequest(verbose=True))
            self._sandbox_discovered = sandbox_image_from_status(status.info)
            if not self._sandbox_discovered and self.endpoint.startswith("unix://"):
                # containerd 2.x: its config version 3 names it, Status no longer does.
                socket = self.endpoint.removeprefix("unix://")
                self._sandbox_discovered = sandbox_image_of_endpoint(socket)
        return self._sandbox_discovered or None

    def _check_sandbox_known(self, rows: Sequence[pb.Image], sandbox: str | None) -> None:
        """Warn (once) when nothing says which image is the sandbox image: neither the setting,
        nor Status (containerd 1.6/1.7 config `sandboxImage`), nor the runtime's own `pinned`
        flag (containerd 1.7 and 2.x pin it: a version 3 config keeps it under
        `[plugins."io.containerd.cri.v1.images".pinned_images] sandbox`, which 2.x's Status no
        longer shows)."""
        if sandbox or self._sandbox_warned or any(row.pinned for row in rows):
            return
        self._sandbox_warned = True
        log.warning(
            "the runtime does not name its sandbox (pause) image nor pins any image; set "
            "runtime.sandbox_image so that it is never removed",
            extra={"endpoint": self.endpoint},
        )

    def _sized(
        self, sized: LayerSizes, chains: dict[str, list[str]]
    ) -> tuple[list[str], list[int | None]]:
        keys = list(dict.fromkeys(k for stack in chains.values() for k in stack))
        return keys, self._map(sized.size, keys)

    def _layer_sizes(self) -> LayerSizes | None:
        """containerd's snapshot sizes (`runtime.containerd_snapshots`): each layer's unpacked
        size, where the runtime is containerd and its image filesystem names its snapshotter."""
        if self._sizes_of is None:
            name, _ = self._runtime_version()
            snapshotter = (
                snapshotter_of(self.filesystems()[0].path) if name == "containerd" else None
            )
            use = snapshotter is not None
            self._sizes_of = LayerSizes(self._grpc_channel, snapshotter or "") if use else False
        return self._sizes_of or None
