"""Opening the database: migrations with a recorded schema version, the epoch.

Migrations are the numbered ``migrations/<dialect>/NNNN_*.sql`` files shipped with the
package, one folder per dialect (``sqlite``, ``postgresql``; see ``migrations/README.md``):
each is applied once, in order, in its own transaction, and recorded in
``schema_migrations``. Both folders hold the same numbers. This module is synchronous so
that the bootstrap and the command line can use it without an event loop; the app runs it
once in a thread before opening its async connection. A database is named by a target: a
SQLite file (:class:`~pathlib.Path`) or a :class:`~config_manager.dialects.PostgresUrl`.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Final

from .dialects import (
    PG_MIGRATE_LOCK,
    SQLITE_PRAGMAS,
    Dialect,
    PostgresUrl,
    SyncDatabase,
    Target,
    open_sync,
)

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

PRAGMAS: Final = SQLITE_PRAGMAS
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def migrations(dialect: Dialect = "sqlite") -> list[tuple[int, str, str]]:
    """``(number, name, sql)`` of every shipped migration of ``dialect``, in order."""
    found = []
    folder = resources.files("config_manager").joinpath("migrations").joinpath(dialect)
    for entry in folder.iterdir():
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


def migrate(target: Target) -> int:
    """Create/upgrade the database at ``target``; returns the schema version now recorded.

    A new database also gets its config epoch: the current Unix time in seconds.
    """
    if isinstance(target, PostgresUrl):
        return _migrate_postgres(target)
    path = target
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect_sync(path)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for number, name, sql in migrations("sqlite"):
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


def _migrate_postgres(url: PostgresUrl) -> int:
    """PostgreSQL: each migration file is one script run in its own transaction; a session
    advisory lock makes managers starting together migrate one after the other."""
    import psycopg

    with psycopg.connect(url.url, autocommit=True, application_name="config_manager") as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (PG_MIGRATE_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for number, name, sql in migrations("postgresql"):
                if number in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())  # no parameters: a multi-statement script
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) "
                        "VALUES (%s, %s, %s)",
                        (number, name, now_iso()),
                    )
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('epoch', %s) ON CONFLICT (key) DO NOTHING",
                (str(int(time.time())),),
            )
            row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
            return int(row[0] or 0) if row else 0
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (PG_MIGRATE_LOCK,))


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


def read_epoch_sync(conn: sqlite3.Connection | SyncDatabase) -> int:
    rows = list(conn.execute("SELECT value FROM meta WHERE key = 'epoch'"))
    return int(rows[0][0])


def bump_epoch_sync(conn: sqlite3.Connection | SyncDatabase) -> int:
    """Raise the epoch to ``max(old + 1, now)`` (after a restore or import); returns it."""
    new = max(read_epoch_sync(conn) + 1, int(time.time()))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(new),))
    return new


def audit_sync(
    conn: sqlite3.Connection | SyncDatabase,
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


def unportable_services(target: Target) -> list[tuple[str, str]]:
    """``(service, why)`` for each stored service whose name is not a valid topic level.

    Names with ``.`` were allowed before the name alphabet was narrowed; they must not be
    published (RabbitMQ reads ``.`` as a level separator). Read-only; an absent or new
    database has none.
    """
    from config_lib import InvalidName, validate_name

    query = "SELECT DISTINCT service FROM versions ORDER BY service"
    if isinstance(target, PostgresUrl):
        with open_sync(target) as db:
            exists = db.execute("SELECT to_regclass('versions') IS NOT NULL")[0][0]
            rows = db.execute(query) if exists else []
    else:
        if not target.exists():
            return []
        conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
        try:
            rows = conn.execute(query).fetchall()
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
