"""Configuration: nodegc's settings (one validated object) and the node's KubeletConfiguration.

`nodegc.config.settings` holds the settings and their loading (re-exported here, so
`from nodegc.config import Settings` is the usual way in); `nodegc.config.kubelet` reads a
kubelet's config file and turns it into settings overrides.
"""

from nodegc.config.settings import (
    BuildCacheSettings,
    ConfigError,
    ContainerSettings,
    ImageSettings,
    LogSettings,
    MetricsSettings,
    RuntimeSettings,
    Settings,
    StateSettings,
    example_toml,
    format_validation_error,
    load_settings,
    read_toml,
    to_toml,
)

__all__ = [
    "BuildCacheSettings",
    "ConfigError",
    "ContainerSettings",
    "ImageSettings",
    "LogSettings",
    "MetricsSettings",
    "RuntimeSettings",
    "Settings",
    "StateSettings",
    "example_toml",
    "format_validation_error",
    "load_settings",
    "read_toml",
    "to_toml",
]
