"""The two SQL databases the manager runs on: SQLite (the embedded default) and PostgreSQL.

Everything that differs between them lives here, behind two small interfaces:

* :class:`Database` (async): what :class:`~config_manager.store.ConfigStore` runs its
  queries through. One connection, one statement at a time (the store serialises them).
* :class:`SyncDatabase`: what the command line and the bootstrap use without an event loop.

Queries are written once, with ``?`` placeholders and SQL both dialects accept
(``INSERT ... ON CONFLICT``, ``RETURNING``); the PostgreSQL side turns ``?`` into ``%s``.
What cannot be written once is a property of the dialect: the column giving the storage
order of version rows (:attr:`Database.row_order`), how a write transaction starts
(:meth:`Database.begin`), relaxed durability for bookkeeping writes
(:meth:`Database.relaxed_durability`), and which errors are storage faults.

A transaction whose statements are known up front (a group commit) is written once as a
*script*: a generator yielding :class:`Statement` objects and receiving each one's result
(its error thrown in at the ``yield``). :meth:`Database.run_script` runs it statement by
statement; SQLite runs the whole script in one hand-over to its connection's thread
instead of one per statement (each hand-over costs two thread wake-ups, more than the
statement itself while the event loop has other work).

A database is named by a *target*: a :class:`~pathlib.Path` (a SQLite file) or a
:class:`PostgresUrl` (``CONFIG_MANAGER_DATABASE_URL``). See ``migrations/README.md`` for
the per-dialect migration layout.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import aiosqlite
    import psycopg

__all__ = [
    "DIALECTS",
    "Database",
    "Dialect",
    "PostgresUrl",
    "Script",
    "Statement",
    "SyncDatabase",
    "Target",
    "database_errors",
    "dialect_of",
    "is_integrity_error",
    "open_database",
    "open_sync",
]

Dialect = Literal["sqlite", "postgresql"]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a :data:`Script`."""

    sql: str
    params: Sequence[Any] = ()
    rows: bool = False  # send back its rows (a query, ``... RETURNING``), else its row count


Script = Generator[Statement, Any, _T]
"""A transaction's statements: each ``yield`` gets the statement's rows or row count, or
has the statement's error raised where it stands."""
DIALECTS: Final[tuple[Dialect, ...]] = ("sqlite", "postgresql")

SQLITE_PRAGMAS: Final = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",  # an acknowledged write survives power loss
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)

# pg_advisory_xact_lock key serialising every write transaction of every manager on one
# PostgreSQL database (cross-service rules hold under concurrent writes), and the session
# lock key held while migrating (replicas starting together migrate once).
PG_WRITE_LOCK: Final = 0x636F6E666967  # "config"
PG_MIGRATE_LOCK: Final = 0x6D6967726174  # "migrat"
PG_IDLE_IN_TRANSACTION_MS: Final = 10_000

# SQLite primary result codes that mean "the storage failed", not "the query is wrong":
# BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB.
_SQLITE_STORAGE_CODES: Final = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})


@dataclass(frozen=True, slots=True)
class PostgresUrl:
    """A ``postgresql://`` URL; its string form masks the password (safe to log)."""

    url: str = field(repr=False)

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"not a PostgreSQL URL (postgresql://user:password@host:port/database): "
                f"scheme {scheme!r}"
            )

    def __str__(self) -> str:
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:***@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def __repr__(self) -> str:
        return f"PostgresUrl({str(self)!r})"


Target = Path | PostgresUrl


def dialect_of(target: Target) -> Dialect:
    return "postgresql" if isinstance(target, PostgresUrl) else "sqlite"


def database_errors() -> tuple[type[Exception], ...]:
    """The base error classes of both drivers (a failed query or connection)."""
    import psycopg

    return (sqlite3.Error, psycopg.Error)


def is_integrity_error(exc: BaseException) -> bool:
    """A constraint refused the statement (unique, check, foreign key, or a trigger's)."""
    import psycopg

    if isinstance(exc, sqlite3.IntegrityError | psycopg.errors.IntegrityError):
        return True
    return isinstance(exc, psycopg.errors.RaiseException)


_PLACEHOLDER = re.compile(r"\?")


def _pg_sql(sql: str, cache: dict[str, str] = {}) -> str:  # noqa: B006 - a deliberate memo
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    found = cache.get(sql)
    if found is None:
        found = cache[sql] = _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))
    return found


