"""Named presets: the mechanism (pure, no IO). The presets themselves belong to the services.

A package registers a preset in the ``config_manager.presets`` entry-point group
(``name = "package.module:OBJECT"``); the entry point's name is the preset's name and
its object a mapping ``{"description": str, "patches": {service: {field: value}}}``.

Each service's patch is a JSON Merge Patch (RFC 7396). The manager applies each to that
service's current config, checks the cross-service rules of
:mod:`config_manager.compatibility` on the result, and commits all services' new
versions in one transaction (both are published, or neither). A preset that sets every
field it owns (its patch's keys) gives the same documents whatever was current before.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Final

from config_lib import validate_name

__all__ = ["ENTRY_POINT_GROUP", "PRESETS", "Preset", "get_preset", "load_presets", "preset_names"]

ENTRY_POINT_GROUP: Final = "config_manager.presets"
JsonPatch = Mapping[str, Any]
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Preset:
    """A named change: a description and one JSON Merge Patch per service it touches."""

    name: str
    description: str
    patches: Mapping[str, JsonPatch]

    @property
    def services(self) -> tuple[str, ...]:
        """Services this preset changes, sorted."""
        return tuple(sorted(self.patches))

    @property
    def fields(self) -> dict[str, tuple[str, ...]]:
        """The fields this preset owns (sets on every apply), per service."""
        return {svc: tuple(sorted(patch)) for svc, patch in sorted(self.patches.items())}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``GET /api/v1/presets``)."""
        return {
            "name": self.name,
            "description": self.description,
            "patches": {svc: _plain(patch) for svc, patch in self.patches.items()},
        }

    @classmethod
    def from_data(cls, name: str, data: Any) -> Preset:
        """Build (read-only) from an entry point's object; ``ValueError`` if malformed."""
        validate_name(name)
        if not isinstance(data, Mapping):
            raise ValueError("a preset must be a mapping with 'description' and 'patches'")
        description, patches = data.get("description"), data.get("patches")
        if not isinstance(description, str) or not description.strip():
            raise ValueError("a preset needs a non-empty 'description'")
        if not isinstance(patches, Mapping) or not patches:
            raise ValueError("a preset needs 'patches': one merge patch per service")
        frozen: dict[str, JsonPatch] = {}
        for service, patch in patches.items():
            validate_name(service)
            if not isinstance(patch, Mapping) or not patch:
                raise ValueError(f"the patch for {service!r} must be a non-empty mapping")
            frozen[service] = _freeze(patch)
        return cls(name, description, MappingProxyType(frozen))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def load_presets(group: str = ENTRY_POINT_GROUP) -> Mapping[str, Preset]:
    """Every preset declared in the entry-point group (broken ones skipped, logged)."""
    presets: dict[str, Preset] = {}
    for ep in sorted(entry_points(group=group), key=lambda ep: ep.name):
        try:
            presets[ep.name] = Preset.from_data(ep.name, ep.load())
        except (ImportError, AttributeError, ValueError) as exc:
            _log.error("preset entry point %s=%s is unusable: %s", ep.name, ep.value, exc)
    return MappingProxyType(presets)


PRESETS: Mapping[str, Preset] = load_presets()
"""Every registered preset by name (read-only)."""


def preset_names() -> list[str]:
    """Names of all presets, sorted."""
    return sorted(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called ``name``; raises ``KeyError`` naming the known presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(preset_names())}") from None
