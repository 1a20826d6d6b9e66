"""One-shot copy of a SQLite database to PostgreSQL (``python -m config_manager copy-to-postgres``).

The SQLite file is migrated to the current schema first (what the manager would do when
opening it), then every table is copied in one PostgreSQL transaction: all of it or
nothing. Version rows are inserted in their storage order, so the PostgreSQL triggers
rebuild ``services`` and the outbox exactly as the writes did; the rows the SQLite outbox
still had pending stay pending (the manager publishes them), the others are marked
published. The hash chain, audit log, tokens (hashes only), idempotency claims and
instance reports are copied as they are; tables added by later migrations are copied by
name, column by column. A target holding anything but an empty schema is refused unless
``replace`` is given (then its rows are deleted first, in the same transaction).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .db import audit_sync, migrate, now_iso
from .dialects import PostgresSync, PostgresUrl

__all__ = ["CopyError", "CopyResult", "copy_sqlite_to_postgres"]

# Copied by hand (below), in this order; every other table by name. The publisher lease
# is not data: each database keeps its own.
_SPECIAL: Final = ("schema_migrations", "meta", "services", "versions", "outbox", "publisher_lease")


class CopyError(Exception):
    """The copy cannot be made; nothing was written to the target."""


@dataclass
class CopyResult:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    pending: int = 0  # outbox rows still to publish
    epoch: int = 0
    replaced: bool = False


def _sqlite_tables(src: sqlite3.Connection) -> list[str]:
    rows = src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ).fetchall()
    return [r[0] for r in rows]


def _columns(src: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in src.execute(f"PRAGMA table_info({table})").fetchall()]


def copy_sqlite_to_postgres(
    source: Path, target: PostgresUrl, *, replace: bool = False, actor: str = "cli"
) -> CopyResult:
    """Copy the manager database ``source`` (a SQLite file) to ``target``. Raises
    :class:`CopyError` with a one-line reason (nothing written) when it cannot."""
    import psycopg

    if not source.is_file():
        raise CopyError(f"{source}: no such SQLite file")
    try:
        with open(source, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise CopyError(f"{source}: not a SQLite database")
    except OSError as exc:
        raise CopyError(f"{source}: {exc.strerror or exc}") from None
    probe = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        known = probe.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
    except sqlite3.Error as exc:
        raise CopyError(f"{source}: {exc}") from None
    finally:
        probe.close()
    if not known:
        raise CopyError(f"{source}: not a config manager database (no schema_migrations)")
    migrate(source)
    migrate(target)
    result = CopyResult(replaced=replace)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        tables = _sqlite_tables(src)
        with psycopg.connect(target.url, autocommit=True, application_name="config_manager") as dst:
            dst_tables = {
                r[0]
                for r in dst.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                ).fetchall()
            }
            missing = [t for t in tables if t not in dst_tables]
            if missing:
                raise CopyError(
                    f"the PostgreSQL schema has no table {', '.join(missing)}: a migration "
                    "exists for SQLite only (see config_manager/migrations/README.md)"
                )
            data_tables = sorted(dst_tables - {"schema_migrations", "meta", "publisher_lease"})
            with dst.transaction():
                dst.execute("SET CONSTRAINTS ALL DEFERRED")
                nonempty = [
                    t
                    for t in data_tables
                    if dst.execute(f'SELECT EXISTS (SELECT 1 FROM "{t}")').fetchone() == (True,)  # noqa: S608
                ]
                if nonempty and not replace:
                    raise CopyError(
                        f"the target {target} is not empty (rows in {', '.join(nonempty)}); "
                        "pass --replace to delete them and copy anyway"
                    )
                if nonempty:
                    names = ", ".join(f'"{t}"' for t in data_tables)
                    dst.execute(f"TRUNCATE {names} RESTART IDENTITY")
                _copy(src, dst, tables, result)
                epoch = src.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
                result.epoch = int(epoch[0])
                audit_sync(
                    PostgresSync(dst),
                    actor=actor,
                    action="database.copy",
                    detail={"from": str(source), "rows": result.rows, "replaced": replace},
                )
    except sqlite3.Error as exc:
        raise CopyError(f"{source}: {exc}") from None
    except psycopg.Error as exc:
        raise CopyError(f"{target}: {str(exc).strip() or type(exc).__name__}") from None
    finally:
        src.close()
    return result


def _copy(src: sqlite3.Connection, dst: Any, tables: list[str], result: CopyResult) -> None:
    # meta: every key (the epoch included) replaces the target's.
    for key, value in src.execute("SELECT key, value FROM meta").fetchall():
        dst.execute(
            "INSERT INTO meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
    result.rows["meta"] = src.execute("SELECT COUNT(*) FROM meta").fetchone()[0]
    # versions in storage order: the triggers add services and outbox rows as the writes did.
    cols = [c for c in _columns(src, "versions")]
    names = ", ".join(cols)
    marks = ", ".join(["%s"] * len(cols))
    with dst.cursor() as cur:
        cur.executemany(
            f"INSERT INTO versions ({names}) VALUES ({marks})",  # noqa: S608
            src.execute(f"SELECT {names} FROM versions ORDER BY rowid").fetchall(),  # noqa: S608
        )
    result.rows["versions"] = src.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
    # services: what the triggers cannot know (retirement).
    svc_cols = _columns(src, "services")
    extra = [c for c in svc_cols if c not in ("name", "current_version")]
    rows = src.execute(f"SELECT name, {', '.join(extra)} FROM services").fetchall()  # noqa: S608
    sets = ", ".join(f"{c} = %s" for c in extra)
    with dst.cursor() as cur:
        cur.executemany(
            f"UPDATE services SET {sets} WHERE name = %s",  # noqa: S608
            [(*row[1:], row[0]) for row in rows],
        )
    result.rows["services"] = len(rows)
    # outbox: pending in the target exactly what was pending in the source.
    pending = src.execute(
        "SELECT service, version FROM outbox WHERE published_at IS NULL"
    ).fetchall()
    dst.execute("UPDATE outbox SET published_at = %s", (now_iso(),))
    with dst.cursor() as cur:
        cur.executemany(
            "UPDATE outbox SET published_at = NULL WHERE service = %s AND version = %s", pending
        )
    result.pending = len(pending)
    result.rows["outbox"] = src.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    # every other table, column by column.
    for table in tables:
        if table in _SPECIAL:
            continue
        cols = _columns(src, table)
        names = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join(["%s"] * len(cols))
        rows = src.execute(f'SELECT {names} FROM "{table}"').fetchall()  # noqa: S608
        if rows:
            with dst.cursor() as cur:
                cur.executemany(
                    f'INSERT INTO "{table}" ({names}) VALUES ({marks})',  # noqa: S608
                    rows,
                )
        result.rows[table] = len(rows)
        # identity columns continue after the copied ids
        for (col,) in dst.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = %s AND is_identity = 'YES'",
            (table,),
        ).fetchall():
            dst.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), "  # noqa: S608
                f'GREATEST((SELECT MAX("{col}") FROM "{table}"), 1))',
                (table, col),
            )
