"""Every runtime nodegc ships (and the fake the unit tests use) has every member the `Runtime`
protocol declares, so the collector reads them as attributes (no `getattr` with a default that
would hide a runtime lacking one)."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest

from nodegc.runtime import Runtime
from nodegc.runtime.cri import CriRuntime
from nodegc.runtime.docker import DockerRuntime
from nodegc.testing.fake import FakeRuntime


def _members() -> list[str]:
    names = set(Runtime.__annotations__)
    names |= {n for n in vars(Runtime) if not n.startswith("_")}
    return sorted(names)


def _runtimes() -> list[object]:
    # No engine behind these endpoints: constructing an adapter does not connect.
    return [
        DockerRuntime("unix:///nonexistent/docker.sock", timedelta(seconds=1)),
        CriRuntime("unix:///nonexistent/containerd.sock", timedelta(seconds=1)),
        FakeRuntime(),
    ]


def test_the_protocol_declares_what_the_collector_reads():
    """Catches: frees_asynchronously or listed_size_cost dropped from the protocol."""
    assert {"frees_asynchronously", "listed_size_cost", "walks_tags", "layer_store"} <= set(
        _members()
    )


@pytest.mark.parametrize("runtime", _runtimes(), ids=lambda r: type(r).__name__)
def test_every_runtime_has_every_protocol_member(runtime):
    """Catches: a runtime without a member the protocol declares (the collector would raise
    AttributeError on it instead of quietly taking a default). Read statically: Docker's
    properties would ask the engine."""
    missing = []
    for name in _members():
        try:
            inspect.getattr_static(runtime, name)
        except AttributeError:
            missing.append(name)
    assert missing == []


def test_what_each_runtime_says_about_freeing_and_listed_sizes():
    """Catches: a changed value where the getattr defaults were (Docker: listed sizes are the
    disk's; CRI frees asynchronously and guesses a cost; the fake frees at once)."""
    docker, cri, fake = _runtimes()
    assert docker.listed_size_cost is None  # type: ignore[attr-defined]
    assert cri.frees_asynchronously is True  # type: ignore[attr-defined]
    assert fake.frees_asynchronously is False and fake.listed_size_cost is None  # type: ignore[attr-defined]
