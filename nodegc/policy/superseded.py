"""Superseded releases: keep the newest N images of each repository, whatever the disk.

On CI hosts and dev machines one repository piles up tags (`app:1.41`, `app:1.42`, ...). With
`images.keep_per_repository` = N (0: off), an image older than the newest N images of its
repository is removed, reason `superseded`, whatever the disk. Pure: images, their records and
the images that must stay in; the ids that go out.

- Newest by when the image was first seen (the tag time where the engine tells it). Every image
  of the repository counts towards the N, those that must stay included: with N = 2 and the
  newest in use, one more stays. Images first seen at the same instant rank together, and a tie
  at the N-th place keeps them all: an image goes only when N images of its repository were
  strictly later. (Images nodegc found already there without a tag time — `docker load` sets
  none — share their first sighting, so none of them goes until newer ones arrive.)
- An image tagged in several repositories must be superseded in each: it is among the newest of
  a repository as long as one of its tags says so. Untagged images (dangling, digest only) belong
  to no repository and are never superseded.
- Never an image that must stay (in use by a container of any state, pinned, too young, failed
  this cycle: `keep`), and never one another listed image was built on (classic builder): the
  engine refuses a parent before its children, so it waits for them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping

from nodegc.model import Image, ImageRecord

# A reference in every form people write it (policy.images.familiar_forms, passed in by the
# image planner: this module is imported by it).
Forms = Callable[[str], set[str]]


def repository(tag: str, forms: Forms) -> str | None:
    """The repository a tag names, fully qualified where `forms` knows how (`busybox:1` ->
    `docker.io/library/busybox`): every spelling of one repository is one. None for
    `<none>:<none>` or an empty name."""
    name = tag.split("@", 1)[0]
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name = name[:colon]
    if not name or "<none>" in name:
        return None
    qualified = sorted(f for f in forms(name) if f.startswith("docker.io/"))
    return qualified[0] if qualified else name


def repositories(image: Image, forms: Forms) -> set[str]:
    """Every repository the image is tagged in."""
    return {repo for tag in image.tags if (repo := repository(tag, forms)) is not None}


def superseded(
    images: Iterable[Image],
    records: Mapping[str, ImageRecord],
    keep_per_repository: int,
    keep: Collection[str],
    forms: Forms,
) -> set[str]:
    """Ids of the images older than the newest `keep_per_repository` of every repository they
    are tagged in, less those in `keep` and the parents of listed images (0: none at all).
    `records` holds every image's record (an image not seen before: first seen now)."""
    if keep_per_repository <= 0:
        return set()
    listed = list(images)
    tagged = {i.id: repositories(i, forms) for i in listed}
    members: dict[str, list[Image]] = defaultdict(list)
    for image in listed:
        for repo in tagged[image.id]:
            members[repo].append(image)
    newest: set[str] = set()
    for repo_images in members.values():
        seen = sorted((records[i.id].first_seen for i in repo_images), reverse=True)
        if len(seen) <= keep_per_repository:
            newest.update(i.id for i in repo_images)
            continue
        # The N-th newest sighting: an image seen then or later is among the newest N (ties kept).
        cut = seen[keep_per_repository - 1]
        newest.update(i.id for i in repo_images if records[i.id].first_seen >= cut)
    parents = {i.parent_id for i in listed if i.parent_id and i.parent_id != i.id}
    return {
        i.id
        for i in listed
        if tagged[i.id] and i.id not in newest and i.id not in keep and i.id not in parents
    }
