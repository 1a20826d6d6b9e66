"""The manager's side of the cross-service rules: violations → a 422 problem."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from .compatibility import Violation, check_compatibility
from .problems import Problem

__all__ = ["compatibility_problem", "violation_errors"]


def violation_errors(violations: list[Violation]) -> list[dict[str, object]]:
    """One pydantic-style error per field involved, so editors can mark each field."""
    return [
        {"loc": field.split("."), "msg": v.message, "type": f"compatibility.{v.rule}"}
        for v in violations
        for field in v.fields
    ]


def compatibility_problem(
    configs: Mapping[str, BaseModel], changed: frozenset[str]
) -> Problem | None:
    """A 422 naming every field (of every service) of each rule the change would break.

    Only rules that involve a changed service refuse the change, so an old violation
    between two other services never blocks an unrelated write.
    """
    violations = [v for v in check_compatibility(configs) if changed.intersection(v.services)]
    if not violations:
        return None
    detail = "; ".join(f"{v.message} [{', '.join(v.fields)}]" for v in violations)
    return Problem(
        422,
        "Incompatible configuration",
        detail,
        kind="incompatible-config",
        services=sorted({s for v in violations for s in v.services}),
        violations=[v.to_dict() for v in violations],
        errors=violation_errors(violations),
    )
