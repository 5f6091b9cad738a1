"""Settings: one validated object, from flags > environment > TOML file > defaults.

Every field documents its unit and its "off" value. Rules that tie fields together (low below
high, maximum age above minimum age) are checked once, before anything talks to an engine: the
sections and their rules are `nodegc.config.sections` (re-exported here); this module assembles
them into `Settings`, loads it (TOML file, environment, flags) and writes it back as TOML.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nodegc.config.sections import (
    MAX_AGE,
    MAX_COUNT,
    MAX_PERIOD,
    MAX_TIMEOUT,
    BuildCacheSettings,
    Cap,
    ContainerSettings,
    Count,
    Duration,
    ImageSettings,
    LogSettings,
    MetricsSettings,
    Percent,
    RuntimeSettings,
    StateSettings,
)

DEFAULT_CONFIG_PATH = Path("/etc/nodegc/config.toml")
ENV_PREFIX = "NODEGC_"
ENV_NESTED_DELIMITER = "__"

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "MAX_AGE",
    "MAX_COUNT",
    "MAX_PERIOD",
    "MAX_TIMEOUT",
    "BuildCacheSettings",
    "Cap",
    "ConfigError",
    "ContainerSettings",
    "Count",
    "Duration",
    "ImageSettings",
    "LogSettings",
    "MetricsSettings",
    "Percent",
    "RuntimeSettings",
    "Settings",
    "StateSettings",
    "example_toml",
    "format_validation_error",
    "load_settings",
    "read_toml",
    "to_toml",
]


class Settings(BaseModel):
    """Every nodegc setting. Build it with `load_settings` (file, environment and flags)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    containers: ContainerSettings = Field(default_factory=ContainerSettings)
    build_cache: BuildCacheSettings = Field(default_factory=BuildCacheSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log: LogSettings = Field(default_factory=LogSettings)


class ConfigError(Exception):
    """A setting is wrong; the message names it, its value and the rule. Exit code 2."""


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config file {path}: not found; give an existing file to --config"
        ) from exc
    except PermissionError as exc:
        raise ConfigError(f"config file {path}: not readable ({exc.strerror})") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"config file {path}: is a directory; give a TOML file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text") from exc


