"""The pure sandbox policy: which pod sandboxes go, after their containers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nodegc.config import ContainerSettings
from nodegc.model import Action, Container, ContainerState, Reason, Sandbox
from nodegc.policy.sandboxes import LABEL_SANDBOX_ID, plan_sandboxes

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SETTINGS = ContainerSettings.model_validate({"minimum_age": "1m"})


def sandbox(
    sandbox_id: str,
    *,
    minutes_ago: float = 60,
    ready: bool = False,
    name: str = "web",
    uid: str = "u1",
    namespace: str = "default",
    attempt: int = 0,
    labels: dict[str, str] | None = None,
) -> Sandbox:
    created = NOW - timedelta(minutes=minutes_ago)
    return Sandbox(sandbox_id, name, namespace, uid, attempt, ready, created, labels or {})


def member(container_id: str, sandbox_id: str) -> Container:
    labels = {LABEL_SANDBOX_ID: sandbox_id}
    return Container(container_id, "app", "img", ContainerState.EXITED, NOW, labels=labels)


def reasons(*sandboxes: Sandbox, containers: tuple[Container, ...] = ()) -> dict[str, Reason]:
    plan = plan_sandboxes(sandboxes, containers, SETTINGS, NOW)
    return {d.sandbox.id: d.reason for d in plan.decisions}


def test_an_old_empty_not_ready_sandbox_superseded_by_a_newer_one_goes() -> None:
    """A pod restarted its sandbox: the old, stopped, empty one is removed."""
    plan = plan_sandboxes(
        [sandbox("old", minutes_ago=60), sandbox("new", minutes_ago=10, ready=True)],
        [],
        SETTINGS,
        NOW,
    )
    assert [(d.sandbox.id, d.action) for d in plan.removals] == [("old", Action.REMOVE)]
    assert plan.removals[0].reason is Reason.SUPERSEDED


def test_the_newest_sandbox_of_a_pod_is_kept_even_when_not_ready() -> None:
    """The newest sandbox stays, ready or not (a restarting pod needs it)."""
    got = reasons(sandbox("old", minutes_ago=60), sandbox("new", minutes_ago=30))
    assert got == {"new": Reason.NEWEST_OF_POD, "old": Reason.SUPERSEDED}


def test_a_ready_sandbox_is_kept_even_when_not_the_newest() -> None:
    """A running sandbox is never a candidate."""
    got = reasons(sandbox("old", ready=True), sandbox("new", minutes_ago=5))
    assert got["old"] is Reason.READY


def test_a_sandbox_any_container_references_is_kept_in_use() -> None:
    """Removing a sandbox removes its containers: a dead one still holds it."""
    plan = plan_sandboxes(
        [sandbox("old"), sandbox("new", minutes_ago=5)],
        [member("c1", "old"), member("c2", "old")],
        SETTINGS,
        NOW,
    )
    (old,) = [d for d in plan.decisions if d.sandbox.id == "old"]
    assert (old.action, old.reason, old.used_by) == (Action.KEEP, Reason.IN_USE, ("c1", "c2"))


def test_a_sandbox_younger_than_the_container_minimum_age_is_kept() -> None:
    """containers.minimum_age applies to sandboxes, from their creation."""
    got = reasons(sandbox("old", minutes_ago=0.5), sandbox("new", minutes_ago=0.1))
    assert got["old"] is Reason.TOO_YOUNG


def test_a_keep_labelled_sandbox_is_kept() -> None:
    """nodegc.io/keep=true protects a sandbox as it does a container."""
    got = reasons(sandbox("old", labels={"nodegc.io/keep": "true"}), sandbox("new", minutes_ago=5))
    assert got["old"] is Reason.KEEP_LABEL


def test_pods_are_told_apart_by_namespace_name_and_uid() -> None:
    """A re-created pod (same name, new uid) keeps its own newest sandbox; so does the old pod."""
    got = reasons(
        sandbox("a", uid="u1", minutes_ago=60),
        sandbox("b", uid="u2", minutes_ago=30),
        sandbox("c", uid="u2", namespace="other", minutes_ago=20),
    )
    assert set(got.values()) == {Reason.NEWEST_OF_POD}


def test_newest_is_by_creation_then_attempt() -> None:
    """Equal creation times: the higher attempt is the newer sandbox."""
    got = reasons(sandbox("a0", attempt=0), sandbox("a1", attempt=1))
    assert got == {"a1": Reason.NEWEST_OF_POD, "a0": Reason.SUPERSEDED}


def test_containers_of_other_sandboxes_do_not_hold_a_sandbox() -> None:
    """Only containers naming the sandbox keep it."""
    got = reasons(sandbox("old"), sandbox("new", minutes_ago=5), containers=(member("c1", "new"),))
    assert got == {"new": Reason.IN_USE, "old": Reason.SUPERSEDED}
