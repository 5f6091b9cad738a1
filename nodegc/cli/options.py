"""The command line's options: the parser, the flags that set settings, and the settings they make.

Exit codes: 0 done; 1 finished with failures or the image target not reached; 2 usage or
configuration error; 3 engine unreachable.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from nodegc import __version__
from nodegc.config import Settings, load_settings
from nodegc.durations import parse_duration

log = logging.getLogger("nodegc.cli")


class UsageError(Exception):
    """Bad flags or settings: exit 2 with one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


# (flag, section, key, type, help) — the kubelet's flag names where they exist.
FLAG_SETTINGS: list[tuple[str, str, str, Callable[[str], Any], str]] = [
    ("--runtime-endpoint", "runtime", "endpoint", str, "engine address (runtime.endpoint)"),
    ("--state-dir", "state", "directory", str, "state directory (state.directory)"),
    (
        "--image-gc-high-threshold",
        "images",
        "high_threshold_percent",
        int,
        "percent of disk usage that starts image GC (images.high_threshold_percent, 85)",
    ),
    (
        "--image-gc-low-threshold",
        "images",
        "low_threshold_percent",
        int,
        "percent of disk usage image GC frees down to (images.low_threshold_percent, 80)",
    ),
    (
        "--image-gc-inode-high-threshold",
        "images",
        "inode_high_threshold_percent",
        int,
        "percent of inode usage that starts image GC, 100 = off "
        "(images.inode_high_threshold_percent, 95)",
    ),
    (
        "--image-gc-inode-low-threshold",
        "images",
        "inode_low_threshold_percent",
        int,
        "percent of inode usage image GC frees down to (images.inode_low_threshold_percent, 90)",
    ),
    (
        "--minimum-image-ttl-duration",
        "images",
        "minimum_age",
        str,
        "minimum age of an image before it may go (images.minimum_age, 2m)",
    ),
    (
        "--image-maximum-gc-age",
        "images",
        "maximum_age",
        str,
        "remove images unused for this long, 0s = off (images.maximum_age)",
    ),
    (
        "--image-keep-per-repository",
        "images",
        "keep_per_repository",
        int,
        "keep the newest N images of each repository, older unused ones go (superseded), "
        "0 = off (images.keep_per_repository)",
    ),
    (
        "--minimum-container-ttl-duration",
        "containers",
        "minimum_age",
        str,
        "minimum time since a container stopped (containers.minimum_age, 0s)",
    ),
    (
        "--maximum-dead-containers-per-container",
        "containers",
        "max_per_pod_container",
        int,
        "dead containers kept per pod container, <0 = no limit (1)",
    ),
    (
        "--maximum-dead-containers",
        "containers",
        "max_dead_containers",
        int,
        "dead containers kept on the node, <0 = no limit (-1)",
    ),
]


def _shared_options() -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    group = shared.add_argument_group("settings (flags > NODEGC_* environment > config file)")
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML config file (default: /etc/nodegc/config.toml when it exists)",
    )
    for flag, _section, key, kind, text in FLAG_SETTINGS:
        group.add_argument(flag, dest=f"set_{key}_{_section}", type=kind, help=text)
    group.add_argument(
        "--kubelet-config",
        type=Path,
        metavar="FILE",
        help="act below this KubeletConfiguration's image GC (e.g. /var/lib/kubelet/config.yaml):"
        " thresholds = the kubelet's minus --kubelet-margin, minimum age at least the kubelet's",
    )
    group.add_argument(
        "--kubelet-margin",
        type=_margin_arg,
        metavar="N",
        help="percentage points below the kubelet's thresholds (with --kubelet-config; 5)",
    )
    group.add_argument("--log-format", choices=["auto", "json", "text"], help="log format")
    group.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    return shared


def build_parser() -> argparse.ArgumentParser:
    shared = _shared_options()
    parser = _Parser(
        prog="nodegc",
        description="Garbage-collect container images and dead containers the kubelet's way.",
    )
    parser.add_argument("--version", action="version", version=f"nodegc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "report", parents=[shared], help="dry run: show what one cycle would remove and why"
    )
    p.add_argument("--output", "-o", choices=["table", "json"], default="table")

    p = sub.add_parser("once", parents=[shared], help="run one cycle: containers, then images")
    p.add_argument("--dry-run", action="store_true", help="plan and show, change nothing")
    p.add_argument("--output", "-o", choices=["table", "json"], default="table")

    sub.add_parser(
        "run", parents=[shared], help="run the daemon: scheduled GC, disk watch, metrics, health"
    )

    p = sub.add_parser("status", parents=[shared], help="show the running daemon's conditions")
    p.add_argument("--output", "-o", choices=["table", "json"], default="table")

    p = sub.add_parser("history", parents=[shared], help="show what nodegc removed (audit record)")
    p.add_argument(
        "--since", type=_duration_arg, metavar="DURATION", help="only this recent, e.g. 1h"
    )
    p.add_argument("--output", "-o", choices=["table", "json"], default="table")

    p = sub.add_parser("config", parents=[shared], help="print the effective configuration")
    p.add_argument("--check", action="store_true", help="only validate it")
    p.add_argument(
        "--example", action="store_true", help="print every setting with its default, commented"
    )
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The settings given as flags, nested by section."""
    overrides: dict[str, dict[str, Any]] = {}
    for _flag, section, key, _kind, _text in FLAG_SETTINGS:
        value = getattr(args, f"set_{key}_{section}", None)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    if args.log_format:
        overrides.setdefault("log", {})["format"] = args.log_format
    if args.log_level:
        overrides.setdefault("log", {})["level"] = args.log_level
    return overrides


def settings_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The flags' overrides on top of those derived from --kubelet-config (flags win)."""
    overrides = overrides_from(args)
    if args.kubelet_config is None:
        if args.kubelet_margin is not None:
            raise UsageError("nodegc: --kubelet-margin needs --kubelet-config")
        return overrides
    from nodegc.config.kubelet import (
        DEFAULT_MARGIN,
        merge_overrides,
        overrides_from_kubelet,
        read_kubelet_config,
    )

    kubelet = read_kubelet_config(args.kubelet_config)
    margin = DEFAULT_MARGIN if args.kubelet_margin is None else args.kubelet_margin
    own = load_settings(args.config, overrides).images
    return merge_overrides(overrides_from_kubelet(kubelet, margin, base=own), overrides)


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, settings_overrides(args))


def _duration_arg(text: str) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r}: must not be negative")
    return value


def _margin_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer from 0 to 99") from None
    if not 0 <= value <= 99:
        raise argparse.ArgumentTypeError(f"{text!r}: must be from 0 to 99")
    return value
