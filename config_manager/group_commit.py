"""``GroupCommitter``: many writers' versions in ONE durable transaction (group commit).

Writers hand their validated change (a :class:`~config_manager.store.WriteMember`: the new
versions, audit entries and idempotency claim of one request) to :meth:`GroupCommitter.commit`
and wait. One flusher task takes every member queued so far and asks the store to commit
them together (:meth:`ConfigStore.write_group`): one transaction, one fsync
(``synchronous`` stays FULL), each member in a savepoint of its own so that a member that
fails (a version conflict, an integrity error) is rolled back alone while the others commit.
While one transaction commits, the next writers queue up; nothing waits on a timer, so a
lone writer is committed at once and a crowd shares each fsync.

Only after the transaction's COMMIT returned are the members' versions handed on (the
``committed`` callback: the publisher's queue, in commit order) and their writers woken. A
failed COMMIT (disk full, I/O error) fails every member of the batch: nothing of it was
written, nothing of it is published.

Dialect-neutral: it only needs the store's ``write_group``; savepoints are standard SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from .store import StoredVersion, WriteMember

__all__ = ["GroupCommitter", "GroupStore"]

_log = logging.getLogger(__name__)


class GroupStore(Protocol):
    async def write_group(
        self, members: Sequence[WriteMember]
    ) -> list[list[StoredVersion] | BaseException]: ...


class GroupCommitter:
    """Queue of writers' changes, committed in batches by one flusher task."""

    def __init__(
        self,
        store: GroupStore,
        *,
        committed: Callable[[WriteMember, list[StoredVersion]], None],
        max_batch: int = 256,
    ) -> None:
        self._store = store
        self._committed = committed
        self._max_batch = max_batch
        self._queue: list[tuple[WriteMember, asyncio.Future[list[StoredVersion]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.batches = 0  # transactions committed (or attempted), for tests and metrics
        self.last_batch_size = 0

    def commit(self, member: WriteMember) -> asyncio.Future[list[StoredVersion]]:
        """Queue ``member``; the future resolves once its transaction committed (or fails)."""
        future: asyncio.Future[list[StoredVersion]] = asyncio.get_running_loop().create_future()
        # A writer whose client hung up no longer awaits it: its outcome is retrieved here.
        future.add_done_callback(_retrieve)
        self._queue.append((member, future))
        self._idle.clear()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="group-commit")
        return future

    async def idle(self) -> None:
        """Wait until every queued member's transaction has ended."""
        await self._idle.wait()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def aclose(self) -> None:
        """Let the queued members commit (a closing app acknowledges what it accepted)."""
        flusher = self._flusher
        if flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(flusher)

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = (
                    self._queue[: self._max_batch],
                    self._queue[self._max_batch :],
                )
                members = [m for m, _ in batch]
                self.batches += 1
                self.last_batch_size = len(members)
                try:
                    outcomes = await self._store.write_group(members)
                except BaseException as exc:  # the whole batch failed: nothing of it was written
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (member, future), outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        if not future.done():
                            future.set_exception(outcome)
                        continue
                    # Committed: handed on (publication) before anyone hears of it.
                    try:
                        self._committed(member, outcome)
                    except Exception:  # pragma: no cover - a bug in a callback
                        _log.exception("group commit: the committed callback failed")
                    if not future.done():
                        future.set_result(outcome)
        finally:
            if not self._queue:
                self._idle.set()


def _retrieve(future: asyncio.Future[list[StoredVersion]]) -> None:
    if not future.cancelled():
        future.exception()
