"""Fallback config sources used when no signed config is available: env, then defaults.

Precedence, written once (see also ConfigLibrary startup): a signed config (the newest of
the broker's retained message and the LKG file) > environment variables
``CONFIG_<SERVICE>_<FIELD>`` (nested fields joined with ``__``) over the model's defaults >
the model's defaults alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._exceptions import InvalidConfig
from ._topics import validate_name

__all__ = ["env_prefix", "from_defaults", "from_env", "has_env", "validation_summary"]

M = TypeVar("M", bound=BaseModel)


def env_prefix(service: str) -> str:
    """``CONFIG_<SERVICE>_``: the service name upper-cased, ``-`` turned into ``_``."""
    return "CONFIG_" + validate_name(service).replace("-", "_").upper() + "_"


def validation_summary(exc: ValidationError) -> str:
    """A ValidationError as text that names fields and problems but never input values."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    return f"{exc.error_count()} validation error(s): " + "; ".join(parts)


def has_env(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """True if any variable with the service's prefix is set."""
    prefix = env_prefix(service)
    env = os.environ if environ is None else environ
    return any(name.upper().startswith(prefix) for name in env)


def from_env(model: type[M], service: str) -> M:
    """The model built from ``CONFIG_<SERVICE>_*`` variables over its defaults.

    Uses pydantic-settings' environment source through a subclass of the model made on
    the fly, then validates the result with the model itself so the caller gets an
    instance of exactly ``model``. Raises :class:`InvalidConfig` without input values.
    """
    config = SettingsConfigDict(
        env_prefix=env_prefix(service),
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
        env_file=None,
    )
    namespace: dict[str, Any] = {"model_config": config, "__module__": model.__module__}
    settings_cls = type(f"{model.__name__}FromEnv", (model, BaseSettings), namespace)
    try:
        values = settings_cls()
        return model.model_validate({name: getattr(values, name) for name in model.model_fields})
    except ValidationError as exc:
        summary = validation_summary(exc)
        raise InvalidConfig(f"environment {env_prefix(service)}*: {summary}") from None


def from_defaults(model: type[M]) -> M:
    """The model's defaults alone; raises :class:`InvalidConfig` if a field has none."""
    try:
        return model()
    except ValidationError as exc:
        raise InvalidConfig(f"model defaults: {validation_summary(exc)}") from None
