"""Cross-service rules: the mechanism (pure). The rules themselves belong to the services.

A package registers a rule in the ``config_manager.rules`` entry-point group
(``name = "package.module:function"``); the entry point's name is the rule's name and its
object a callable ``rule(configs) -> (message, fields) | None``. ``configs`` maps each
service name to its config model as it would be after a write (the proposed one for the
services being written, the stored one for the others); ``fields`` are ``service.field``
paths naming everything the broken rule involves. A rule must return None when a service
it needs is missing from ``configs``.

The manager calls :func:`check_compatibility` before every write (a non-empty result
refuses it with 422) and for ``GET /api/v1/compatibility``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Final

from pydantic import BaseModel

__all__ = ["ENTRY_POINT_GROUP", "RULES", "Rule", "Violation", "check_compatibility", "load_rules"]

ENTRY_POINT_GROUP: Final = "config_manager.rules"
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: its name, a readable message, and the fields involved."""

    rule: str
    message: str
    fields: tuple[str, ...]

    @property
    def services(self) -> tuple[str, ...]:
        """Services whose fields are involved, in order of first mention."""
        return tuple(dict.fromkeys(f.split(".", 1)[0] for f in self.fields))

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "fields": list(self.fields)}


Configs = Mapping[str, BaseModel]
Rule = Callable[[Configs], "tuple[str, tuple[str, ...]] | None"]


def load_rules(group: str = ENTRY_POINT_GROUP) -> Mapping[str, Rule]:
    """Every rule declared in the entry-point group, by name (broken ones skipped, logged)."""
    rules: dict[str, Rule] = {}
    for ep in sorted(entry_points(group=group), key=lambda ep: ep.name):
        try:
            rule = ep.load()
        except (ImportError, AttributeError) as exc:
            _log.error("rule entry point %s=%s cannot be imported: %s", ep.name, ep.value, exc)
            continue
        if not callable(rule):
            _log.error("rule entry point %s=%s is not callable", ep.name, ep.value)
            continue
        rules[ep.name] = rule
    return MappingProxyType(rules)


RULES: Mapping[str, Rule] = load_rules()
"""Every registered rule by name, in the order they are checked (read-only)."""


def check_compatibility(
    configs: Configs, rules: Mapping[str, Rule] | None = None
) -> list[Violation]:
    """Every rule broken by ``configs`` (service name → config model); empty if all hold."""
    found: list[Violation] = []
    for name, rule in (RULES if rules is None else rules).items():
        result = rule(configs)
        if result is not None:
            message, fields = result
            found.append(Violation(name, message, tuple(fields)))
    return found