# -- async --------------------------------------------------------------------------------
class Database(ABC):
    """One async connection to the manager's database (see the module docstring)."""

    dialect: Dialect
    #: The column giving the storage order of ``versions`` rows (the hash chain's order).
    row_order: str

    def __init__(self, target: Target) -> None:
        self.target = target

    @abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query (``SELECT`` or ``... RETURNING``)."""

    @abstractmethod
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns its row count."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    def begin_script(self) -> Script[None]:
        """What starts a write transaction, serialised with every other writer."""

    async def begin(self) -> None:
        """Start a write transaction, serialised with every other writer of the database."""
        await self.run_script(self.begin_script())

    async def run_script(self, script: Script[_T], *, inline: bool = False) -> _T:
        """Run ``script``'s statements in order; returns what the script returns.

        ``inline``: the caller would rather block the event loop for the script than pay
        a hand-over to another thread (a lone writer's short transaction); a hint.
        """
        result: Any = None
        error: Exception | None = None
        try:
            while True:
                try:
                    step = script.send(result) if error is None else script.throw(error)
                except StopIteration as stop:
                    value: _T = stop.value
                    return value
                error = None
                try:
                    if step.rows:
                        result = await self.fetchall(step.sql, step.params)
                    else:
                        result = await self.execute(step.sql, step.params)
                except Exception as exc:
                    error = exc
        finally:
            script.close()

    async def commit(self) -> None:
        await self.execute("COMMIT")

    async def rollback(self) -> None:
        """Roll back the open transaction, if any (a failed COMMIT may have ended it)."""
        if self.in_transaction:
            with contextlib.suppress(*database_errors()):
                await self.execute("ROLLBACK")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A write transaction: committed at the end, rolled back on any exception."""
        await self.begin()
        try:
            yield
            await self.commit()
        except BaseException:
            await self.rollback()
            raise

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @abstractmethod
    def relaxed_statements(self) -> tuple[Statement, Statement]:
        """The statements around bookkeeping writes that need not be flushed on their own
        (a power cut may lose them): relax durability, then restore it."""

    @contextlib.asynccontextmanager
    async def relaxed_durability(self) -> AsyncIterator[None]:
        """Writes inside are not flushed on their own (bookkeeping a power cut may lose)."""
        relax, restore = self.relaxed_statements()
        await self.execute(relax.sql, relax.params)
        try:
            yield
        finally:
            # Not suppressed: a connection left relaxed would not flush later commits.
            await self.execute(restore.sql, restore.params)

    def relaxed_script(self, statement: Statement) -> Script[int]:
        """:meth:`relaxed_durability` around one statement, as a script (one hand-over on
        SQLite); returns the statement's row count."""
        relax, restore = self.relaxed_statements()
        yield relax
        try:
            count: int = yield statement
        except database_errors():
            yield restore
            raise
        yield restore
        return count

    @abstractmethod
    def is_storage_error(self, exc: BaseException) -> bool:
        """Whether a driver error means the storage failed (not that the query is wrong)."""

    @staticmethod
    def error_code(exc: BaseException) -> str:
        code = getattr(exc, "sqlite_errorname", None) or getattr(exc, "sqlstate", None)
        return str(code or type(exc).__name__)

    @abstractmethod
    async def close(self) -> None: ...


class SqliteDatabase(Database):
    dialect: Dialect = "sqlite"
    row_order = "rowid"

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        super().__init__(path)
        self.conn = conn
        self._handed = 0  # operations handed to the connection's thread, not finished

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        import aiosqlite

        # Used from the event loop's thread too (an inline script), never at the same time
        # as from aiosqlite's (see run_script).
        conn = await aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
        try:
            for pragma in SQLITE_PRAGMAS:
                await conn.execute(pragma)
        except BaseException:
            await conn.close()
            raise
        return cls(path, conn)

    # One hand-over to the connection's thread per statement (a cursor's execute, fetchall
    # and close would be three; under load each costs a wake-up of the event loop).
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._handing():
            return [tuple(row) for row in await self.conn.execute_fetchall(sql, params)]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        # No rows to read: the statement is finished (reset) when execute returns, so the
        # cursor needs no closing of its own (it is released with this reference).
        with self._handing():
            cur = await self.conn.execute(sql, params)
        return int(cur.rowcount)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._handing():
            await self.conn.executemany(sql, rows)

    @contextlib.contextmanager
    def _handing(self) -> Iterator[None]:
        self._handed += 1
        try:
            yield
        finally:
            self._handed -= 1

    def begin_script(self) -> Script[None]:
        yield Statement("BEGIN IMMEDIATE")

    async def run_script(self, script: Script[_T], *, inline: bool = False) -> _T:
        if inline and not self._handed:
            # On this thread: nothing is on the connection's thread, and nothing can be
            # handed to it before the script ends (it holds the event loop). Saves the two
            # thread wake-ups of a hand-over (and the interpreter lock passing between the
            # threads); the fsync blocks the loop instead (~1 ms, measured in docs/manager.md).
            return _run_script_sync(self.conn._conn, script)
        # aiosqlite's own hand-over (``_execute``: the function runs on the connection's
        # thread, with the sqlite3 connection every statement of aiosqlite runs on).
        with self._handing():
            result: _T = await self.conn._execute(  # type: ignore[no-untyped-call]
                _run_script_sync, self.conn._conn, script
            )
        return result

    @property
    def in_transaction(self) -> bool:
        return bool(self.conn.in_transaction)

    def relaxed_statements(self) -> tuple[Statement, Statement]:
        return Statement("PRAGMA synchronous = NORMAL"), Statement("PRAGMA synchronous = FULL")

    def is_storage_error(self, exc: BaseException) -> bool:
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int):
            return (code & 0xFF) in _SQLITE_STORAGE_CODES
        return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError

    async def close(self) -> None:
        await self.conn.close()