def load_settings(
    config_path: Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build the effective settings.

    `config_path` None means /etc/nodegc/config.toml when it exists. `overrides` are the
    command-line flags, nested by section. Raises ConfigError with one line per problem.
    """
    if config_path is None and DEFAULT_CONFIG_PATH.is_file():
        config_path = DEFAULT_CONFIG_PATH
    file_data = read_toml(config_path) if config_path is not None else {}
    if environ is not None:
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update(environ)
    try:
        return _build(file_data, overrides or {})
    finally:
        if environ is not None:
            os.environ.clear()
            os.environ.update(old)


def _build(file_data: dict[str, Any], overrides: dict[str, Any]) -> Settings:
    # Every problem is reported, one line each: the environment's along with the rest.
    problems, unusable = _env_problems()
    file_data, quoted = _quoted_numbers(file_data)
    problems += quoted
    saved = {name: os.environ.pop(name) for name in unusable}
    try:
        environment = _environment()
    except ValueError as exc:  # pydantic-settings: an environment value it cannot parse
        raise ConfigError("\n".join([*problems, f"environment: {exc}"])) from None
    finally:
        os.environ.update(saved)
    try:
        loaded = Settings.model_validate(_merged(file_data, environment, overrides))
    except ValidationError as exc:
        raise ConfigError("\n".join([*problems, format_validation_error(exc)])) from None
    if problems:
        raise ConfigError("\n".join(problems))
    return loaded


def _environment() -> dict[str, Any]:
    """What the NODEGC_ variables say, nested by section; {} without one, and then
    pydantic-settings (its reader, `nodegc.config.environment`) is not even imported."""
    if not any(name.upper().startswith(ENV_PREFIX) for name in os.environ):
        return {}
    from nodegc.config.environment import read_environment

    return read_environment(Settings, ENV_PREFIX, ENV_NESTED_DELIMITER)


def _merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """The layers merged, a later one winning key by key inside a section (a section given as a
    whole in one and key by key in another), as pydantic-settings merges its sources."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            below = merged.get(key)
            both = isinstance(below, dict) and isinstance(value, dict)
            merged[key] = _merged(below, value) if both else value
    return merged


_LIST_SETTINGS = {
    f"{ENV_PREFIX}{section}{ENV_NESTED_DELIMITER}{key}".upper(): f"{section}.{key}"
    for section, model in Settings.model_fields.items()
    for key, sub in model.annotation.model_fields.items()  # type: ignore[union-attr]
    if getattr(sub.annotation, "__origin__", None) is list
}


_NUMBER_SETTINGS = {
    (section, key)
    for section, model in Settings.model_fields.items()
    for key, sub in model.annotation.model_fields.items()  # type: ignore[union-attr]
    if sub.annotation is int
}


def _quoted_numbers(file_data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the file's data without them, one line per count or percentage it gives as a string).

    TOML has numbers: a quoted one ("85", "85%") is a mistake, refused rather than read."""
    problems = []
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in file_data.items()}
    for section, key in sorted(_NUMBER_SETTINGS):
        table = data.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if isinstance(value, str):
            del table[key]  # type: ignore[union-attr]
            problems.append(
                f"{section}.{key} = {value!r} (config file): a number is written without "
                "quotes, e.g. 85"
            )
    return data, problems


def _env_problems() -> tuple[list[str], list[str]]:
    """(one line per NODEGC_ variable that names no setting (a typo: said, not ignored) or holds
    a list that is not JSON; their names, left out of the reading so that each is said once)."""
    known = {
        f"{ENV_PREFIX}{section}{ENV_NESTED_DELIMITER}{key}".upper()
        for section, model in Settings.model_fields.items()
        for key in model.annotation.model_fields  # type: ignore[union-attr]
    }
    known |= {f"{ENV_PREFIX}{section}".upper() for section in Settings.model_fields}
    problems: list[str] = []
    unusable: list[str] = []
    for name, value in sorted(os.environ.items()):
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known:
            unusable.append(name)
            problems.append(
                f"environment variable {name}: names no setting; the form is "
                f"NODEGC_<SECTION>__<KEY>, e.g. NODEGC_IMAGES__HIGH_THRESHOLD_PERCENT"
            )
        elif name.upper() in _LIST_SETTINGS:
            setting = _LIST_SETTINGS[name.upper()]
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if not isinstance(parsed, list):
                unusable.append(name)
                problems.append(
                    f"{setting} = {value!r} (environment variable {name}): a list is written "
                    f"as JSON there, e.g. {name}='[\"registry.k8s.io/pause:*\"]'"
                )
    return problems, unusable


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: `section.key = value: rule`."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown setting; check its spelling (see config.example.toml)")
        elif err["type"] == "value_error" and len(err["loc"]) <= 1:
            lines.append(msg)  # a section's cross-field rule: the message names its fields
        elif err["type"] == "missing":
            lines.append(f"{loc}: required")
        else:
            value = err.get("input")
            shown = f" = {value!r}" if not isinstance(value, dict) else ""
            lines.append(f"{loc}{shown}: {_lower_first(msg)}{_range_note(err['loc'])}")
    return "\n".join(lines)


def _range_note(loc: tuple[Any, ...]) -> str:
    """'; the range is LOW to HIGH' for a number setting that has one, else ''."""
    if len(loc) != 2 or loc[0] not in Settings.model_fields:
        return ""
    section = Settings.model_fields[str(loc[0])].annotation
    field = getattr(section, "model_fields", {}).get(str(loc[1]))
    if field is None:
        return ""
    low = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
    high = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    return f" (the range is {low} to {high})" if low is not None and high is not None else ""


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def to_toml(settings: Settings) -> str:
    """The effective settings as TOML, in the same form as config.example.toml."""
    data = settings.model_dump(mode="json")
    out: list[str] = []
    for section, values in data.items():
        out.append(f"[{section}]")
        for key, value in values.items():
            out.append(f"{key} = {_toml_value(value)}")
        out.append("")
    return "\n".join(out)


def example_toml() -> str:
    """Every setting with its default and what it means: the text of config.example.toml."""
    defaults = Settings.model_validate({}).model_dump(mode="json")
    defaults["runtime"]["endpoint"] = "unix:///var/run/docker.sock"
    out = [
        "# nodegc configuration: every setting, with its default.",
        "# Precedence: command-line flags > NODEGC_<SECTION>__<KEY> environment > this file >",
        '# defaults. Durations are Go/kubelet strings: "90s", "2m", "1h30m", "0s".',
        "# Unknown keys are errors. Default path: /etc/nodegc/config.toml (or --config FILE).",
        "",
    ]
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert model is not None and issubclass(model, BaseModel)
        out.append(f"# {(model.__doc__ or '').strip()}")
        out.append(f"[{section}]")
        for key, sub in model.model_fields.items():
            if sub.description:
                out.append(f"# {sub.description}")
            out.append(f"{key} = {_toml_value(defaults[section][key])}")
        out.append("")
    return "\n".join(out)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
