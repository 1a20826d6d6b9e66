"""Deferred, coalesced settling of applied updates: the LKG file and the applied report.

After an update is applied (callbacks run), a library still owes two things: the LKG
file (the envelope in force, written with an fsync) and its signed applied report. Doing
them at once, on the event loop, puts them on the path of every other ConfigLibrary of
the same process that is still waiting for its own copy of the update (a fleet of
libraries in one process receives one message each, back to back). So a library only
marks them due and asks the :class:`Settler` of its event loop, which runs them when
the process is quiet: no new request for :data:`QUIET` seconds (at most
:data:`MAX_DELAY` after the oldest request): the LKG files of every library then due
written in one job on the default executor (one thread hand-off per burst), then their
reports published :data:`CHUNK` at a time, the loop serving the messages that arrived
meanwhile between chunks (fewer hand-offs and loop turns: less CPU per library, see
docs/config_lib.md).

Coalescing: what a library writes and reports is what is in force when the settler runs
(``ConfigLibrary._settle_lkg`` reads the envelope in force, the report names the version
in force), so versions superseded meanwhile are never written or reported. Nothing is
lost on close: ``ConfigLibrary`` settles its own due work before its offline report.
``wait_for_version`` and ``wait_for_received`` return only once the work is done.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Final, Protocol

__all__ = ["MAX_DELAY", "QUIET", "Settler", "settler"]

logger = logging.getLogger("config_lib")
QUIET: Final = 0.25  # seconds without a new request before due work runs
MAX_DELAY: Final = 2.0  # ...but never later than this after the oldest request
YIELDS: Final = 4  # loop turns a message needs from the socket to a request
CHUNK: Final = 64  # reports published between two turns of the loop


class Settles(Protocol):
    """What the settler needs of a library (``ConfigLibrary`` provides it)."""

    def _settle_lkg(self) -> Callable[[], OSError | None] | None:
        """On the loop: the LKG write now due (run off the loop), or None."""

    def _settled_lkg(self, error: OSError | None) -> None:
        """On the loop, after the write: record its outcome."""

    async def _settle_report(self) -> None:
        """On the loop: publish the report now due, mark the library settled, wake waiters."""


def _run_all(jobs: list[Callable[[], OSError | None] | None]) -> list[OSError | None]:
    return [None if job is None else job() for job in jobs]


class Settler:
    """One per event loop: runs the due settle work of its libraries (see module doc)."""

    def __init__(self) -> None:
        # No reference to the loop (the registry's key), so a closed loop can go away.
        self._due: dict[Settles, None] = {}  # an ordered set
        # Open libraries on this loop: alone, a library has no other to make way for and
        # settles at once (no QUIET, no MAX_DELAY).
        self.members = 0
        self._busy: set[Settles] = set()  # being settled in the current chunk
        self._last = 0.0
        self._first = 0.0
        self._task: asyncio.Task[None] | None = None
        self._chunk_done = asyncio.Event()

    def request(self, lib: Settles) -> None:
        """``lib`` has due work: run it once the process is quiet."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._due:
            self._first = now
        self._due[lib] = None
        self._last = now
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="config_lib:settle")

    async def settle_now(self, lib: Settles) -> None:
        """Run ``lib``'s due work now (close), after the chunk it is in, if any."""
        self._due.pop(lib, None)
        while lib in self._busy:
            await self._chunk_done.wait()
        await self._settle([lib])

    def _wait(self, now: float) -> float:
        if self.members <= 1:
            return 0.0
        return min(self._last + QUIET, self._first + MAX_DELAY) - now

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due:
            # A deadline that moves with each request: slept to, not an Event.
            while (wait := self._wait(loop.time())) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)
            # The timer fires in the same loop turn as the socket reads that came in while
            # this process waited for the CPU; their applies (and requests) come a few
            # turns later: let them, and wait on if any did.
            for _ in range(YIELDS):
                await asyncio.sleep(0)
            if self._wait(loop.time()) > 0:
                continue
            batch = [lib for lib in self._due if lib not in self._busy]
            if not batch:  # all being settled by settle_now(): after that
                await self._chunk_done.wait()
                continue
            for lib in batch:
                del self._due[lib]
            self._first = loop.time()  # requests made meanwhile: a batch right after
            await self._settle(batch)
            await asyncio.sleep(0)  # messages that arrived meanwhile go first
        self._task = None  # done: no reference to the loop kept

    async def _settle(self, batch: list[Settles]) -> None:
        """One library is settled by one caller at a time (``_busy``)."""
        self._busy.update(batch)
        try:
            await self._flush(batch)
        finally:
            self._busy.difference_update(batch)
            done, self._chunk_done = self._chunk_done, asyncio.Event()
            done.set()

    async def _flush(self, batch: list[Settles]) -> None:
        jobs = [lib._settle_lkg() for lib in batch]
        if any(job is not None for job in jobs):
            errors = await asyncio.get_running_loop().run_in_executor(None, _run_all, jobs)
            for lib, job, error in zip(batch, jobs, errors, strict=True):
                if job is not None:
                    lib._settled_lkg(error)
        for index, lib in enumerate(batch):
            if index and index % CHUNK == 0:
                await asyncio.sleep(0)  # messages that arrived meanwhile go first
            try:
                await lib._settle_report()
            # One library's failure must not leave the others unsettled (their waiters
            # would wait for ever); it is logged with its traceback.
            except Exception:
                logger.exception("applied report not settled")


_SETTLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Settler] = (
    weakref.WeakKeyDictionary()
)


def settler() -> Settler:
    """The settler of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _SETTLERS.get(loop)
    if found is None:
        found = _SETTLERS[loop] = Settler()
    return found
