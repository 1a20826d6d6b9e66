"""The schema registry: which services exist and which pydantic model validates each one.

Python packages add services through the ``config_manager.schemas`` entry-point group
(``name = "package.module:Model"``); tests and embedders may also register models directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from config_lib import MASK, InvalidName, validate_name

__all__ = ["ENTRY_POINT_GROUP", "SchemaRegistry", "secret_schema"]

ENTRY_POINT_GROUP: Final = "config_manager.schemas"
_log = logging.getLogger(__name__)


class SchemaRegistry:
    """Service name → pydantic model class."""

    def __init__(self, models: Mapping[str, type[BaseModel]] | None = None) -> None:
        self._models: dict[str, type[BaseModel]] = {}
        for name, model in (models or {}).items():
            self.register(name, model)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> SchemaRegistry:
        """Load every model declared in the entry-point group (broken ones are skipped, logged)."""
        registry = cls()
        for ep in entry_points(group=group):
            try:
                model = ep.load()
            except ImportError as exc:
                _log.error(
                    "schema entry point %s=%s cannot be imported: %s", ep.name, ep.value, exc
                )
                continue
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                _log.error("schema entry point %s=%s is not a pydantic model", ep.name, ep.value)
                continue
            try:
                registry.register(ep.name, model)
            except InvalidName as exc:
                _log.error("schema entry point %s=%s is skipped: %s", ep.name, ep.value, exc)
        return registry

    def register(self, service: str, model: type[BaseModel]) -> None:
        validate_name(service)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"the model of {service!r} must be a pydantic BaseModel subclass")
        self._models[service] = model

    def get(self, service: str) -> type[BaseModel] | None:
        return self._models.get(service)

    def __contains__(self, service: object) -> bool:
        return service in self._models

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._models))

    def __len__(self) -> int:
        return len(self._models)

    def defaults(self, service: str) -> BaseModel | None:
        """The model built from its defaults, or None when it has required fields."""
        model = self._models[service]
        try:
            return model()
        except ValidationError:
            return None


def secret_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with every secret field marked ``"x-secret": true``.

    Pydantic already renders ``SecretStr`` as ``{"type": "string", "format": "password",
    "writeOnly": true}``; the extra marker and the mask value make it explicit for editors.
    """
    schema = model.model_json_schema()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("format") == "password" and node.get("writeOnly") is True:
                node["x-secret"] = True
                node["x-mask"] = MASK
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema
