"""Redacted RFC 6902 diffs between two stored documents (secrets: changed or not, no values).

Both documents are compared in plaintext (the manager holds the data keys: the ciphertext
of an unchanged secret differs between versions because every encryption takes a fresh
nonce), then every secret is replaced by the mask before the JSON Patch is computed. A
secret whose plaintext changed appears as an operation whose ``value`` is the mask and
which carries ``"secret": "changed"`` (RFC 6902 tells readers to ignore unknown members);
an unchanged secret produces no operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import jsonpatch

from config_lib import MASK, DataKey, decrypt_secrets, is_encrypted

__all__ = ["redacted_diff"]

_CHANGED: Final = "\x00secret-changed\x00"
_ABSENT: Final = object()


def _redact(stored: Any, plain: Any, other: Any) -> Any:
    """``stored`` with secrets as the mask, or as ``_CHANGED`` where ``other`` differs."""
    if is_encrypted(stored):
        return MASK if other is _ABSENT or plain == other else _CHANGED
    if isinstance(stored, dict) and isinstance(plain, dict):
        return {
            k: _redact(
                v,
                plain.get(k),
                _ABSENT if other is _ABSENT else other.get(k) if isinstance(other, dict) else None,
            )
            for k, v in stored.items()
        }
    if isinstance(stored, list) and isinstance(plain, list):
        return [
            _redact(
                v,
                plain[i] if i < len(plain) else None,
                _ABSENT
                if other is _ABSENT
                else other[i]
                if isinstance(other, list) and i < len(other)
                else None,
            )
            for i, v in enumerate(stored)
        ]
    return stored


def _restore(value: Any) -> tuple[Any, bool]:
    """Replace the changed-secret marker by the mask; says whether one was found."""
    if value == _CHANGED:
        return MASK, True
    if isinstance(value, dict):
        found = False
        out = {}
        for k, v in value.items():
            out[k], hit = _restore(v)
            found = found or hit
        return out, found
    if isinstance(value, list):
        items = [_restore(v) for v in value]
        return [v for v, _ in items], any(hit for _, hit in items)
    return value, False


def _same_json(left: Any, right: Any) -> bool:
    """Whether two JSON values are equal as JSON (``1``, ``1.0`` and ``true`` differ, which
    Python's ``==`` does not see); anything else is compared with ``==`` and its type."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same_json(v, right[k]) for k, v in left.items())
    if isinstance(left, list):
        return len(left) == len(right) and all(
            _same_json(a, b) for a, b in zip(left, right, strict=True)
        )
    return bool(left == right)


def _changed_members(left: Any, right: Any) -> tuple[Any, Any]:
    """``left`` and ``right`` without the top-level members equal in both (as JSON).

    ``make_patch`` makes no operation for them anyway (and moves are only found among
    removed and added values), so the patch is the same; it is just not computed member by
    member through jsonpatch's ``isinstance`` checks against ABCs (most of a write's diff
    time when one field of many changes).
    """
    if not (isinstance(left, dict) and isinstance(right, dict)):
        return left, right
    same = {k for k in left.keys() & right.keys() if _same_json(left[k], right[k])}
    return (
        {k: v for k, v in left.items() if k not in same},
        {k: v for k, v in right.items() if k not in same},
    )


def redacted_diff(
    service: str,
    old: dict[str, Any],
    new: dict[str, Any],
    keys: Sequence[DataKey],
    *,
    plain: tuple[Any, Any] | None = None,
) -> list[dict[str, Any]]:
    """RFC 6902 patch turning ``old`` into ``new`` (stored forms), secrets redacted;
    ``keys`` are the service's data keys (the current one and retired ones). ``plain``:
    both documents already decrypted (else they are decrypted here)."""
    if plain is not None and plain[0] is not None and plain[1] is not None:
        old_plain, new_plain = plain
    else:
        old_plain = decrypt_secrets(old, service=service, keys=keys)
        new_plain = decrypt_secrets(new, service=service, keys=keys)
    left = _redact(old, old_plain, _ABSENT)
    right = _redact(new, new_plain, old_plain)
    left, right = _changed_members(left, right)
    operations: list[dict[str, Any]] = []
    for op in jsonpatch.make_patch(left, right).patch:
        item = dict(op)
        if "value" in item:
            item["value"], secret = _restore(item["value"])
            if secret:
                item["secret"] = "changed"  # noqa: S105 - a state, not a password
        operations.append(item)
    return operations
