"""Settings and connect() for runtime.type = "cri"."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from nodegc.config import ConfigError, load_settings
from nodegc.runtime import connect
from nodegc.runtime.cri import CriRuntime
from tests.engine.helpers import nodegc

CONTAINERD = "unix:///run/containerd/containerd.sock"


def test_cri_endpoint_defaults_to_containerd_socket() -> None:
    """runtime.type = cri without an endpoint: containerd's socket."""
    settings = load_settings(None, {"runtime": {"type": "cri"}}, environ={})
    assert settings.runtime.endpoint == CONTAINERD


def test_docker_host_does_not_leak_into_the_cri_default() -> None:
    """DOCKER_HOST is the Docker default only; the type comes from the environment here."""
    environ = {"DOCKER_HOST": "tcp://docker:2375", "NODEGC_RUNTIME__TYPE": "cri"}
    settings = load_settings(None, None, environ=environ)
    assert settings.runtime.type == "cri"
    assert settings.runtime.endpoint == CONTAINERD


def test_docker_endpoint_default_is_unchanged() -> None:
    """runtime.type = docker keeps DOCKER_HOST, else /var/run/docker.sock."""
    assert load_settings(None, None, environ={}).runtime.endpoint == "unix:///var/run/docker.sock"
    environ = {"DOCKER_HOST": "tcp://docker:2375"}
    assert load_settings(None, None, environ=environ).runtime.endpoint == "tcp://docker:2375"


def test_an_explicit_cri_endpoint_is_kept() -> None:
    """CRI-O's socket, given, is used as is."""
    runtime = {"type": "cri", "endpoint": "unix:///var/run/crio/crio.sock"}
    settings = load_settings(None, {"runtime": runtime}, environ={})
    assert settings.runtime.endpoint == "unix:///var/run/crio/crio.sock"


def test_sandbox_image_setting_is_read() -> None:
    """runtime.sandbox_image from the environment."""
    environ = {"NODEGC_RUNTIME__SANDBOX_IMAGE": "registry.k8s.io/pause:3.9"}
    assert load_settings(None, None, environ=environ).runtime.sandbox_image == (
        "registry.k8s.io/pause:3.9"
    )


def test_unknown_runtime_type_is_a_config_error_naming_the_choices() -> None:
    """A typo in runtime.type is refused before anything is contacted."""
    with pytest.raises(ConfigError, match=r"runtime\.type.*docker.*cri"):
        load_settings(None, {"runtime": {"type": "containerd"}}, environ={})


def test_connect_cri_makes_the_adapter_without_contacting_the_runtime() -> None:
    """connect() is lazy: a socket that does not exist is only a problem at first use."""
    runtime = connect(
        "cri", "unix:///nonexistent.sock", timedelta(seconds=3), sandbox_image="pause:3.9"
    )
    assert isinstance(runtime, CriRuntime)
    assert runtime.name == "cri"
    assert runtime.sandbox_image() == "pause:3.9"
    assert runtime.requests == 0


def test_unreachable_cri_runtime_exits_3_with_one_line(tmp_path: Path) -> None:
    """`nodegc once` with runtime.type = cri and no runtime: exit 3, one line naming it."""
    endpoint = f"unix://{tmp_path}/none.sock"
    env = {"NODEGC_RUNTIME__TYPE": "cri", "NODEGC_LOG__LEVEL": "error"}
    proc = nodegc(None, tmp_path / "s", "once", endpoint=endpoint, env=env)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert endpoint in lines[0]
    assert "Traceback" not in proc.stderr
