"""``ConfigStore``: the one aiosqlite connection and every query the manager runs.

One connection runs one statement at a time on its own thread; an ``asyncio.Lock`` makes
each method's statements (and each transaction) atomic with respect to the others, so a
reader never sees another coroutine's uncommitted rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite

from config_lib import MAX_POSITION

from .db import PRAGMAS, migrate, now_iso

__all__ = [
    "ConfigStore",
    "NewVersion",
    "OutboxItem",
    "ServiceSummary",
    "StoredVersion",
    "TokenRecord",
    "VersionConflict",
]


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
class NewVersion:
    service: str
    expected_version: int
    values: dict[str, Any]


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


_TOKEN_TTL_S = 30.0
_CURRENT_SQL = (
    "SELECT v.service, v.version, v.epoch, v.values_json, v.created_at, v.created_by, "
    "v.change_id FROM services s JOIN versions v "
    "ON v.service = s.name AND v.version = s.current_version"
)


def _dumps(values: dict[str, Any]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class ConfigStore:
    """Async context manager owning the manager's database connection."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self.schema_version = 0
        # This process is the database's only writer (one manager per database), so the
        # epoch and each service's current version are cached and kept up to date here.
        self._epoch = 0
        self._current: dict[str, StoredVersion] = {}
        self._tokens: dict[str, tuple[float, TokenRecord | None]] = {}
        # The highest epoch of this manager's own messages seen on the broker (set by the
        # publisher's read-back): every epoch bump moves above it too.
        self.fleet_floor: int | None = None

    async def __aenter__(self) -> Self:
        self.schema_version = await asyncio.to_thread(migrate, self.path)
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            for pragma in PRAGMAS:
                await conn.execute(pragma)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        async with self._lock:
            rows = await self._all("SELECT value FROM meta WHERE key = 'epoch'")
            self._epoch = int(rows[0][0])
            rows = await self._all(_CURRENT_SQL + " ORDER BY s.name")
            self._current = {row[0]: _version(row) for row in rows}
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("the store is not open")
        return self._conn

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

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
        async with self._lock:
            new = max(self._epoch + 1, int(time.time()), (self.fleet_floor or 0) + 1)
            await self._set_epoch(new)
        return new

    async def raise_epoch_above(self, floor: int) -> int:
        """Make the epoch at least ``floor + 1`` (and at least ``old + 1``); returns it."""
        async with self._lock:
            new = max(self._epoch + 1, floor + 1)
            await self._set_epoch(new)
        return new

    async def _set_epoch(self, new: int) -> None:
        if new > MAX_POSITION:
            raise ValueError(f"epoch {new} would be at or above 2^48: see docs/operations.md")
        await self.conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(new),))
        self._epoch = new

    # -- configs -------------------------------------------------------------------------
    async def current(self, service: str) -> StoredVersion | None:
        return self._current.get(service)

    async def version(self, service: str, version: int) -> StoredVersion | None:
        async with self._lock:
            rows = await self._all(
                "SELECT service, version, epoch, values_json, created_at, created_by, change_id "
                "FROM versions WHERE service = ? AND version = ?",
                (service, version),
            )
        return _version(rows[0]) if rows else None

    async def history(self, service: str, limit: int = 50) -> list[StoredVersion]:
        async with self._lock:
            rows = await self._all(
                "SELECT service, version, epoch, values_json, created_at, created_by, change_id "
                "FROM versions WHERE service = ? ORDER BY version DESC LIMIT ?",
                (service, limit),
            )
        return [_version(r) for r in rows]

    async def services(self) -> list[ServiceSummary]:
        return [
            ServiceSummary(v.service, v.version, v.created_at)
            for v in sorted(self._current.values(), key=lambda v: v.service)
        ]

    async def current_all(self) -> list[StoredVersion]:
        return sorted(self._current.values(), key=lambda v: v.service)

    async def write(self, changes: Iterable[NewVersion], *, actor: str) -> list[StoredVersion]:
        """Store one new version per change and its outbox row, all in ONE transaction.

        Raises :class:`VersionConflict` (and writes nothing) if any change's expected
        version is not the current one.
        """
        changes = list(changes)
        change_id = secrets.token_hex(8)
        created = now_iso()
        stored: list[StoredVersion] = []
        async with self._lock:
            conn = self.conn
            epoch = self._epoch
            single = len(changes) == 1
            if not single:
                await conn.execute("BEGIN IMMEDIATE")
            try:
                for change in changes:
                    version = change.expected_version + 1
                    try:
                        # One statement: the triggers check the version, advance the
                        # service and add the outbox row (id = this row's rowid).
                        cur = await conn.execute(
                            "INSERT INTO versions (service, version, epoch, values_json, "
                            "created_at, created_by, change_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (
                                change.service,
                                version,
                                epoch,
                                _dumps(change.values),
                                created,
                                actor,
                                change_id,
                            ),
                        )
                    except sqlite3.IntegrityError as exc:
                        if "version conflict" not in str(exc):
                            raise
                        raise VersionConflict(
                            change.service,
                            change.expected_version,
                            self._version_of(change.service),
                        ) from None
                    outbox_id = cur.lastrowid
                    await cur.close()
                    stored.append(
                        StoredVersion(
                            change.service,
                            version,
                            epoch,
                            change.values,
                            created,
                            actor,
                            change_id,
                            outbox_id,
                        )
                    )
                if not single:
                    await conn.execute("COMMIT")
            except BaseException:
                if not single:
                    # A failed COMMIT may already have ended the transaction.
                    with contextlib.suppress(sqlite3.OperationalError):
                        await conn.execute("ROLLBACK")
                raise
            for item in stored:
                self._current[item.service] = item
        return stored

    def _version_of(self, service: str) -> int:
        current = self._current.get(service)
        return current.version if current else 0

    # -- outbox --------------------------------------------------------------------------
    async def pending(self, limit: int) -> list[OutboxItem]:
        """Unpublished outbox rows in write order, with the values to publish."""
        async with self._lock:
            rows = await self._all(
                "SELECT o.id, o.service, o.version, v.values_json, o.created_at FROM outbox o "
                "JOIN versions v ON v.service = o.service AND v.version = o.version "
                "WHERE o.published_at IS NULL ORDER BY o.id LIMIT ?",
                (limit,),
            )
        return [OutboxItem(int(r[0]), r[1], int(r[2]), json.loads(r[3]), r[4]) for r in rows]

    async def mark_published(self, ids: Sequence[int]) -> None:
        """Mark outbox rows published. Not fsynced on its own (``synchronous=NORMAL``): a
        mark lost in a power cut only means one more (duplicate) publication, and the next
        durable commit syncs it anyway."""
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        async with self._lock:
            conn = self.conn
            await conn.execute("PRAGMA synchronous = NORMAL")
            try:
                await conn.execute(
                    f"UPDATE outbox SET published_at = ? WHERE id IN ({marks})",  # noqa: S608
                    (now_iso(), *ids),
                )
            finally:
                await conn.execute("PRAGMA synchronous = FULL")

    async def outbox_depth(self) -> int:
        async with self._lock:
            rows = await self._all("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        return int(rows[0][0])

    # -- tokens --------------------------------------------------------------------------
    async def add_token(self, name: str, role: str, token_hash: str, *, created_by: str) -> None:
        async with self._lock:
            await self.conn.execute(
                "INSERT INTO tokens (name, role, token_hash, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, role, token_hash, now_iso(), created_by),
            )

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        """The token with this hash (cached briefly: tokens made by the CLI appear at once,
        revocations through the API at once, direct database edits within the TTL)."""
        cached = self._tokens.get(token_hash)
        if cached is not None and cached[1] is not None and time.monotonic() < cached[0]:
            return cached[1]
        async with self._lock:
            rows = await self._all(
                "SELECT name, role, created_at, created_by, revoked_at FROM tokens "
                "WHERE token_hash = ?",
                (token_hash,),
            )
        record = TokenRecord(*rows[0]) if rows else None
        if record is not None:
            self._tokens[token_hash] = (time.monotonic() + _TOKEN_TTL_S, record)
        return record

    async def tokens(self) -> list[TokenRecord]:
        async with self._lock:
            rows = await self._all(
                "SELECT name, role, created_at, created_by, revoked_at FROM tokens ORDER BY name"
            )
        return [TokenRecord(*r) for r in rows]

    async def revoke_token(self, name: str) -> bool:
        async with self._lock:
            cur = await self.conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (now_iso(), name),
            )
            count = cur.rowcount
            await cur.close()
            self._tokens.clear()
        return count > 0


def _version(row: Sequence[Any]) -> StoredVersion:
    return StoredVersion(
        row[0], int(row[1]), int(row[2]), json.loads(row[3]), row[4], row[5], row[6]
    )
