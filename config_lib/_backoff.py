"""The project's one retry policy: capped exponential backoff with jitter."""

from __future__ import annotations

import asyncio
import random

__all__ = ["Backoff"]


class Backoff:
    """Delays of ``initial``, ``2·initial``, ... capped at ``maximum``, each with jitter.

    Each wait is drawn uniformly from [delay/2, delay] so that many clients cut off by the
    same broker restart do not reconnect in lockstep. :meth:`reset` after a success.
    """

    def __init__(self, initial: float, maximum: float) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self._delay = initial

    def reset(self) -> None:
        self._delay = self.initial

    def next_delay(self) -> float:
        """The next wait (jittered); the one after it doubles, up to the cap."""
        wait = self._delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
        self._delay = min(self._delay * 2, self.maximum)
        return wait

    async def sleep(self) -> float:
        """Sleep for :meth:`next_delay`; returns how long."""
        wait = self.next_delay()
        await asyncio.sleep(wait)
        return wait
