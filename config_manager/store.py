"""``ConfigStore``: the one database connection and every query the manager runs.

The database is a SQLite file (aiosqlite) or PostgreSQL (psycopg), behind
:class:`~config_manager.dialects.Database`; the queries here are written once for both.
One connection runs one statement at a time; an ``asyncio.Lock`` makes
each method's statements (and each transaction) atomic with respect to the others, so a
reader never sees another coroutine's uncommitted rows.

Storage faults (disk full, I/O error, read-only file system...) are raised as
:class:`StorageError` (nothing of the failed operation is kept). The first one starts an
*episode*: logged once, counted, and a background probe retries a tiny write with backoff
until the database accepts writes again (logged once more); :meth:`ConfigStore.storage_problem`
says what is wrong meanwhile (``/readyz``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from config_lib import MAX_POSITION, Backoff, stop_tasks

from .db import migrate, now_iso
from .dialects import (
    Database,
    PostgresUrl,
    Script,
    Statement,
    Target,
    database_errors,
    is_integrity_error,
    open_database,
)
from .history import GENESIS, row_hash
from .instances import InstanceReport, PinnedKey
from .metrics import Metrics

__all__ = [
    "AuditEntry",
    "AuditRecord",
    "ConfigStore",
    "IdempotencyClaim",
    "NewVersion",
    "OutboxItem",
    "ServiceSummary",
    "StorageError",
    "StorageLimits",
    "StoredVersion",
    "TokenRecord",
    "VersionConflict",
    "WriteMember",
]

_log = logging.getLogger(__name__)


class StorageError(Exception):
    """The database could not carry out an operation: disk full, I/O error, read-only file
    system, locked... Nothing of that operation was stored. Usually transient: retry later.
    """

    def __init__(self, operation: str, cause: Exception, *, writes: bool) -> None:
        self.operation = operation
        self.writes = writes
        self.code = Database.error_code(cause)
        self.reason = str(cause) or self.code
        super().__init__(f"{operation}: {self.reason} ({self.code})")


@dataclass(frozen=True, slots=True)
class StorageLimits:
    """How the store retries after a storage fault, and when its file system counts as full."""

    retry_min_s: float = 0.5
    retry_max_s: float = 5.0
    min_free_bytes: int = 1024 * 1024


class VersionConflict(Exception):
    """The version a write was based on is not the current one; nothing was written."""

    def __init__(self, service: str, expected: int, current: int) -> None:
        super().__init__(f"{service}: expected version {expected}, current is {current}")
        self.service = service
        self.expected = expected
        self.current = current


@dataclass(frozen=True, slots=True)
class StoredVersion:
    service: str
    version: int
    epoch: int
    values: dict[str, Any]  # secrets as ciphertext objects
    created_at: str
    created_by: str
    change_id: str
    outbox_id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit log entry to write (``version`` None: not about one version)."""

    actor: str
    action: str
    outcome: str = "ok"  # or "refused"
    service: str | None = None
    version: int | None = None
    request_id: str | None = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: str
    actor: str
    action: str
    outcome: str
    service: str | None
    version: int | None
    request_id: str | None
    reason: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """An ``Idempotency-Key`` to record with a write: (token, key) → the request's hash."""

    token: str
    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class NewVersion:
    service: str
    expected_version: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WriteMember:
    """One writer's part of a (group) commit: its new versions, audit entries and claim."""

    changes: tuple[NewVersion, ...]
    actor: str
    audit: tuple[AuditEntry, ...] = ()
    idempotency: IdempotencyClaim | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    service: str
    version: int
    values: dict[str, Any]
    created_at: str


@dataclass(frozen=True, slots=True)
class ServiceSummary:
    service: str
    version: int
    updated_at: str


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    role: str
    created_at: str
    created_by: str
    revoked_at: str | None
    services: tuple[str, ...] | None = None  # None: every service


def _token(row: Sequence[Any]) -> TokenRecord:
    scope = json.loads(row[5]) if row[5] is not None else None
    return TokenRecord(row[0], row[1], row[2], row[3], row[4], tuple(scope) if scope else None)


