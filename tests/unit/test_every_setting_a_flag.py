"""Every setting is a flag: walks the settings model (every leaf field of every section), and for
each one checks that a flag sets it, that `--help` lists the flag, and that setting it by the
flag changes the effective configuration as `nodegc config` prints it."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from nodegc.cli import main
from nodegc.cli.options import build_parser, setting_flags
from nodegc.config import Settings
from nodegc.durations import format_duration

# Values of the text settings that differ from their defaults and are valid.
TEXT_VALUES: dict[tuple[str, str], str] = {
    ("runtime", "type"): "cri",
    ("runtime", "endpoint"): "unix:///run/flag-test.sock",
    ("runtime", "sandbox_image"): "registry.k8s.io/pause:3.10",
    ("images", "pinned"): "flag/one:*,flag/two:*",
    ("images", "filesystem_path"): "/var/lib/flag-test",
    ("images", "minimum_free"): "20GiB",
    ("images", "target_free"): "30GiB",
    ("state", "directory"): "/var/lib/flag-test-state",
    ("metrics", "address"): "127.0.0.1:9999",
    ("metrics", "allowed_hosts"): "nodegc.example,nodegc.kube-system.svc",
    ("log", "format"): "json",
    ("log", "level"): "debug",
}


def leaves() -> list[tuple[str, str]]:
    """Every (section, key) of the settings model."""
    out = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        out += [(section, key) for key in model.model_fields]
    return out


DEFAULTS = Settings.model_validate({}).model_dump()


def other_value(section: str, key: str) -> tuple[str, Any]:
    """(the flag's text, the value `nodegc config` then prints) for a valid non-default value."""
    default = DEFAULTS[section][key]
    if (section, key) in TEXT_VALUES:
        text = TEXT_VALUES[(section, key)]
        return text, text.split(",") if isinstance(default, list) else text
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if isinstance(default, int):
        return str(default + 1), default + 1
    assert isinstance(default, timedelta), (section, key, default)
    longer = format_duration(default + timedelta(hours=1))
    return longer, longer


def commands() -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers, by name."""
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def effective(capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, Any]:
    assert main(["config", "--config", "/dev/null", *flags]) == 0, capsys.readouterr().err
    return tomllib.loads(capsys.readouterr().out)


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the flags speak: no NODEGC_ variable, no DOCKER_HOST."""
    for name in list(os.environ):
        if name.startswith(("NODEGC_", "DOCKER_")):
            monkeypatch.delenv(name)
    yield


def test_the_walk_sees_every_section() -> None:
    """The walk itself: all seven sections, build_cache among them (it had no flags before)."""
    assert {s for s, _ in leaves()} == {
        "runtime", "images", "containers", "build_cache", "state", "metrics", "log"
    }  # fmt: skip
    assert ("build_cache", "minimum_age") in leaves()


@pytest.mark.parametrize(("section", "key"), leaves(), ids=lambda v: str(v))
def test_every_setting_has_a_flag_listed_in_help(section: str, key: str) -> None:
    """A flag sets section.key, and `nodegc run --help` (and every command's) lists it."""
    flag = setting_flags().get((section, key))
    assert flag, f"{section}.{key} has no flag"
    sub = commands()
    for command in ("run", "once", "report", "config"):
        assert flag in sub[command].format_help(), (command, flag)


@pytest.mark.parametrize(("section", "key"), leaves(), ids=lambda v: str(v))
def test_setting_it_by_flag_changes_the_effective_config(
    capsys: pytest.CaptureFixture[str], section: str, key: str
) -> None:
    """`nodegc config FLAG=VALUE` prints VALUE for section.key (and the default without it)."""
    flag = setting_flags()[(section, key)]
    text, shown = other_value(section, key)
    before = effective(capsys)[section][key]
    after = effective(capsys, f"{flag}={text}")[section][key]
    assert after == shown != before


def test_build_cache_minimum_age_by_flag() -> None:
    """The issue's own example: --build-cache-minimum-age exists and is a duration."""
    args = build_parser().parse_args(["config", "--build-cache-minimum-age", "30m"])
    assert args.set_minimum_age_build_cache == "30m"


@pytest.mark.parametrize("flag", ["--build-cache-enabled", "--metrics-enabled"])
def test_a_boolean_flag_alone_means_true_and_takes_true_or_false(flag: str) -> None:
    """The kubelet's way: `--flag`, `--flag=false`; anything else is a usage error (exit 2)."""
    dest = next(a.dest for a in commands()["config"]._actions if flag in a.option_strings)
    assert getattr(build_parser().parse_args(["config", flag]), dest) is True
    assert getattr(build_parser().parse_args(["config", f"{flag}=false"]), dest) is False
    assert main(["config", "--config", "/dev/null", f"{flag}=maybe"]) == 2


def test_pinned_images_empty_is_the_empty_list(capsys: pytest.CaptureFixture[str]) -> None:
    """--pinned-images='' pins nothing (the pause images are no longer pinned by default)."""
    assert effective(capsys, "--pinned-images=")["images"]["pinned"] == []


def test_the_kubelets_runtime_endpoint_flag_is_an_alias(capsys: pytest.CaptureFixture[str]) -> None:
    """--container-runtime-endpoint (the kubelet's name) sets runtime.endpoint."""
    got = effective(capsys, "--container-runtime-endpoint=unix:///run/k.sock")
    assert got["runtime"]["endpoint"] == "unix:///run/k.sock"
