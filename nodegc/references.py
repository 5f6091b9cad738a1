"""The one grammar of image references (Docker's `distribution/reference` rules, the part nodegc
needs): the policy matches pin patterns with it, the CRI runtime matches names with it.

A reference is `[domain/]path[:tag][@digest]`. Its first `/`-separated component is a domain
when it has a `.` or a `:` (a port) or is `localhost`; otherwise the reference is on Docker Hub.
Docker Hub answers to `docker.io`, `index.docker.io` and `registry-1.docker.io`, all written
`docker.io` when qualified; a one-component path on the Hub is under `library/`.

Pure and dependency-free (a loose module: nodegc.policy and nodegc.runtime both use it).
"""

from __future__ import annotations

from dataclasses import dataclass

HUB = "docker.io"
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
OFFICIAL = "library/"


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference split in its parts: `domain` as qualified (`docker.io` for every alias of
    the Hub), `path` with `library/` made explicit on the Hub, `tag` and `digest` as written
    ("" when absent)."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """`domain/path`: the repository, fully qualified."""
        return f"{self.domain}/{self.path}"

    def qualified(self, *, default_tag: str = "") -> str:
        """The fully qualified form ("busybox:1" -> "docker.io/library/busybox:1"); a reference
        with neither tag nor digest gets `default_tag` when one is given."""
        tag = self.tag or ("" if self.digest else default_tag)
        return self.name + (f":{tag}" if tag else "") + (f"@{self.digest}" if self.digest else "")

    def familiar(self) -> str:
        """The short form people write ("docker.io/library/busybox:1" -> "busybox:1",
        "docker.io/myorg/app:2" -> "myorg/app:2"); other registries keep their domain."""
        full = self.qualified()
        if self.domain != HUB:
            return full
        path = full[len(HUB) + 1 :]
        rest = self.path[len(OFFICIAL) :]
        if self.path.startswith(OFFICIAL) and "/" not in rest:
            return path[len(OFFICIAL) :]
        return path


def is_image_id(reference: str) -> bool:
    """An image id ("sha256:<hex>", as CRI runtimes list an image without a name): no
    repository, so no other form."""
    return reference.startswith("sha256:")


def has_domain(first_component: str) -> bool:
    """Whether a reference's first component names a registry rather than a Hub namespace."""
    return "." in first_component or ":" in first_component or first_component == "localhost"


def parse(reference: str) -> Reference:
    """Split `reference` by the grammar above (no validation: an engine's names are taken as
    they come, and a malformed one simply matches nothing it should not)."""
    name, _, digest = reference.partition("@")
    first, sep, rest = name.partition("/")
    if sep and has_domain(first):
        domain, path = (HUB if first in HUB_ALIASES else first), rest
    else:
        domain, path = HUB, name
    last = path.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    if domain == HUB and "/" not in path:
        path = OFFICIAL + path
    return Reference(domain, path, tag, digest)


def normalized(reference: str) -> str:
    """A reference as containerd names it: fully qualified, `:latest` added to a reference with
    neither tag nor digest ("pause" -> "docker.io/library/pause:latest"); image ids unchanged."""
    if is_image_id(reference):
        return reference
    return parse(reference).qualified(default_tag="latest")


def familiar_forms(reference: str) -> set[str]:
    """A reference in every form people write it: as given, fully qualified and familiar
    ("docker.io/busybox:1" -> also "docker.io/library/busybox:1" and "busybox:1"), so a pin
    pattern matches whichever form its author wrote and the runtime lists. An image id, or a
    reference on another registry, is only itself."""
    if is_image_id(reference):
        return {reference}
    ref = parse(reference)
    if ref.domain != HUB:
        return {reference}
    return {reference, ref.qualified(), ref.familiar()}
