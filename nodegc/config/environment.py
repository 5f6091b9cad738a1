"""The NODEGC_ environment read into nested setting values, by pydantic-settings' own reader.

Imported only when the environment names a NODEGC_ variable (`settings._environment`):
pydantic-settings imports asyncio and every source it has (0.05-0.1 s of every start), which a
node configured by its file and flags does not need. The values are returned as read (text, or
what JSON a list or a whole section holds): `Settings` validates them with the file's and the
flags'.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, create_model
from pydantic_settings import BaseSettings, EnvSettingsSource


def read_environment(model: type[BaseModel], prefix: str, delimiter: str) -> dict[str, Any]:
    """`{section: {key: value}}` from the `<prefix><SECTION><delimiter><KEY>` variables (and
    `<prefix><SECTION>` holding a section as JSON), names matched whatever their case. Raises
    ValueError (pydantic-settings' SettingsError) for a value it cannot read."""
    source = EnvSettingsSource(
        _reader(model), env_prefix=prefix, env_nested_delimiter=delimiter, case_sensitive=False
    )
    return dict(source())


@cache
def _reader(model: type[BaseModel]) -> type[BaseSettings]:
    """A settings class with `model`'s fields: what pydantic-settings' reader is built on."""
    fields: dict[str, Any] = {
        name: (field.annotation, field) for name, field in model.model_fields.items()
    }
    return create_model(f"{model.__name__}FromEnvironment", __base__=BaseSettings, **fields)
