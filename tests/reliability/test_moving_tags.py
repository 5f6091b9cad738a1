"""A tag that moves to a new release while `nodegc once` removes the old one, on a real engine.

The old image A (`app:a`, `app:latest`, `app:zz`) is old enough to go for age; the new release B
(loaded as `rel:2`, never listed old) is not planned. A real `docker tag B app:latest` (or
`app:zz`; then `docker rmi rel:2`: B arrives under that one name, as a pulled release does)
races the walk at an exact point: the fault proxy holds nodegc's request (the hook
runs the racer's calls on the engine, then forwards it), so the engine has the moved tag before
it answers. The walk takes A's names off in the listed order, keeping the last for the final
`DELETE` by id (`app:a` untagged by name, `app:latest` checked, then untagged by name,
`app:zz` removed with A by id).

- The tag moves right before nodegc's first request about it (its check): it is left on B, A is
  removed by id, B keeps every tag, the audit names the moved tag. Catches: an untag by name
  without the "still names the planned id" check (B untagged, and deleted as it has no other
  name: the issue's bug), and a walk that stops at the first `Deleted` row without looking whose.
- The kept tag moves right before the final `DELETE` by id: A goes, B keeps it. Catches a last
  step by name (it would untag B).
- Docker only: the tag moves between nodegc's check and its untag (the one-request window no
  Docker call closes): the engine's `tag` event since the check says the untag took B's tag,
  which B gets back; had it been B's only name, B was deleted with it, and the audit says so.
- A container starts using A and `app:latest` moves to B, both right before the final DELETE:
  refused (skipped), `app:a` is put back on A, `app:latest` stays on B (named in the detail).
  Catches a restore without the "no other image holds it now" check (the issue's bug 2).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import docker
import pytest

from nodegc.state.audit import AUDIT_FILE
from nodegc.testing.engine import IsolatedEngine
from nodegc.testing.faultproxy import Fault, FaultProxy
from nodegc.testing.images import build_image_tar
from nodegc.testing.podman import IsolatedPodman
from tests.engine.helpers import create_container, nodegc
from tests.reliability.scene import AGE_CONFIG, outcomes, seed_history

OLD_TAGS = ["app:a", "app:latest", "app:zz"]


def releases(
    engine: IsolatedEngine, api: docker.APIClient, state: Path
) -> tuple[str, str, list[str]]:
    """A (old, planned for age) and B (the new release, not planned), with their names as the
    engine lists them (Podman: `localhost/app:a`..., and in another order)."""
    old = engine.load(build_image_tar(OLD_TAGS, 8 * 1024))
    new = engine.load(build_image_tar(["rel:2"], 8 * 1024))
    seed_history(state, [old], timedelta(days=2))
    listed = {i["Id"]: i["RepoTags"] for i in api.images()}
    return old, new, listed[old]


def race_at(engine: IsolatedEngine, old: str, walked: list[str], tag: str) -> dict:
    """The proxy rule holding nodegc's first request about `tag`: Docker's check of it
    (`GET /images/<tag>/json`; before the fix, its `DELETE /images/<tag>`), Podman's untag of it
    by A's id (one step in the engine). The last name listed is not walked: the rule holds the
    final `DELETE` by id (before the fix, by that name)."""
    if tag == walked[-1]:
        return last_step(old, tag)
    if isinstance(engine, IsolatedPodman):
        skip = walked.index(tag)
        return {"method": "POST", "path": r"/libpod/images/.*/untag$", "skip": skip}
    return {"method": None, "path": f"/images/{tag}(/json)?$"}


def last_step(old: str, tag: str) -> dict:
    return {"method": "DELETE", "path": f"/images/({old}|{tag})$"}


def move(api: docker.APIClient, image: str, tag: str, seen: list[str]) -> None:
    """The new release arrives as `tag` alone: `docker tag image tag`, then its first name is
    taken off (`docker rmi rel:2`), so that `tag` is its only name; the engine is checked to
    have it before the walk goes on."""
    repository, name = tag.rsplit(":", 1)
    first = api.inspect_image(image)["RepoTags"]
    api.tag(image, repository, name)
    for other in first:
        api.remove_image(other, noprune=True)
    assert api.inspect_image(image)["RepoTags"] == [tag]
    seen.append(tag)


def once(proxy: FaultProxy, tmp_path: Path) -> tuple[dict, list[dict]]:
    config = tmp_path / "age.toml"
    config.write_text(AGE_CONFIG)
    state = tmp_path / "state"
    proc = nodegc(
        None, state, "once", "--config", str(config), "--output", "json", endpoint=proxy.endpoint
    )
    assert proc.stdout, proc.stderr
    audit = [json.loads(line) for line in (state / AUDIT_FILE).read_text().splitlines()]
    return json.loads(proc.stdout), audit


def tags(api: docker.APIClient) -> dict[str, list[str]]:
    return {i["Id"]: sorted(i.get("RepoTags") or []) for i in api.images(all=True)}


@pytest.mark.parametrize("which", [1, 2], ids=["untagged-by-name", "kept-for-the-delete-by-id"])
def test_a_tag_that_moves_mid_walk_stays_on_the_new_release(
    engine: IsolatedEngine, api: docker.APIClient, proxy: FaultProxy, tmp_path: Path, which: int
) -> None:
    """The walk's second name (after the first untag), or its last (kept for the delete by id),
    moves to B right before nodegc's first request about it."""
    old, new, walked = releases(engine, api, tmp_path / "state")
    moved = walked[which]
    seen: list[str] = []
    rule = race_at(engine, old, walked, moved)
    proxy.add(Fault.hook(lambda: move(api, new, moved, seen)), times=1, **rule)
    report, audit = once(proxy, tmp_path)
    assert proxy.errors == [] and seen == [moved], "the racer's tag never landed"
    now = tags(api)
    assert new in now, "the new release, never planned, was deleted"
    assert now[new] == [moved], "the new release lost its tag"
    assert old not in now, "the planned image was not removed"
    assert outcomes(report, "images")[old] == "removed"
    (line,) = [e for e in audit if e["id"] == old]
    assert line["outcome"] == "removed"
    assert f"tag {moved} now names {new.split(':')[1][:12]}: left where it is" in line["detail"]
    assert not [e for e in audit if e["id"] == new], "an audit line for an unplanned image"
    untagged = [x.path for x in proxy.exchanges if x.method == "DELETE"]
    assert untagged[-1].endswith(f"/images/{old}"), "the last step was not by id"


