"""Opening the SQLite database: pragmas, migrations with a recorded schema version, the epoch.

Migrations are the numbered ``migrations/NNNN_*.sql`` files shipped with the package; each
is applied once, in order, in its own transaction, and recorded in ``schema_migrations``.
This module is synchronous (plain ``sqlite3``) so that the bootstrap and the command line
can use it without an event loop; the app runs it once in a thread before opening its
``aiosqlite`` connection.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Final

__all__ = [
    "PRAGMAS",
    "audit_sync",
    "bump_epoch_sync",
    "connect_sync",
    "migrate",
    "migrations",
    "now_iso",
    "read_epoch_sync",
    "unportable_services",
]

PRAGMAS: Final = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",  # an acknowledged write survives power loss
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def migrations() -> list[tuple[int, str, str]]:
    """``(number, name, sql)`` of every shipped migration, in order."""
    found = []
    for entry in resources.files("config_manager").joinpath("migrations").iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


def connect_sync(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the project's pragmas (autocommit mode)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


def migrate(path: Path) -> int:
    """Create/upgrade the database at ``path``; returns the schema version now recorded.

    A new database also gets its config epoch: the current Unix time in seconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect_sync(path)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for number, name, sql in migrations():
            if number in done:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (number, name, now_iso()),
                )
                conn.execute(f"PRAGMA user_version = {int(number)}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (str(int(time.time())),)
        )
        row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)
    finally:
        conn.close()


def _statements(sql: str) -> list[str]:
    """Split a migration into complete statements (trigger bodies hold ';' too)."""
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete statement at the end of a migration: {pending.strip()!r}")
    return statements


def read_epoch_sync(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    return int(row[0])


def bump_epoch_sync(conn: sqlite3.Connection) -> int:
    """Raise the epoch to ``max(old + 1, now)`` (after a restore or import); returns it."""
    new = max(read_epoch_sync(conn) + 1, int(time.time()))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(new),))
    return new


def audit_sync(
    conn: sqlite3.Connection,
    *,
    actor: str,
    action: str,
    detail: dict[str, object] | None = None,
    service: str | None = None,
) -> None:
    """Record an administrative event made without the server (command line) in the audit log.

    Kept in ``db`` so that every tool writing to the database (``python -m config_manager
    token``/``epoch``, the trust work's ``keys``) records its events the same way.
    """
    import json

    conn.execute(
        "INSERT INTO audit (at, actor, action, outcome, service, detail_json) "
        "VALUES (?, ?, ?, 'ok', ?, ?)",
        (now_iso(), actor, action, service, json.dumps(detail or {}, separators=(",", ":"))),
    )


def unportable_services(path: Path) -> list[tuple[str, str]]:
    """``(service, why)`` for each stored service whose name is not a valid topic level.

    Names with ``.`` were allowed before the name alphabet was narrowed; they must not be
    published (RabbitMQ reads ``.`` as a level separator). Read-only; an absent or new
    database has none.
    """
    from config_lib import InvalidName, validate_name

    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT DISTINCT service FROM versions ORDER BY service").fetchall()
    except sqlite3.OperationalError:  # not migrated yet: no table, no services
        return []
    finally:
        conn.close()
    found = []
    for (name,) in rows:
        try:
            validate_name(name)
        except InvalidName as exc:
            found.append((name, str(exc)))
    return found