def _run_script_sync(conn: sqlite3.Connection, script: Script[_T]) -> _T:
    """:meth:`Database.run_script` on the SQLite connection's own thread."""
    result: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                step = script.send(result) if error is None else script.throw(error)
            except StopIteration as stop:
                value: _T = stop.value
                return value
            error = None
            try:
                cur = conn.execute(step.sql, step.params)
                try:
                    result = [tuple(r) for r in cur.fetchall()] if step.rows else cur.rowcount
                finally:
                    cur.close()
            except Exception as exc:
                error = exc
    finally:
        script.close()


async def _pg_connect(url: PostgresUrl) -> psycopg.AsyncConnection[Any]:
    """The store's connection. A manager stopped in the middle of a transaction (SIGSTOP)
    would hold the write lock of every replica: the server ends such a session."""
    import psycopg

    return await psycopg.AsyncConnection.connect(
        url.url,
        autocommit=True,
        application_name="config_manager",
        options=f"-c idle_in_transaction_session_timeout={PG_IDLE_IN_TRANSACTION_MS}",
    )


class PostgresDatabase(Database):
    """psycopg 3, one connection in autocommit mode with explicit transactions.

    Write transactions take a transaction-level advisory lock first, so writes of every
    manager on the database are serialised (the SQLite file's ``BEGIN IMMEDIATE``).
    """

    dialect: Dialect = "postgresql"
    row_order = "seq"

    def __init__(self, url: PostgresUrl, conn: psycopg.AsyncConnection[Any]) -> None:
        super().__init__(url)
        self.conn = conn

    @classmethod
    async def open(cls, url: PostgresUrl) -> PostgresDatabase:

        return cls(url, await _pg_connect(url))

    async def _reopen(self) -> None:
        """A lost connection is replaced at the next statement outside a transaction."""

        if self.conn.closed or self.conn.broken:
            assert isinstance(self.target, PostgresUrl)
            self.conn = await _pg_connect(self.target)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not self.in_transaction:
            await self._reopen()
        cur = await self.conn.execute(_pg_sql(sql), params)
        return [tuple(row) for row in await cur.fetchall()]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if not self.in_transaction:
            await self._reopen()
        cur = await self.conn.execute(_pg_sql(sql), params)
        return int(cur.rowcount)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.conn.cursor() as cur:
            await cur.executemany(_pg_sql(sql), list(rows))

    def begin_script(self) -> Script[None]:
        yield Statement("BEGIN")
        yield Statement("SELECT pg_advisory_xact_lock(?)", (PG_WRITE_LOCK,))

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        if self.conn.closed:
            return False
        return self.conn.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
            TransactionStatus.ACTIVE,
        )

    def relaxed_statements(self) -> tuple[Statement, Statement]:
        return Statement("SET synchronous_commit = off"), Statement("SET synchronous_commit = on")

    def is_storage_error(self, exc: BaseException) -> bool:
        import psycopg

        # Connection lost, server shutting down, disk full (53xxx), I/O error (58xxx),
        # serialisation failures and deadlocks (40xxx): the operation did not happen.
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        state = getattr(exc, "sqlstate", None) or ""
        return state[:2] in ("08", "40", "53", "57", "58")

    async def close(self) -> None:
        await self.conn.close()


async def open_database(target: Target) -> Database:
    if isinstance(target, PostgresUrl):
        return await PostgresDatabase.open(target)
    return await SqliteDatabase.open(target)


# -- sync ---------------------------------------------------------------------------------
class SyncDatabase(ABC):
    """A blocking connection for the command line and the bootstrap (autocommit)."""

    dialect: Dialect

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; returns its rows (empty for a statement without rows)."""

    @abstractmethod
    def script(self, sql: str) -> None:
        """Run several statements (a migration file), without parameters."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction: committed at the end, rolled back on any exception."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> SyncDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteSync(SyncDatabase):
    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.conn.execute(sql, params).fetchall()]

    def script(self, sql: str) -> None:
        self.conn.executescript(sql)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


class PostgresSync(SyncDatabase):
    dialect: Dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(_pg_sql(sql) if params else sql, params or None)
        return [tuple(row) for row in cur.fetchall()] if cur.description else []

    def script(self, sql: str) -> None:
        self.conn.execute(sql.encode())  # no parameters: several statements in one call

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_WRITE_LOCK,))
            yield

    def close(self) -> None:
        self.conn.close()


def open_sync(target: Target) -> SyncDatabase:
    """A blocking connection to ``target`` (SQLite with the project's pragmas)."""
    if isinstance(target, PostgresUrl):
        import psycopg

        return PostgresSync(
            psycopg.connect(target.url, autocommit=True, application_name="config_manager")
        )
    conn = sqlite3.connect(target, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    return SqliteSync(conn)