def test_a_refused_removal_puts_back_only_tags_no_other_image_holds(
    engine: IsolatedEngine, api: docker.APIClient, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The walk took off the first two names; right before the final DELETE a container starts
    using A and the second name moves to B: refused, the first name put back, the second left
    on B."""
    old, new, walked = releases(engine, api, tmp_path / "state")
    seen: list[str] = []
    users: list[str] = []

    def race() -> None:
        users.append(create_container(api, old))  # in use from now on: the delete is refused
        move(api, new, walked[1], seen)

    proxy.add(Fault.hook(race), times=1, **last_step(old, walked[-1]))
    report, audit = once(proxy, tmp_path)
    assert proxy.errors == [] and seen == [walked[1]] and users
    now = tags(api)
    assert now[new] == [walked[1]], "the tag was moved back to the old image"
    assert now[old] == sorted([walked[0], walked[2]]), "a tag the walk took off was not put back"
    assert outcomes(report, "images")[old] == "skipped"
    (line,) = [e for e in audit if e["id"] == old]
    assert line["outcome"] == "skipped" and line["detail"].startswith("in use now")
    short = new.split(":")[1][:12]
    assert f"tag {walked[1]} now names {short}" in line["detail"], line["detail"]
    assert f"tags put back: {walked[0]}" in line["detail"], line["detail"]
    assert (
        not (tmp_path / "state" / "intents.json").exists()
        or not json.loads((tmp_path / "state" / "intents.json").read_text())["intents"]
    ), "the outcome is final: nothing owed"


@pytest.mark.parametrize("only_name", [False, True], ids=["given-back", "deleted-and-said"])
def test_a_tag_moved_between_its_check_and_its_untag(
    engine: IsolatedEngine, api: docker.APIClient, proxy: FaultProxy, tmp_path: Path,
    only_name: bool,
) -> None:  # fmt: skip
    """Docker's one-request window (no conditional untag): `app:latest` moves to B after
    nodegc's check said it names A, right before its `DELETE /images/app:latest`. The engine's
    `tag` event since the check tells nodegc the untag took B's tag: B gets it back. When it was
    B's only name the engine deleted B with it: nothing can bring B back; the audit and an
    error line say so. Catches a walk that does not look after the untag (B silently untagged)."""
    old, new, walked = releases(engine, api, tmp_path / "state")
    seen: list[str] = []

    def race() -> None:
        if only_name:
            move(api, new, walked[1], seen)
        else:
            api.tag(new, *walked[1].rsplit(":", 1))
            seen.append(walked[1])

    proxy.add(Fault.hook(race), method="DELETE", path=f"/images/{walked[1]}$", times=1)
    report, audit = once(proxy, tmp_path)
    assert proxy.errors == [] and seen == [walked[1]]
    now = tags(api)
    assert old not in now and outcomes(report, "images")[old] == "removed"
    (line,) = [e for e in audit if e["id"] == old]
    short = new.split(":")[1][:12]
    if only_name:
        assert new not in now
        assert f"image {short} deleted" in line["detail"], line["detail"]
    else:
        assert now[new] == sorted(["rel:2", walked[1]]), "B lost the tag the untag took"
        assert f"tag {walked[1]} moved to {short} between its check and its untag" in line["detail"]
