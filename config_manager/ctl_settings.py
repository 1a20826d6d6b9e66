"""Settings of ``configctl``: flags win over ``CONFIGCTL_*`` variables, which win over the
config file (``CONFIGCTL_CONFIG``, default ``~/.config/configctl.toml``)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CtlSettings", "load_ctl_settings"]


class CtlSettings(BaseSettings):
    """Where the manager is and how to reach it."""

    model_config = SettingsConfigDict(env_prefix="CONFIGCTL_", extra="ignore")

    url: str | None = Field(None, description="manager base URL, e.g. http://127.0.0.1:8081")
    token: str | None = Field(None, description="API token")
    token_file: Path | None = Field(None, description="file holding the API token")
    trust: Path | None = Field(None, description="trust store (PEM) for verify/watch")
    mqtt_url: str | None = Field(None, description="broker URL for watch (mqtt://user:pw@h:p)")
    config: Path = Field(Path("~/.config/configctl.toml"), description="config file")
    timeout_s: float = 20.0
    editor: str = Field("vi", validation_alias=AliasChoices("CONFIGCTL_EDITOR", "VISUAL", "EDITOR"))


def load_ctl_settings(**flags: Any) -> CtlSettings:
    """Flags (non-None) over the environment over the config file."""
    env = CtlSettings()
    path = Path(flags.get("config") or env.config).expanduser()
    file_values: dict[str, Any] = {}
    if path.is_file():
        with path.open("rb") as handle:
            file_values = tomllib.load(handle)
    merged: dict[str, Any] = {}
    for name in CtlSettings.model_fields:
        if name in ("config", "editor"):
            continue
        if flags.get(name) is not None:
            merged[name] = flags[name]
        elif name in env.model_fields_set:
            merged[name] = getattr(env, name)
        elif name in file_values:
            merged[name] = file_values[name]
    return CtlSettings(**merged, config=path)
