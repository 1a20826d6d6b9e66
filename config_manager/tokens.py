"""API tokens: random bearer tokens with a role, stored only as SHA-256 hashes.

A token is 32 random bytes (URL-safe base64) behind a readable prefix. Because it is
high-entropy, a plain SHA-256 is a safe way to store it (no password stretching needed),
and the lookup by hash is exact.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from .db import audit_sync, migrate, now_iso
from .dialects import Target, database_errors, is_integrity_error, open_sync

__all__ = [
    "TOKEN_PREFIX",
    "Role",
    "create_token_sync",
    "hash_token",
    "new_token",
    "validate_token_name",
]

TOKEN_PREFIX: Final = "scm_"  # noqa: S105 - a visible prefix, not a secret
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class Role(StrEnum):
    """Roles in increasing power: each includes the rights of the ones before it."""

    viewer = "viewer"
    editor = "editor"
    admin = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


def new_token() -> str:
    """A fresh random token (shown once, never stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_token_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid token name {name!r}: 1-64 characters from A-Z a-z 0-9 '_' '.' '@' '-'"
        )
    return name


def create_token_sync(
    database: Target,
    name: str,
    role: Role,
    *,
    created_by: str = "cli",
    services: Sequence[str] | None = None,
) -> str:
    """Create a token directly in the database (command line, bootstrap); returns it once.

    ``database``: a SQLite file or a PostgreSQL URL. Raises ValueError if a token with
    that name exists.
    """
    validate_token_name(name)
    migrate(database)
    token = new_token()
    with open_sync(database) as db:
        try:
            with db.transaction():
                db.execute(
                    "INSERT INTO tokens (name, role, token_hash, created_at, created_by, "
                    "services_json) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        role.value,
                        hash_token(token),
                        now_iso(),
                        created_by,
                        json.dumps(sorted(services)) if services else None,
                    ),
                )
                audit_sync(
                    db,
                    actor=created_by,
                    action="token.create",
                    detail={"token": name, "role": role.value, "services": sorted(services or [])},
                )
        except database_errors() as exc:
            if not is_integrity_error(exc):
                raise
            raise ValueError(f"a token named {name!r} already exists") from None
    return token
