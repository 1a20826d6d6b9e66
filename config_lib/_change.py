"""What a change callback receives: the old and new config and which fields changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

__all__ = ["ConfigChange", "ConfigSource", "changed_fields"]

M = TypeVar("M", bound=BaseModel)

ConfigSource = Literal["broker", "lkg", "env", "defaults"]
"""Where the config in force came from."""


@dataclass(frozen=True, slots=True)
class ConfigChange(Generic[M]):
    """One change of the config in force, passed to every ``on_change`` callback.

    ``changed`` holds dotted field paths (``"vad.threshold"``). ``version``/``epoch``/
    ``source`` describe ``new``. ``restore`` is True when the library is putting ``new``
    (the previous config) back because a callback refused the update.
    """

    old: M
    new: M
    changed: frozenset[str]
    version: int | None
    epoch: int | None
    source: ConfigSource
    restore: bool = False


def _diff(old: Any, new: Any, path: str, out: set[str]) -> None:
    if type(old) is type(new) and old == new:
        return  # an unchanged subtree: one comparison (in C for dicts), no walk
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in set(old) | set(new):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                out.add(sub)
            else:
                _diff(old[key], new[key], sub, out)
    else:
        out.add(path)


def changed_fields(
    old: BaseModel,
    new: BaseModel,
    *,
    old_values: Mapping[str, Any] | None = None,
    new_values: Mapping[str, Any] | None = None,
) -> frozenset[str]:
    """Dotted paths of the leaf fields whose values differ (secrets compared by value).

    ``old_values``/``new_values``: the models' ``model_dump()`` when already known.
    """
    if old_values is not None and new_values is not None:
        # The dumps of shared (frozen, cached) configs: libraries of one process applying
        # the same update diff the same two objects, once.
        global _last_diff
        seen = _last_diff
        if seen is not None and seen[0] is old_values and seen[1] is new_values:
            return seen[2]
        result = _changed(old_values, new_values)
        _last_diff = (old_values, new_values, result)
        return result
    # mode="python" keeps SecretStr objects, which compare by their secret value.
    return _changed(
        old.model_dump() if old_values is None else old_values,
        new.model_dump() if new_values is None else new_values,
    )


# The last diff of two given dump objects (compared by identity; they are never changed).
_last_diff: tuple[Mapping[str, Any], Mapping[str, Any], frozenset[str]] | None = None


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> frozenset[str]:
    out: set[str] = set()
    _diff(old, new, "", out)
    out.discard("")
    return frozenset(out)
