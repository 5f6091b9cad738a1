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
from nodegc.config.settings import MAX_AGE
from nodegc.durations import format_duration, parse_duration

log = logging.getLogger("nodegc.cli")


class UsageError(Exception):
    """Bad flags or settings: exit 2 with one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _bool_arg(text: str) -> bool:
    """A boolean flag as the kubelet writes one: `--flag` (true) or `--flag=true|false`."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be true or false")
    return value == "true"


def _list_arg(text: str) -> list[str]:
    """A list flag as the kubelet writes one: comma-separated; '' is the empty list."""
    return [item.strip() for item in text.split(",")] if text.strip() else []


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
        "--image-gc-minimum-free",
        "images",
        "minimum_free",
        str,
        'free space (a size: "20GiB") below which image GC starts, 0 = off (images.minimum_free)',
    ),
    (
        "--image-gc-target-free",
        "images",
        "target_free",
        str,
        "free space image GC brings the disk back to, 0 = minimum_free (images.target_free)",
    ),
    (
        "--image-gc-lookahead",
        "images",
        "lookahead",
        str,
        "run: start image GC when usage is projected to cross the high threshold within this "
        "time at the current fill rate, 0s = off (images.lookahead)",
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
    # Every other key of config.example.toml (issue 23): the kubelet's name where it has one.
    *[
        ("--runtime-type", "runtime", "type", str, "docker or cri (runtime.type)"),
        (
            "--pod-infra-container-image",
            "runtime",
            "sandbox_image",
            str,
            "cri: the sandbox (pause) image, never removed (runtime.sandbox_image)",
        ),
        (
            "--runtime-request-timeout",
            "runtime",
            "timeout",
            str,
            "time limit of one engine request (runtime.timeout, 30s)",
        ),
        (
            "--max-concurrent-removals",
            "runtime",
            "max_concurrent_removals",
            int,
            "removals in flight at once (runtime.max_concurrent_removals, 4)",
        ),
        (
            "--pinned-images",
            "images",
            "pinned",
            _list_arg,
            "comma-separated globs on tags and digests that always stay, '' = none (images.pinned)",
        ),
        (
            "--image-filesystem-path",
            "images",
            "filesystem_path",
            str,
            "where to measure the image filesystem (images.filesystem_path)",
        ),
        (
            "--image-gc-period",
            "images",
            "gc_period",
            str,
            "run: period of image GC (images.gc_period, 5m)",
        ),
        (
            "--image-pressure-check-period",
            "images",
            "pressure_check_period",
            str,
            "run: how often the disk is measured, 0s = off (images.pressure_check_period, 10s)",
        ),
        (
            "--maximum-dead-container-age",
            "containers",
            "maximum_age",
            str,
            "remove dead containers stopped this long ago, 0s = off (containers.maximum_age)",
        ),
        (
            "--container-gc-period",
            "containers",
            "gc_period",
            str,
            "run: period of container GC (containers.gc_period, 1m)",
        ),
        (
            "--remove-containers-under-disk-pressure",
            "containers",
            "remove_under_disk_pressure",
            _bool_arg,
            "dead containers the caps keep go too under disk pressure "
            "(containers.remove_under_disk_pressure, true)",
        ),
        (
            "--build-cache-enabled",
            "build_cache",
            "enabled",
            _bool_arg,
            "BuildKit build cache GC (build_cache.enabled, true)",
        ),
        (
            "--build-cache-minimum-age",
            "build_cache",
            "minimum_age",
            str,
            "a record used less than this long ago stays (build_cache.minimum_age, 10m)",
        ),
        (
            "--build-cache-maximum-age",
            "build_cache",
            "maximum_age",
            str,
            "remove records unused this long, 0s = off (build_cache.maximum_age)",
        ),
        (
            "--metrics-enabled",
            "metrics",
            "enabled",
            _bool_arg,
            "run: the HTTP listener (metrics.enabled, true)",
        ),
        (
            "--metrics-bind-address",
            "metrics",
            "address",
            str,
            "run: host:port of the HTTP listener (metrics.address, 127.0.0.1:9797)",
        ),
        (
            "--metrics-allowed-hosts",
            "metrics",
            "allowed_hosts",
            _list_arg,
            "run: comma-separated Host names answered besides loopback names and IP addresses "
            "(metrics.allowed_hosts)",
        ),
    ],
]
# Other names of a flag: the kubelet's, where nodegc had its own first.
FLAG_ALIASES = {"--runtime-endpoint": ("--container-runtime-endpoint",)}
# The flags of the settings FLAG_SETTINGS does not hold (they have choices): section, key -> flag.
CHOICE_FLAGS = {("log", "format"): "--log-format", ("log", "level"): "--log-level"}


def setting_flags() -> dict[tuple[str, str], str]:
    """(section, key) -> the flag that sets it, for every setting that has one."""
    flags = {(section, key): flag for flag, section, key, *_ in FLAG_SETTINGS}
    return flags | CHOICE_FLAGS


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
        extra: dict[str, Any] = {"nargs": "?", "const": True} if kind is _bool_arg else {}
        group.add_argument(
            flag,
            *FLAG_ALIASES.get(flag, ()),
            dest=f"set_{key}_{_section}",
            type=kind,
            metavar=_metavar(_section, key, kind),
            help=text,
            **extra,
        )
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


def _metavar(section: str, key: str, kind: Callable[[str], Any]) -> str:
    """What a flag's value is, for --help: N, PERCENT, DURATION, true|false, GLOBS or VALUE."""
    if kind is _bool_arg:
        return "true|false"
    if kind is _list_arg:
        return "GLOBS"
    if kind is int:
        return "PERCENT" if key.endswith("_percent") else "N"
    field = getattr(Settings.model_fields[section].annotation, "model_fields", {}).get(key)
    if field is not None and field.annotation is timedelta:
        return "DURATION"
    return {
        "endpoint": "URL",
        "directory": "DIR",
        "address": "HOST:PORT",
        "type": "docker|cri",
        "sandbox_image": "IMAGE",
        "filesystem_path": "PATH",
        "minimum_free": "SIZE",
        "target_free": "SIZE",
    }.get(key, "VALUE")


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
    if value > MAX_AGE:  # `now - since` would overflow
        raise argparse.ArgumentTypeError(
            f"{text!r}: out of range; must be at most {format_duration(MAX_AGE)} "
            f"({MAX_AGE.days} days)"
        )
    return value


def _margin_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer from 0 to 99") from None
    if not 0 <= value <= 99:
        raise argparse.ArgumentTypeError(f"{text!r}: must be from 0 to 99")
    return value
