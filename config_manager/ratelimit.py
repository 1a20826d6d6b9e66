"""Rate limits (the ``limits`` library, in memory, moving windows): 429 problem+json with
``Retry-After``.

* Failed authentication, per client address: only requests whose token is missing, unknown
  or revoked count, and only they are refused; a request with a valid token never meets
  this limiter (an address shared with an attacker must not lock the admin out).
* Writes, per token: every PUT, PATCH, rollback, preset, import.

The asyncio flavour of the library (``limits.aio``): its memory storage expires entries in
a task on the event loop, where the threaded one starts a timer thread on every hit (a
thread start per write was a measurable part of a write's time). That task, started
again on every hit, hands each key's list to a worker thread; :class:`_SweptMemoryStorage`
lets it run at most once a second (it only frees memory: whether a hit is allowed is
decided from the entries' times, swept or not).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from .problems import Problem

__all__ = ["RateLimits"]


class _SweptMemoryStorage(MemoryStorage):
    """``limits``' asyncio memory storage, its expiry sweep at most every ``sweep_s``."""

    sweep_s = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = 0.0

    # The library's private hook, called on every hit (name-mangled in MemoryStorage).
    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_s
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


class RateLimits:
    def __init__(self, *, auth_failures: str, writes: str) -> None:
        self._limiter = MovingWindowRateLimiter(_SweptMemoryStorage())
        self._auth = parse_many(auth_failures) if auth_failures.strip() else []
        self._writes = parse_many(writes) if writes.strip() else []

    async def _hit(
        self, items: list[RateLimitItem], namespace: str, key: str, what: str
    ) -> None:
        for item in items:
            if not await self._limiter.hit(item, namespace, key):
                stats = await self._limiter.get_window_stats(item, namespace, key)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                raise Problem(
                    429,
                    "Too many requests",
                    f"{what}: at most {item} ({namespace}); retry in {retry} s",
                    kind="rate-limited",
                    headers={"Retry-After": str(retry)},
                    retry_after_s=retry,
                )

    async def auth_failed(self, address: str) -> None:
        """Count a failed authentication from ``address``; raises 429 over the limit."""
        await self._hit(self._auth, "auth-failures", address, "too many failed authentications")

    async def write(self, token: str) -> None:
        """Count a write by ``token``; raises 429 over the limit."""
        await self._hit(self._writes, "writes", token, "too many writes by this token")
