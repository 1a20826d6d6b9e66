"""``PublisherLease``: which replica publishes (PostgreSQL only; see docs/manager.md, *Replicas*).

Several managers may share one PostgreSQL database; every one accepts reads and writes,
exactly one publishes: the holder of the row of ``publisher_lease`` (holder, generation,
expiry). A lock held by a connection would not do: a stopped process keeps its connection.

* **Acquire**: only once the row has expired by the database server's clock (one clock for
  every replica); the acquisition takes the next generation.
* **Renew**: every third of the lease, by its holder at its generation.
* **Stop in time**: the holder publishes only before its own monotonic *deadline*: the
  moment it *sent* its last successful renewal plus the lease, minus a margin. The server
  set the expiry at the same moment or later, so the deadline always passes first: when a
  successor can take the lease, the old holder has already stopped publishing, even if it
  was stopped (SIGSTOP) and resumed meanwhile — it checks its deadline before every publish.
* **Fence**: the new holder raises the epoch before publishing and republishes every
  current config, so instances refuse whatever an older holder may still have in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from .dialects import PostgresUrl

if TYPE_CHECKING:
    import psycopg

__all__ = ["LeaseLost", "PublisherLease"]

_log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """This replica no longer holds the publisher lease (or its deadline passed)."""


class PublisherLease:
    """The publisher lease of one replica (``holder``), on its own database connection."""

    def __init__(self, url: PostgresUrl, holder: str, ttl_s: float) -> None:
        self.url = url
        self.holder = holder
        self.ttl_s = ttl_s
        self.margin_s = max(0.05, ttl_s / 10)
        self.generation: int | None = None
        self.deadline = 0.0  # monotonic: publish nothing at or after it
        self.acquired_at = 0.0  # monotonic time of the last acquisition
        self.lost = asyncio.Event()
        self._conn: psycopg.AsyncConnection[Any] | None = None

    @property
    def valid(self) -> bool:
        """Whether this replica may publish now."""
        return self.generation is not None and time.monotonic() < self.deadline

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless this replica may publish now."""
        if not self.valid:
            if self.generation is not None:
                _log.warning(
                    "publisher lease generation %d: deadline passed, publishing stops",
                    self.generation,
                )
                self._drop()
            raise LeaseLost("this replica does not hold the publisher lease")

    def _drop(self) -> None:
        self.generation = None
        self.lost.set()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url.url, autocommit=True, application_name="config_manager-lease"
            )
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def holder_now(self) -> tuple[str, int, float]:
        """``(holder, generation, seconds until expiry)`` as the database sees them."""
        conn = await self._connection()
        cur = await conn.execute(
            "SELECT holder, generation, "
            "GREATEST(EXTRACT(EPOCH FROM expires_at - now()), -1e9)::float8 "
            "FROM publisher_lease WHERE id = 1"
        )
        row = await cur.fetchone()
        assert row is not None
        return str(row[0]), int(row[1]), float(row[2])

    async def try_acquire(self) -> bool:
        """Take the lease if it has expired; True when this replica now holds it."""
        import psycopg

        sent = time.monotonic()
        try:
            conn = await self._connection()
            cur = await conn.execute(
                "UPDATE publisher_lease SET holder = %s, generation = generation + 1, "
                "acquired_at = now(), expires_at = now() + make_interval(secs => %s) "
                "WHERE id = 1 AND expires_at < now() RETURNING generation",
                (self.holder, self.ttl_s),
            )
            row = await cur.fetchone()
        except psycopg.Error as exc:
            _log.warning("publisher lease: cannot reach the database: %s", exc)
            return False
        if row is None:
            return False
        self.generation = int(row[0])
        self.deadline = sent + self.ttl_s - self.margin_s
        self.acquired_at = time.monotonic()
        self.lost.clear()
        _log.warning("publisher lease acquired: generation %d (%s)", self.generation, self.holder)
        return True

    async def acquire(self) -> int:
        """Wait until this replica holds the lease; returns its generation."""
        while True:
            if await self.try_acquire():
                assert self.generation is not None
                return self.generation
            try:
                _, _, remaining = await self.holder_now()
            except Exception:  # the database is unreachable: retry after a while
                remaining = self.ttl_s / 4
            await asyncio.sleep(min(max(remaining, 0.02), self.ttl_s / 4))

    async def renew(self) -> bool:
        """Extend the lease; False (and the lease dropped) when it was lost."""
        import psycopg

        generation = self.generation
        if generation is None:
            return False
        sent = time.monotonic()
        try:
            conn = await self._connection()
            cur = await conn.execute(
                "UPDATE publisher_lease SET expires_at = now() + make_interval(secs => %s) "
                "WHERE id = 1 AND holder = %s AND generation = %s AND expires_at > now() "
                "RETURNING generation",
                (self.ttl_s, self.holder, generation),
            )
            row = await cur.fetchone()
        except psycopg.Error as exc:
            _log.warning("publisher lease: renewal failed: %s", exc)
            return self.valid  # keep publishing until the deadline; retried meanwhile
        if row is None or self.generation != generation or time.monotonic() >= self.deadline:
            if self.generation == generation:
                _log.warning("publisher lease generation %d lost", generation)
                self._drop()
            return False
        self.deadline = sent + self.ttl_s - self.margin_s
        return True

    async def keep(self) -> None:
        """Renew every third of the lease while held (a task of the publisher)."""
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            if self.generation is not None:
                await self.renew()

    async def release(self) -> None:
        """Give the lease up at shutdown (a successor need not wait out the expiry)."""
        generation, self.generation = self.generation, None
        if generation is None:
            return
        with contextlib.suppress(Exception):
            conn = await self._connection()
            await conn.execute(
                "UPDATE publisher_lease SET expires_at = '-infinity' "
                "WHERE id = 1 AND holder = %s AND generation = %s",
                (self.holder, generation),
            )
