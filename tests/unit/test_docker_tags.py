"""The tag walk of `nodegc.runtime.docker.tags` against a small model of Docker's reference store
(the real engines are in tests/reliability/test_moving_tags.py): deleting a name untags it and
deletes the image behind it when that was its last name; deleting by id refuses an image with
more than one tag and removes only that image's own names; tagging moves a name."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from nodegc.model import Image
from nodegc.runtime import Conflict, NotFound, RuntimeError_, RuntimeUnavailable
from nodegc.runtime.docker.tags import (
    last_tagged,
    references_to_walk,
    remove,
    restore,
    untag_query,
)

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


class Store:
    """Image id -> names; `before` runs before each request (a racer)."""

    def __init__(self, images: dict[str, list[str]]) -> None:
        self.images = {i: list(n) for i, n in images.items()}
        self.used: set[str] = set()
        self.before: Callable[[str, str], None] = lambda method, ref: None
        self.log: list[tuple[str, str]] = []
        self.tag_events: list[tuple[str, str]] = []  # (tag, image id), every tag call

    def tagged_since(self, ref: str, since: float) -> str | None:
        found = [i for name, i in self.tag_events if name == ref]
        return found[-1] if found else None

    def holder(self, ref: str) -> str | None:
        if ref in self.images:
            return ref
        return next((i for i, names in self.images.items() if ref in names), None)

    def inspect(self, ref: str) -> Image | None:
        self.before("GET", ref)
        self.log.append(("GET", ref))
        found = self.holder(ref)
        if found is None:
            raise NotFound(f"no such image: {ref}")
        return Image(id=found, tags=tuple(self.images[found]), digests=(), size_bytes=1)

    def delete(self, ref: str, by_id: bool) -> Any:
        self.before("DELETE", ref)
        self.log.append(("DELETE", ref))
        found = self.holder(ref)
        if found is None:
            raise NotFound(f"no such image: {ref}")
        if ref == found:
            if len(self.images[found]) > 1:
                raise Conflict("image is referenced in multiple repositories")
            if found in self.used:
                raise Conflict("image is being used by stopped container")
            rows = [{"Untagged": n} for n in self.images.pop(found)]
            return [*rows, {"Deleted": found}]
        names = self.images[found]
        if len(names) == 1 and found in self.used:
            raise Conflict("container is using its referenced image")
        names.remove(ref)
        rows: list[dict[str, str]] = [{"Untagged": ref}]
        if not names:
            del self.images[found]
            rows.append({"Deleted": found})
        return rows

    def tag(self, image_id: str, ref: str) -> None:
        self.log.append(("TAG", ref))
        self.tag_events.append((ref, image_id))
        for names in self.images.values():
            if ref in names:
                names.remove(ref)
        self.images[image_id].append(ref)

    def remove(self, image: Image) -> Any:
        return remove(image, inspect=self.inspect, delete=self.delete, tag=self.tag)


def planned(*tags: str) -> Image:
    return Image(id=A, tags=tags, digests=(), size_bytes=1)


def test_one_name_goes_by_id_in_one_request() -> None:
    store = Store({A: ["app:1"]})
    assert store.remove(planned("app:1")).note() == ""
    assert store.log == [("DELETE", A)] and A not in store.images


def test_names_are_untagged_after_a_check_and_the_last_goes_with_the_image_by_id() -> None:
    store = Store({A: ["app:1", "app:2", "app:3"]})
    store.remove(planned("app:1", "app:2", "app:3"))
    assert A not in store.images
    assert store.log[-1] == ("DELETE", A)
    deletes = [ref for method, ref in store.log if method == "DELETE"]
    assert deletes == ["app:1", "app:2", A], "the last tag must go with the image, by id"


def test_a_tag_moved_before_its_check_is_left_on_the_new_image() -> None:
    """Catches an untag without the check: B (whose only name it is now) would be deleted."""
    store = Store({A: ["app:1", "app:latest", "app:zz"], B: ["rel:2"]})

    def race(method: str, ref: str) -> None:
        if ref == "app:latest" and store.holder("app:latest") == A:
            store.images[B] = ["app:latest"]  # B loaded as app:latest (its only name)
            store.images[A].remove("app:latest")

    store.before = race
    walk = store.remove(planned("app:1", "app:latest", "app:zz"))
    assert store.images == {B: ["app:latest"]}
    assert walk.moved == {"app:latest": B}
    assert walk.note() == f"tag app:latest now names {'b' * 12}: left where it is"


def test_the_kept_tag_moved_before_the_delete_by_id_stays_on_the_new_image() -> None:
    store = Store({A: ["app:1", "app:zz"], B: ["rel:2"]})

    def race(method: str, ref: str) -> None:
        if method == "DELETE" and ref == A:
            store.tag(B, "app:zz")

    store.before = race
    walk = store.remove(planned("app:1", "app:zz"))
    assert store.images == {B: ["rel:2", "app:zz"]}
    assert walk.moved == {"app:zz": B}


def test_a_tag_added_since_the_plan_leaves_the_image_untouched() -> None:
    store = Store({A: ["app:1", "app:2", "new:1"]})
    with pytest.raises(Conflict, match="tagged new:1 since it was planned"):
        store.remove(planned("app:1", "app:2"))
    assert store.images == {A: ["app:1", "app:2", "new:1"]}
    assert all(method == "GET" for method, _ in store.log)


def test_a_refusal_puts_back_only_tags_no_other_image_holds() -> None:
    """Catches a restore without the check: app:2 would be moved back from B to A."""
    store = Store({A: ["app:1", "app:2", "app:3"], B: ["rel:2"]})

    def race(method: str, ref: str) -> None:
        if method == "DELETE" and ref == A:
            store.used.add(A)
            store.tag(B, "app:2")

    store.before = race
    with pytest.raises(Conflict) as refused:
        store.remove(planned("app:1", "app:2", "app:3"))
    assert store.images == {A: ["app:3", "app:1"], B: ["rel:2", "app:2"]}
    assert "tags put back: app:1" in str(refused.value)
    assert f"tag app:2 now names {'b' * 12}: not put back" in str(refused.value)


def test_the_image_gone_before_the_last_step_is_not_claimed() -> None:
    store = Store({A: ["app:1", "app:2"]})

    def race(method: str, ref: str) -> None:
        if method == "DELETE" and ref == A:
            del store.images[A]

    store.before = race
    with pytest.raises(NotFound):
        store.remove(planned("app:1", "app:2"))


def test_restore_skips_a_tag_held_elsewhere() -> None:
    store = Store({A: [], B: ["app:1"]})
    left = restore(A, ["app:1", "app:2"], store.inspect, store.tag)
    assert left == {"app:1": B}
    assert store.images == {A: ["app:2"], B: ["app:1"]}


def test_digests_of_a_repository_with_a_tag_go_with_it() -> None:
    image = Image(id=A, tags=("app:1",), digests=("app@sha256:1", "other@sha256:2"), size_bytes=1)
    assert references_to_walk(image) == ["app:1", "other@sha256:2"]


def test_a_tag_moved_between_check_and_untag_is_given_back() -> None:
    """Docker's window: the untag by name took B's tag (B keeps another name); the engine's tag
    event since the check says so and B gets it back. Catches a walk that does not look."""
    store = Store({A: ["app:1", "app:2"], B: ["rel:2"]})

    def race(method: str, ref: str) -> None:
        if method == "DELETE" and ref == "app:1":
            store.tag(B, "app:1")

    store.before = race
    walk = remove(
        planned("app:1", "app:2"),
        inspect=store.inspect,
        delete=store.delete,
        tag=store.tag,
        tagged_since=store.tagged_since,
    )
    assert store.images == {B: ["rel:2", "app:1"]}
    assert walk.given_back == {"app:1": B} and "given back to it" in walk.note()


def test_the_last_tag_event_naming_the_tag_is_the_one_that_counts() -> None:
    body = b"\n".join(
        json.dumps({"Type": "image", "Action": "tag", "Actor": {"ID": i, "Attributes": a}}).encode()
        for i, a in [(B, {"name": "app:1"}), (A, {"name": "app:2"}), (A, {"name": "app:1"})]
    )
    assert last_tagged(body, "app:1") == A
    assert last_tagged(body + b"\n" + b"torn{", "app:2") == A
    assert last_tagged(body, "app:3") is None


def test_podman_untag_query_splits_repository_and_tag() -> None:
    assert untag_query("localhost/app:latest") == "repo=localhost%2Fapp&tag=latest"
    assert untag_query("registry:5000/app") == "repo=registry%3A5000%2Fapp&tag=latest"


def test_a_delete_by_id_that_fails_after_untagging_gives_the_names_back() -> None:
    """dockerd shutting down: `DELETE /images/<id>` untags, then answers 500 (error deleting
    lease): the image stays, so it gets its name back at once (seen on dockerd 20.10)."""
    store = Store({A: ["app:1"]})

    def fail(method: str, ref: str) -> None:
        if method == "DELETE" and ref == A:
            store.images[A] = []
            raise RuntimeError_("engine answered 500: error deleting lease: context canceled")

    store.before = fail
    with pytest.raises(RuntimeError_):
        store.remove(planned("app:1"))
    assert store.images == {A: ["app:1"]}


class LostAnswers(Store):
    """The DELETE by id is carried out (or not: `carry_out`) and its answer lost; `look_fails`
    makes the inspect that follows fail too (the engine cannot say)."""

    def __init__(self, images: dict[str, list[str]], *, carry_out: bool = True) -> None:
        super().__init__(images)
        self.carry_out = carry_out
        self.look_fails = False

    def delete(self, ref: str, by_id: bool) -> Any:
        if not by_id:
            return super().delete(ref, by_id)
        if self.carry_out:
            super().delete(ref, by_id)
        else:
            self.log.append(("DELETE", ref))
        raise RuntimeUnavailable(f"remove image {ref}: engine flaky, connection reset")

    def tag(self, image_id: str, ref: str) -> None:
        if image_id not in self.images:
            raise NotFound(f"No such image: {image_id}")
        super().tag(image_id, ref)

    def inspect(self, ref: str) -> Image | None:
        if self.look_fails and ref == A:
            raise RuntimeUnavailable("inspect image: engine unreachable")
        return super().inspect(ref)


def test_a_delete_by_id_whose_answer_was_lost_and_carried_out_is_removed_not_resent() -> None:
    """Catches: counting it failed (the look after the lost answer dropped), or sending the
    DELETE again."""
    store = LostAnswers({A: ["app:1", "app:2"]})
    walk = store.remove(planned("app:1", "app:2"))
    assert A not in store.images
    assert [r for m, r in store.log if m == "DELETE"] == ["app:1", A]
    assert ("GET", A) in store.log[store.log.index(("DELETE", A)) :]
    assert walk.note() == ""


def test_a_lost_answer_with_the_image_still_there_fails_and_keeps_its_tags() -> None:
    """Catches: taking a lost answer for a removal without looking (the image is still there)."""
    store = LostAnswers({A: ["app:1", "app:2"]}, carry_out=False)
    with pytest.raises(RuntimeUnavailable):
        store.remove(planned("app:1", "app:2"))
    assert sorted(store.images[A]) == ["app:1", "app:2"]
    assert [r for m, r in store.log if m == "DELETE"] == ["app:1", A]


def test_a_lost_answer_the_engine_cannot_confirm_fails() -> None:
    """Catches: `removed` when the look itself failed (nothing says the image is gone)."""
    store = LostAnswers({A: ["app:1"]})
    store.look_fails = True
    with pytest.raises(RuntimeUnavailable):
        store.remove(planned("app:1"))


def test_a_tag_another_image_holds_after_a_lost_answer_is_named_in_the_note() -> None:
    """The image went; a tag it was planned with names B now: left there, and said."""
    store = LostAnswers({A: ["app:1"]})

    def race(method: str, ref: str) -> None:
        if method == "GET" and ref == "app:1" and A not in store.images and B not in store.images:
            store.images[B] = ["app:1"]

    store.before = race
    walk = store.remove(planned("app:1"))
    assert walk.moved == {"app:1": B}
    assert "now names" in walk.note()
