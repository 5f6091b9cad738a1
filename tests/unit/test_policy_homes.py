"""Rules that lived outside the policy (issue 21) and now have their one home there: the
kubelet's eviction check, the keep label, the collectable container states, and which engine
events count as use or arrival. One behaviour per test, each at its boundary."""

from __future__ import annotations

from nodegc.config.kubelet import Eviction
from nodegc.daemon import events as daemon_events
from nodegc.model import ContainerState
from nodegc.policy import containers, history
from nodegc.policy.kubelet import eviction_reached
from nodegc.policy.labels import keep_labelled
from tests.unit.builders import fs


def test_eviction_by_percent_is_reached_only_below_the_threshold() -> None:
    """imagefs.available<15%: 15% available exactly is not past it, one byte less is.
    Mutation caught: `<` -> `<=` (evicting at exactly the threshold)."""
    capacity = 1000 * 1024
    at = fs(capacity, capacity * 15 // 100)
    assert not eviction_reached(at, Eviction(percent=15))
    assert eviction_reached(fs(capacity, at.available_bytes - 1), Eviction(percent=15))


def test_eviction_by_bytes_is_reached_only_below_the_threshold() -> None:
    """imagefs.available<10Mi: exactly 10 MiB available is not past it, one byte less is.
    Mutation caught: `<` -> `<=`, or bytes ignored when no percentage is set."""
    limit = 10 * 1024 * 1024
    assert not eviction_reached(fs(100 * limit, limit), Eviction(bytes=limit))
    assert eviction_reached(fs(100 * limit, limit - 1), Eviction(bytes=limit))


def test_no_eviction_threshold_is_never_reached() -> None:
    """A kubelet config whose evictionHard leaves imagefs.available out: nodegc claims nothing.
    Mutation caught: None treated as the default 15%."""
    assert not eviction_reached(fs(1000, 0), None)


def test_keep_label_any_case_and_only_true() -> None:
    """nodegc.io/keep=TRUE keeps; "yes", "1" and no label do not. Mutation caught: the case
    folding dropped, or any value accepted."""
    assert keep_labelled({"nodegc.io/keep": "TRUE"})
    assert not keep_labelled({"nodegc.io/keep": "yes"})
    assert not keep_labelled({"nodegc.io/keep": "1"})
    assert not keep_labelled({})


def test_collectable_states_are_the_kubelets() -> None:
    """Created, exited and dead go; running, paused, restarting, removing and unknown stay.
    Mutation caught: a busy state (removing, restarting) made collectable."""
    assert {
        ContainerState.CREATED,
        ContainerState.EXITED,
        ContainerState.DEAD,
    } == containers.COLLECTABLE


def test_the_daemon_counts_the_policys_events() -> None:
    """The event watcher uses the policy's sets, not copies of its own: a container's create,
    start and die are use; an image's pull, load, tag and import are arrival (a destroy is
    clean-up, not use). Mutation caught: the daemon keeping its own, diverging set."""
    assert daemon_events.USE_ACTIONS is history.USE_ACTIONS
    assert daemon_events.ARRIVAL_ACTIONS is history.ARRIVAL_ACTIONS
    assert {"create", "start", "die"} == history.USE_ACTIONS
    assert "destroy" not in history.USE_ACTIONS
    assert {"pull", "load", "tag", "import"} == history.ARRIVAL_ACTIONS


def test_the_settings_the_policy_takes_are_frozen() -> None:
    """The validated sections reach the policy like the kubelet's ImageGCPolicy: frozen, so no
    caller can rewrite a threshold behind the validation (later plans get a copy,
    `targets.while_freeing`). Mutation caught: `frozen=True` dropped from the sections."""
    import pydantic
    import pytest

    from tests.unit.builders import image_settings

    settings = image_settings()
    with pytest.raises(pydantic.ValidationError):
        settings.high_threshold_percent = 50  # type: ignore[misc]
    assert settings.model_copy(update={"high_threshold_percent": 50}).high_threshold_percent == 50
