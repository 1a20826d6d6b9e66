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
import sqlite3
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Final

from .db import audit_sync, connect_sync, migrate, now_iso

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
    db_path: Path,
    name: str,
    role: Role,
    *,
    created_by: str = "cli",
    services: Sequence[str] | None = None,
) -> str:
    """Create a token directly in the database (command line, bootstrap); returns it once.

    Raises ValueError if a token with that name exists.
    """
    validate_token_name(name)
    migrate(db_path)
    token = new_token()
    conn = connect_sync(db_path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO tokens (name, role, token_hash, created_at, created_by, services_json) "
            "VALUES (?, ?, ?, ?, ?, ?)",
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
            conn,
            actor=created_by,
            action="token.create",
            detail={"token": name, "role": role.value, "services": sorted(services or [])},
        )
        conn.execute("COMMIT")
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK")
        raise ValueError(f"a token named {name!r} already exists") from None
    finally:
        conn.close()
    return token
