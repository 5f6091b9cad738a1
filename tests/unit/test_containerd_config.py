"""The sandbox image a containerd config names, versions 2 and 3 (containerd_config)."""

from __future__ import annotations

from nodegc.runtime.containerd_config import sandbox_image_from_config

V3 = """
version = 3
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "registry.k8s.io/pause:3.10"
"""
V2 = """
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
"""


def test_version_3_and_2_name_the_sandbox_image() -> None:
    assert sandbox_image_from_config(V3) == "registry.k8s.io/pause:3.10"
    assert sandbox_image_from_config(V2) == "registry.k8s.io/pause:3.9"


def test_nothing_named_or_not_toml_is_nothing() -> None:
    assert sandbox_image_from_config("version = 3\n") == ""
    assert sandbox_image_from_config("[[[ not toml") == ""
    assert sandbox_image_from_config('plugins = "x"') == ""