_TOKEN_TTL_S = 30.0
_CHANNEL: Final = "config_manager"  # NOTIFY channel: another replica changed something
_TOKENS_CHANGED: Final = "tokens"  # ... its payload when a token was revoked
IDEMPOTENCY_TTL_S = 24 * 3600.0
_VERSION_COLUMNS = "service, version, epoch, values_json, created_at, created_by, change_id"
_CURRENT_SQL = (
    "SELECT v.service, v.version, v.epoch, v.values_json, v.created_at, v.created_by, "
    "v.change_id FROM services s JOIN versions v "
    "ON v.service = s.name AND v.version = s.current_version"
)
_AUDIT_SQL = (
    "INSERT INTO audit (at, actor, action, outcome, service, version, request_id, reason, "
    "detail_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _audit_params(entry: AuditEntry, at: str) -> tuple[Any, ...]:
    return (
        at,
        entry.actor,
        entry.action,
        entry.outcome,
        entry.service,
        entry.version,
        entry.request_id,
        entry.reason,
        json.dumps(entry.detail, separators=(",", ":"), ensure_ascii=False, allow_nan=False),
    )


def _dumps(values: dict[str, Any]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class ConfigStore:
    """Async context manager owning the manager's database connection."""

    def __init__(
        self,
        path: Target,
        *,
        metrics: Metrics | None = None,
        limits: StorageLimits = StorageLimits(),
    ) -> None:
        self.path: Target = path if not isinstance(path, str) else Path(path)
        self._conn: Database | None = None
        self._lock = asyncio.Lock()
        self._metrics = metrics
        self._limits = limits
        # The current storage-fault episode: its first error, since when, failures so far.
        self._fault: StorageError | None = None
        self._fault_since = 0.0
        self._fault_count = 0
        self._probe: asyncio.Task[None] | None = None
        self.writable = asyncio.Event()  # set while no storage fault is pending
        self.writable.set()
        self.schema_version = 0
        # The epoch and each service's current version are cached and kept up to date here.
        # A SQLite file has one manager (its only writer). On PostgreSQL several replicas
        # may write: each write checks, under the write lock, that the cache reflects the
        # database's last change (``meta.revision``), and LISTEN/NOTIFY refreshes the
        # caches of the other replicas (docs/manager.md, "Replicas").
        self.replica = secrets.token_hex(4)
        self._revision = 0
        self._listener: asyncio.Task[None] | None = None
        self.on_change: list[Callable[[], None]] = []  # called after another replica's change
        self._epoch = 0
        self._current: dict[str, StoredVersion] = {}
        self._tokens: dict[str, tuple[float, TokenRecord | None]] = {}
        # The highest epoch of this manager's own messages seen on the broker (set by the
        # publisher's read-back): every epoch bump moves above it too.
        self.fleet_floor: int | None = None
        # The keyset's floor reset (docs/protocol.md, *Keyset*): epochs from here are void,
        # so a bump never goes there (the clock is then not followed).
        self.void_from: int | None = None
        self._head = GENESIS  # row_hash of the last stored version row
        self._retired: dict[str, str] = {}  # service -> retired_at

    async def __aenter__(self) -> Self:
        self.schema_version = await asyncio.to_thread(migrate, self.path)
        self._conn = await open_database(self.path)
        async with self._lock:
            await self._load()
            self._head = await self._chain_unhashed()
        if self.dialect == "postgresql":
            self._listener = asyncio.create_task(self._listen(), name="store-listener")
        return self

    async def _load(self) -> None:
        """(Re)read what is cached: epoch, current versions, retired services, revision."""
        rows = await self._all("SELECT key, value FROM meta WHERE key IN ('epoch', 'revision')")
        meta = dict(rows)
        self._epoch = int(meta["epoch"])
        self._revision = int(meta.get("revision", 0))
        rows = await self._all(_CURRENT_SQL + " ORDER BY s.name")
        self._current = {row[0]: _version(row) for row in rows}
        rows = await self._all("SELECT name, retired_at FROM services WHERE retired_at IS NOT NULL")
        self._retired = {row[0]: row[1] for row in rows}
        rows = await self._all(
            f"SELECT row_hash FROM versions ORDER BY {self.conn.row_order} DESC LIMIT 1"  # noqa: S608
        )
        self._head = rows[0][0] if rows and rows[0][0] else GENESIS

    # -- replicas (PostgreSQL) -------------------------------------------------------------
    async def _fresh(self) -> bool:
        """Inside a write transaction (so under the write lock): whether the cache reflects
        the database's last change. If not, it is reloaded (this transaction's view)."""
        if await self.conn.run_script(self._fresh_script()):
            return True
        await self._stale()
        return False

    def _fresh_script(self) -> Script[bool]:
        """Whether the cache reflects the database's last change (see :meth:`_fresh`)."""
        if self.dialect != "postgresql":
            return True  # a SQLite file has one manager: the cache is the truth
        rows = yield Statement("SELECT value FROM meta WHERE key = 'revision'", rows=True)
        return bool((int(rows[0][0]) if rows else 0) == self._revision)

    async def _stale(self) -> None:
        """The cache missed another replica's change: reload it (this transaction's view)."""
        await self._load()
        self._tokens.clear()

    def _changed_script(self) -> Script[None]:
        """Inside a write transaction: one more change for the other replicas to see (the
        caller counts it in ``_revision`` once committed)."""
        if self.dialect != "postgresql":
            return
        yield Statement(
            "INSERT INTO meta (key, value) VALUES ('revision', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(self._revision + 1),),
        )
        yield Statement("SELECT pg_notify(?, ?)", (_CHANNEL, self.replica))

    async def _changed(self) -> None:
        await self.conn.run_script(self._changed_script())

    async def _listen(self) -> None:
        """Refresh the caches when another replica changed something (LISTEN/NOTIFY); after
        every (re)connection too, as notifications may have been missed meanwhile."""
        import psycopg

        assert isinstance(self.path, PostgresUrl)
        backoff = Backoff(self._limits.retry_min_s, self._limits.retry_max_s)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.path.url, autocommit=True, application_name="config_manager-listen"
                ) as conn:
                    await conn.execute(f"LISTEN {_CHANNEL}")
                    backoff.reset()
                    await self.refresh()
                    async for note in conn.notifies():
                        if note.payload == _TOKENS_CHANGED:  # a revocation elsewhere
                            self._tokens.clear()
                        elif note.payload != self.replica:
                            await self.refresh()
            except psycopg.Error as exc:
                _log.warning("replica cache listener: %s; reconnecting", exc)
            await backoff.sleep()

    async def refresh(self) -> bool:
        """Reload the cache if another replica changed the database; True if it did."""
        async with self._op("refresh"):
            rows = await self._all("SELECT value FROM meta WHERE key = 'revision'")
            if (int(rows[0][0]) if rows else 0) == self._revision:
                return False
            await self._load()
            self._tokens.clear()
        for callback in list(self.on_change):
            callback()
        return True

    async def _chain_unhashed(self) -> str:
        """Hash-chain rows stored before the chain existed (in storage order); returns the head."""
        rows = await self._all(
            f"SELECT {self.conn.row_order}, {_VERSION_COLUMNS}, row_hash FROM versions "  # noqa: S608
            f"ORDER BY {self.conn.row_order}"
        )
        head = GENESIS
        updates: list[tuple[str, str, int]] = []
        for row in rows:
            if row[8] is not None:
                head = row[8]
                continue
            stored = _version(row[1:8])
            new = row_hash(
                service=stored.service,
                version=stored.version,
                epoch=stored.epoch,
                values=stored.values,
                created_at=stored.created_at,
                created_by=stored.created_by,
                prev_hash=head,
            )
            updates.append((head, new, int(row[0])))
            head = new
        if updates:
            async with self.conn.transaction():
                await self.conn.executemany(
                    "UPDATE versions SET prev_hash = ?, row_hash = ? "  # noqa: S608
                    f"WHERE {self.conn.row_order} = ?",
                    updates,
                )
        return head

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks = [t for t in (self._probe, self._listener) if t is not None]
        self._probe = self._listener = None
        if tasks:
            await stop_tasks(tasks)
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    @property
    def conn(self) -> Database:
        if self._conn is None:
            raise RuntimeError("the store is not open")
        return self._conn

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.conn.dialect

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.conn.fetchall(sql, params)

    # -- storage faults --------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _op(self, operation: str, *, writes: bool = False) -> AsyncIterator[None]:
        """Run one operation under the lock; a storage fault becomes :class:`StorageError`."""
        async with self._lock:
            try:
                yield
            except database_errors() as exc:
                if not self.conn.is_storage_error(exc):
                    raise
                error = StorageError(operation, exc, writes=writes)
                self._failed(error)
                raise error from exc
        if writes and self._fault is not None:
            self._recovered(operation)

    def _failed(self, error: StorageError) -> None:
        if self._metrics is not None:
            self._metrics.storage_errors.labels(operation=error.operation, code=error.code).inc()
            self._metrics.storage_writable.set(0)
        self._fault_count += 1
        if self._fault is not None:
            return  # one log line per episode, not per retry
        self._fault, self._fault_since = error, time.monotonic()
        self.writable.clear()
        _log.error(
            "database %s cannot store changes: %s (%s, during %s); writes are refused with "
            "503 and retried in the background until it recovers",
            self.path,
            error.reason,
            error.code,
            error.operation,
        )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_writable(), name="store-probe")

    def _recovered(self, operation: str) -> None:
        _log.warning(
            "database %s accepts writes again (%s succeeded) after %.1fs and %d failed operations",
            self.path,
            operation,
            time.monotonic() - self._fault_since,
            self._fault_count,
        )
        self._fault, self._fault_count = None, 0
        self.writable.set()
        if self._metrics is not None:
            self._metrics.storage_writable.set(1)

    async def _probe_until_writable(self) -> None:
        backoff = Backoff(self._limits.retry_min_s, self._limits.retry_max_s)
        while self._fault is not None:
            await backoff.sleep()
            if self._fault is None or self._conn is None:
                return
            with contextlib.suppress(StorageError):  # counted; logged once per episode
                await self.probe_write()

    async def probe_write(self) -> None:
        """A tiny write (one ``meta`` row): ends a storage-fault episode if it succeeds."""
        async with self._op("probe", writes=True):
            await self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('storage_probe', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (now_iso(),),
            )

    def storage_problem(self) -> str | None:
        """Why the database cannot store changes now, or None when it can.

        A storage fault not yet cleared by a successful write, a read-only file system, or
        less than ``min_free_bytes`` free on the database's file system.
        """
        fault = self._fault
        if fault is not None:
            return f"{fault.reason} ({fault.code}, since {fault.operation} failed)"
        if not isinstance(self.path, Path):
            return None  # a database server: its own disk is its administrator's
        try:
            st = os.statvfs(self.path.parent)
        except OSError as exc:
            return f"cannot inspect the database's file system: {exc.strerror}"
        if st.f_flag & os.ST_RDONLY:
            return "the database's file system is read-only"
        # Root may use the blocks a file system reserves for it; anyone else may not.
        free = st.f_frsize * (st.f_bfree if os.geteuid() == 0 else st.f_bavail)
        if free < self._limits.min_free_bytes:
            return f"only {free} bytes free on the database's file system"
        return None

    # -- epoch -------------------------------------------------------------------------
    async def epoch(self) -> int:
        return self._epoch

    @property
    def epoch_now(self) -> int:
        """The cached epoch, for synchronous callers."""
        return self._epoch

    async def bump_epoch(self) -> int:
        """Raise the epoch to ``max(old + 1, now, fleet + 1)``; returns the new epoch.

        ``fleet`` is the highest epoch of the manager's own messages read back from the
        broker, so a clock that went backwards never makes the epoch go backwards.
        """
        async with self._op("bump_epoch", writes=True), self.conn.transaction():
            await self._fresh()
            new = self._next_epoch()
            await self._set_epoch(new)
            await self._changed()
        self._revision += 1
        return new

    def _next_epoch(self) -> int:
        """The epoch of a bump: above the old one, the clock and the fleet's highest (the
        clock only while it is below the keyset's void range)."""
        floor = max(self._epoch + 1, (self.fleet_floor or 0) + 1)
        clock = int(time.time())
        if self.void_from is not None and clock >= self.void_from:
            clock = 0
        return max(floor, clock)

    async def raise_epoch_above(self, floor: int) -> int:
        """Make the epoch at least ``floor + 1`` (and at least ``old + 1``); returns it."""
        async with self._op("raise_epoch", writes=True), self.conn.transaction():
            await self._fresh()
            new = max(self._epoch + 1, floor + 1)
            await self._set_epoch(new)
            await self._changed()
        self._revision += 1
        return new

    async def _set_epoch(self, new: int) -> None:
        if self.void_from is not None and new >= self.void_from:
            raise ValueError(
                f"epoch {new} would be in the range the keyset declares void (from "
                f"{self.void_from}): see 'Epoch floor reset' in docs/operations.md"
            )
        if new > MAX_POSITION:
            raise ValueError(f"epoch {new} would be at or above 2^48: see docs/operations.md")
        await self.conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(new),))
        self._epoch = new

    # -- configs -------------------------------------------------------------------------
    async def current(self, service: str) -> StoredVersion | None:
        return self._current.get(service)

    async def version(self, service: str, version: int) -> StoredVersion | None:
        async with self._op("read"):
            rows = await self._all(
                "SELECT service, version, epoch, values_json, created_at, created_by, change_id "
                "FROM versions WHERE service = ? AND version = ?",
                (service, version),
            )
        return _version(rows[0]) if rows else None

    async def history(
        self, service: str, limit: int = 50, before: int | None = None
    ) -> list[StoredVersion]:
        """Versions of ``service`` newest first; ``before``: only versions below it."""
        async with self._op("read"):
            rows = await self._all(
                f"SELECT {_VERSION_COLUMNS} FROM versions "  # noqa: S608
                "WHERE service = ? AND version < ? ORDER BY version DESC LIMIT ?",
                (service, before if before is not None else 2**62, limit),
            )
        return [_version(r) for r in rows]

    async def chain(self, *, current_only: bool = False) -> tuple[list[dict[str, Any]], str, int]:
        """Version rows in chain order with their hashes, the chain head and its row count."""
        where = (
            "WHERE EXISTS (SELECT 1 FROM services s WHERE s.name = v.service "
            "AND s.current_version = v.version) "
            if current_only
            else ""
        )
        async with self._op("read"):
            rows = await self._all(
                "SELECT v.service, v.version, v.epoch, v.values_json, v.created_at, "  # noqa: S608
                f"v.created_by, v.change_id, v.prev_hash, v.row_hash FROM versions v {where}"
                f"ORDER BY v.{self.conn.row_order}"
            )
            count = (await self._all("SELECT COUNT(*) FROM versions"))[0][0]
            head = self._head
        return (
            [
                {
                    "service": r[0],
                    "version": int(r[1]),
                    "epoch": int(r[2]),
                    "values": json.loads(r[3]),
                    "created_at": r[4],
                    "created_by": r[5],
                    "change_id": r[6],
                    "prev_hash": r[7],
                    "row_hash": r[8],
                }
                for r in rows
            ],
            head,
            int(count),
        )

    async def is_published(self, service: str, version: int) -> bool:
        async with self._op("read"):
            rows = await self._all(
                "SELECT published_at FROM outbox WHERE service = ? AND version = ?",
                (service, version),
            )
        return bool(rows) and rows[0][0] is not None

    async def by_change(self, change_id: str) -> list[StoredVersion]:
        async with self._op("read"):
            rows = await self._all(
                f"SELECT {_VERSION_COLUMNS} FROM versions WHERE change_id = ? "  # noqa: S608
                "ORDER BY service",
                (change_id,),
            )
        return [_version(r) for r in rows]

    async def services(self) -> list[ServiceSummary]:
        return [
            ServiceSummary(v.service, v.version, v.created_at)
            for v in sorted(self._current.values(), key=lambda v: v.service)
        ]

    async def current_all(self) -> list[StoredVersion]:
        """The current version of every service that is not retired."""
        return sorted(
            (v for v in self._current.values() if v.service not in self._retired),
            key=lambda v: v.service,
        )

    def retired(self) -> dict[str, str]:
        """Retired services and when they were retired."""
        return dict(self._retired)

    def tombstones(self) -> list[tuple[str, int]]:
        """``(service, tombstone version)`` of every retired service: its last version + 1."""
        return [(s, self._version_of(s) + 1) for s in sorted(self._retired)]

    async def retire(self, service: str, *, audit: AuditEntry) -> str:
        """Mark ``service`` retired (and audit it) in one transaction; returns the time."""
        at = now_iso()
        async with self._op("retire", writes=True):
            conn = self.conn
            async with conn.transaction():
                await self._fresh()
                await conn.execute(
                    "UPDATE services SET retired_at = ?, retired_by = ? WHERE name = ?",
                    (at, audit.actor, service),
                )
                await conn.execute(_AUDIT_SQL, _audit_params(audit, at))
                await self._changed()
            self._revision += 1
            self._retired[service] = at
        return at

    async def write(
        self,
        changes: Iterable[NewVersion],
        *,
        actor: str,
        audit: Sequence[AuditEntry] = (),
        idempotency: IdempotencyClaim | None = None,
        bump_epoch: bool = False,
    ) -> list[StoredVersion]:
        """Store one new version per change and its outbox row, all in ONE transaction.

        The same transaction records the ``audit`` entries, the ``idempotency`` claim (its
        outcome: this change's id and versions) and, with ``bump_epoch``, raises the epoch
        first (an import). Raises :class:`VersionConflict` (and writes nothing) if any
        change's expected version is not the current one.
        """
        member = WriteMember(tuple(changes), actor, tuple(audit), idempotency)
        [outcome] = await self.write_group([member], bump_epoch=bump_epoch)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def write_group(
        self, members: Sequence[WriteMember], *, bump_epoch: bool = False
    ) -> list[list[StoredVersion] | BaseException]:
        """Group commit: every member's versions in ONE durable transaction (one fsync).

        Each member (one writer's change: its versions, audit entries and idempotency
        claim) runs in a savepoint of its own: a member that fails — a version conflict,
        any error of its own statements — is rolled back alone and its exception returned
        in its place, while the others commit. A storage fault (or a failed COMMIT) fails
        the whole transaction: raised, nothing written. The caches (current versions,
        chain head, epoch) change only after the COMMIT returned.

        Savepoints are standard SQL (SQLite and PostgreSQL alike): nothing here depends on
        the dialect. The transaction is one script (:meth:`Database.run_script`): on SQLite,
        BEGIN to COMMIT in one hand-over to the database thread.
        """
        created = now_iso()
        outcomes: list[list[StoredVersion] | BaseException] = []
        current: dict[str, StoredVersion] = {}
        async with self._op("write", writes=True):
            conn = self.conn
            epoch = self._next_epoch() if bump_epoch else self._epoch
            script = self._group_script(
                members, epoch, created, outcomes, current, bump_epoch=bump_epoch
            )
            try:
                # A lone writer's transaction runs without a hand-over to another thread;
                # a group's keeps the event loop free while its fsync runs.
                head = await conn.run_script(script, inline=len(members) == 1)
                if head is None:
                    # Another replica changed the database since this one's cache was
                    # read: what each change was checked against may be stale. Refused as
                    # conflicts (the cache is now current): the clients re-read, retry.
                    await self._stale()
                    await conn.rollback()
                    return [
                        VersionConflict(
                            m.changes[0].service,
                            m.changes[0].expected_version,
                            self._version_of(m.changes[0].service),
                        )
                        for m in members
                    ]
                self._revision += 1
            except BaseException:
                # A failed COMMIT (disk full...) may already have ended the transaction.
                await conn.rollback()
                raise
            self._head = head
            self._epoch = epoch
            self._current.update(current)
        return outcomes

    def _group_script(
        self,
        members: Sequence[WriteMember],
        epoch: int,
        created: str,
        outcomes: list[list[StoredVersion] | BaseException],
        current: dict[str, StoredVersion],
        *,
        bump_epoch: bool,
    ) -> Script[str | None]:
        """:meth:`write_group`'s transaction, BEGIN to COMMIT; returns the new chain head, or
        None (rolled back by the caller) when the cache missed another replica's change."""
        conn = self.conn
        head = self._head
        yield from conn.begin_script()
        if not (yield from self._fresh_script()):
            return None
        if bump_epoch:
            yield Statement("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(epoch),))
        single = len(members) == 1
        member_errors: tuple[type[Exception], ...] = (VersionConflict, *database_errors())
        for member in members:
            if not single:
                yield Statement("SAVEPOINT member")
            try:
                stored, member_head = yield from self._member_script(
                    member, epoch, head, created, current
                )
            except member_errors as exc:
                if single or conn.is_storage_error(exc):
                    raise
                yield Statement("ROLLBACK TO SAVEPOINT member")
                yield Statement("RELEASE SAVEPOINT member")
                outcomes.append(exc)
                continue
            if not single:
                yield Statement("RELEASE SAVEPOINT member")
            head = member_head
            outcomes.append(stored)
            for item in stored:
                current[item.service] = item
        yield from self._changed_script()
        yield Statement("COMMIT")
        return head

    def _member_script(
        self,
        member: WriteMember,
        epoch: int,
        head: str,
        created: str,
        current: dict[str, StoredVersion],
    ) -> Script[tuple[list[StoredVersion], str]]:
        """One member's rows (inside the caller's transaction); returns them and the head."""
        conn = self.conn
        change_id = secrets.token_hex(8)
        stored: list[StoredVersion] = []
        for change in member.changes:
            version = change.expected_version + 1
            prev, head = (
                head,
                row_hash(
                    service=change.service,
                    version=version,
                    epoch=epoch,
                    values=change.values,
                    created_at=created,
                    created_by=member.actor,
                    prev_hash=head,
                ),
            )
            try:
                # The triggers check the version, advance the service and add the
                # outbox row (id = this row's rowid / seq).
                rows = yield Statement(
                    "INSERT INTO versions (service, version, epoch, values_json, "  # noqa: S608
                    "created_at, created_by, change_id, prev_hash, row_hash) "
                    f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {conn.row_order}",
                    (
                        change.service,
                        version,
                        epoch,
                        _dumps(change.values),
                        created,
                        member.actor,
                        change_id,
                        prev,
                        head,
                    ),
                    rows=True,
                )
            except database_errors() as exc:
                if not is_integrity_error(exc) or not _is_conflict(exc):
                    raise
                now = current.get(change.service)
                raise VersionConflict(
                    change.service,
                    change.expected_version,
                    now.version if now is not None else self._version_of(change.service),
                ) from None
            stored.append(
                StoredVersion(
                    change.service,
                    version,
                    epoch,
                    change.values,
                    created,
                    member.actor,
                    change_id,
                    int(rows[0][0]),
                )
            )
        for entry in member.audit:
            yield Statement(_AUDIT_SQL, _audit_params(entry, created))
        if member.idempotency is not None:
            yield self._claim_statement(member.idempotency, change_id, stored)
        return stored, head

    def _claim_statement(
        self,
        claim: IdempotencyClaim,
        change_id: str | None,
        stored: Sequence[StoredVersion] = (),
        versions: Sequence[tuple[str, int]] = (),
    ) -> Statement:
        result = {
            "change_id": change_id,
            "versions": [[s.service, s.version] for s in stored] + [list(v) for v in versions],
        }
        return Statement(
            "INSERT INTO idempotency (token, key, request_hash, result_json, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (token, key) DO UPDATE SET "
            "request_hash = excluded.request_hash, result_json = excluded.result_json, "
            "created_at = excluded.created_at",
            (claim.token, claim.key, claim.request_hash, json.dumps(result), time.time()),
        )

    async def record_unchanged(
        self,
        claim: IdempotencyClaim | None,
        audit: Sequence[AuditEntry],
        versions: Sequence[tuple[str, int]] = (),
    ) -> None:
        """A write that changed nothing: its audit entries and idempotency claim only."""
        if claim is None and not audit:
            return
        async with self._op("write", writes=True):
            conn = self.conn
            async with conn.transaction():
                for entry in audit:
                    await conn.execute(_AUDIT_SQL, _audit_params(entry, now_iso()))
                if claim is not None:
                    claimed = self._claim_statement(claim, None, versions=versions)
                    await conn.execute(claimed.sql, claimed.params)

    async def idempotent_result(self, token: str, key: str) -> tuple[str, dict[str, Any]] | None:
        """``(request_hash, result)`` of a claim younger than 24 h, else None."""
        async with self._op("idempotency", writes=True):
            await self.conn.execute(
                "DELETE FROM idempotency WHERE created_at < ?", (time.time() - IDEMPOTENCY_TTL_S,)
            )
            rows = await self._all(
                "SELECT request_hash, result_json FROM idempotency WHERE token = ? AND key = ?",
                (token, key),
            )
        if not rows:
            return None
        result: dict[str, Any] = json.loads(rows[0][1])
        return str(rows[0][0]), result

    # -- audit ---------------------------------------------------------------------------
    async def add_audit(self, *entries: AuditEntry) -> None:
        async with self._op("audit", writes=True):
            at = now_iso()
            for entry in entries:
                await self.conn.execute(_AUDIT_SQL, _audit_params(entry, at))

    async def audit(
        self,
        *,
        service: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        limit: int = 100,
        services: Sequence[str] | None = None,
    ) -> list[AuditRecord]:
        """Audit entries, newest first, filtered (``services``: only entries about these)."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("service", service), ("actor", actor), ("action", action)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        if services is not None:
            where.append(f"service IN ({','.join('?' * len(services)) or 'NULL'})")
            params.extend(services)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        async with self._op("read audit"):
            rows = await self._all(
                "SELECT id, at, actor, action, outcome, service, version, request_id, reason, "  # noqa: S608
                f"detail_json FROM audit {clause}ORDER BY id DESC LIMIT ?",
                (*params, limit),
            )
        return [
            AuditRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]))
            for r in rows
        ]

    def _version_of(self, service: str) -> int:
        current = self._current.get(service)
        return current.version if current else 0

    # -- outbox --------------------------------------------------------------------------
    async def pending(self, limit: int, *, after: int = 0) -> list[OutboxItem]:
        """Unpublished outbox rows with an id above ``after``, in write order, with values."""
        async with self._op("read outbox"):
            rows = await self._all(
                "SELECT o.id, o.service, o.version, v.values_json, o.created_at FROM outbox o "
                "JOIN versions v ON v.service = o.service AND v.version = o.version "
                "WHERE o.published_at IS NULL AND o.id > ? ORDER BY o.id LIMIT ?",
                (after, limit),
            )
        return [OutboxItem(int(r[0]), r[1], int(r[2]), json.loads(r[3]), r[4]) for r in rows]

    async def mark_published(self, ids: Sequence[int]) -> None:
        """Mark outbox rows published. Not fsynced on its own (``synchronous=NORMAL``): a
        mark lost in a power cut only means one more (duplicate) publication, and the next
        durable commit syncs it anyway."""
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        update = Statement(
            f"UPDATE outbox SET published_at = ? WHERE id IN ({marks})",  # noqa: S608
            (now_iso(), *ids),
        )
        async with self._op("mark published", writes=True):
            await self.conn.run_script(self.conn.relaxed_script(update))

    async def outbox_depth(self) -> int:
        async with self._op("read outbox"):
            rows = await self._all("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        return int(rows[0][0])

    # -- instances -----------------------------------------------------------------------
    async def instances(self) -> list[InstanceReport]:
        """Every instance report saved (the manager's instance view at start)."""
        async with self._op("read instances"):
            rows = await self._all(
                "SELECT service, instance, status, version, epoch, reason, detail, time, "
                "received_at, forged, forged_reason, pending_key, signed_high "
                "FROM instances ORDER BY service, instance"
            )
        return [
            InstanceReport(
                service=row[0],
                instance=row[1],
                status=row[2],
                version=row[3],
                epoch=row[4],
                reason=row[5],
                detail=row[6],
                time=row[7],
                received_at=row[8],
                forged=bool(row[9]),
                forged_reason=row[10],
                pending_key=row[11],
                signed_high=row[12],
            )
            for row in rows
        ]

    async def instance_keys(self) -> list[PinnedKey]:
        """Every pinned instance report key (docs/protocol.md, "Report signature")."""
        async with self._op("read instance keys"):
            rows = await self._all(
                "SELECT service, instance, public_key, key_id, pinned_at, pinned_by "
                "FROM instance_keys ORDER BY service, instance"
            )
        return [PinnedKey(*row) for row in rows]

    async def pin_instance_key(self, pin: PinnedKey, audit: AuditEntry) -> None:
        """Pin an approved key (replacing the previous pin) and audit it, in one transaction."""
        async with self._op("pin instance key", writes=True):
            conn = self.conn
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO instance_keys (service, instance, public_key, key_id, "
                    "pinned_at, pinned_by) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (service, instance) DO UPDATE SET "
                    "public_key = excluded.public_key, key_id = excluded.key_id, "
                    "pinned_at = excluded.pinned_at, pinned_by = excluded.pinned_by",
                    (pin.service, pin.instance, pin.public_key, pin.key_id, pin.pinned_at,
                     pin.pinned_by),
                )  # fmt: skip
                await conn.execute(_AUDIT_SQL, _audit_params(audit, now_iso()))

    async def save_instances(
        self,
        reports: Sequence[InstanceReport],
        removed: Sequence[tuple[str, str]],
        pins: Sequence[PinnedKey] = (),
    ) -> None:
        """Upsert ``reports``, delete ``removed`` and add the keys ``pins`` pinned on first
        use (never replacing a pin: an approval wins) in one transaction. Not fsynced on its
        own (``synchronous=NORMAL``): a report lost in a power cut is sent again by its
        instance at its next (re)connection, and its key pinned again."""
        if not reports and not removed and not pins:
            return
        async with self._op("save instances", writes=True):
            conn = self.conn
            async with conn.relaxed_durability(), conn.transaction():
                await conn.executemany(
                    "INSERT INTO instances (service, instance, status, version, epoch, "
                    "reason, detail, time, received_at, forged, forged_reason, "
                    "pending_key, signed_high) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (service, instance) DO UPDATE SET status = excluded.status, "
                    "version = excluded.version, epoch = excluded.epoch, "
                    "reason = excluded.reason, detail = excluded.detail, "
                    "time = excluded.time, received_at = excluded.received_at, "
                    "forged = excluded.forged, forged_reason = excluded.forged_reason, "
                    "pending_key = excluded.pending_key, "
                    "signed_high = excluded.signed_high",
                    [
                        (r.service, r.instance, r.status, r.version, r.epoch, r.reason,
                         r.detail, r.time, r.received_at, int(r.forged), r.forged_reason,
                         r.pending_key, r.signed_high)
                        for r in reports
                    ],
                )  # fmt: skip
                await conn.executemany(
                    "INSERT INTO instance_keys (service, instance, public_key, key_id, "
                    "pinned_at, pinned_by) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (service, instance) DO NOTHING",
                    [
                        (p.service, p.instance, p.public_key, p.key_id, p.pinned_at,
                         p.pinned_by)
                        for p in pins
                    ],
                )  # fmt: skip
                await conn.executemany(
                    "DELETE FROM instances WHERE service = ? AND instance = ?", removed
                )

    # -- tokens --------------------------------------------------------------------------
    async def add_token(
        self,
        name: str,
        role: str,
        token_hash: str,
        *,
        created_by: str,
        services: Sequence[str] | None = None,
    ) -> None:
        async with self._op("add token", writes=True):
            await self.conn.execute(
                "INSERT INTO tokens (name, role, token_hash, created_at, created_by, "
                "services_json) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    name,
                    role,
                    token_hash,
                    now_iso(),
                    created_by,
                    json.dumps(sorted(services)) if services else None,
                ),
            )

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash (cached briefly: tokens made by the CLI appear at once,
        revocations through the API at once, direct database edits within the TTL)."""
        cached = self._tokens.get(token_hash)
        if cached is not None and cached[1] is not None and time.monotonic() < cached[0]:
            return cached[1]
        async with self._op("read token"):
            rows = await self._all(
                "SELECT name, role, created_at, created_by, revoked_at, services_json FROM tokens "
                "WHERE token_hash = ?",
                (token_hash,),
            )
        record = _token(rows[0]) if rows else None
        if record is not None:
            self._tokens[token_hash] = (time.monotonic() + _TOKEN_TTL_S, record)
        return record

    async def tokens(self) -> list[TokenRecord]:
        async with self._op("read tokens"):
            rows = await self._all(
                "SELECT name, role, created_at, created_by, revoked_at, services_json FROM tokens "
                "ORDER BY name"
            )
        return [_token(r) for r in rows]

    async def revoke_token(self, name: str) -> bool:
        async with self._op("revoke token", writes=True):
            count = await self.conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (now_iso(), name),
            )
            if self.dialect == "postgresql":  # other replicas drop their cached tokens
                await self.conn.execute("SELECT pg_notify(?, ?)", (_CHANNEL, _TOKENS_CHANGED))
            self._tokens.clear()
        return count > 0


def _is_conflict(exc: BaseException) -> bool:
    """The version trigger refused the row, or (PostgreSQL, concurrent writers) the same
    version was stored first by another transaction."""
    return "version conflict" in str(exc) or "versions_pkey" in str(exc)


def _version(row: Sequence[Any]) -> StoredVersion:
    return StoredVersion(
        row[0], int(row[1]), int(row[2]), json.loads(row[3]), row[4], row[5], row[6]
    )
