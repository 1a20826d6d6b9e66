"""Stopping the tasks a long-lived object owns: the one place for the shutdown workaround."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["stop_tasks"]

_RETRY_S = 0.5


async def stop_tasks(
    tasks: Iterable[asyncio.Task[Any]], *, retry_s: float = _RETRY_S
) -> list[tuple[asyncio.Task[Any], BaseException]]:
    """Cancel ``tasks`` and wait until every one has ended; return those that had failed.

    Python 3.11's ``asyncio.wait_for`` (used inside aiomqtt for every acknowledgement)
    swallows a cancellation that lands in the loop iteration where the awaited future
    completes, so a task can survive one ``cancel()``. A task still running ``retry_s``
    after being cancelled is cancelled again, until it ends.
    """
    owned = list(tasks)
    pending = {task for task in owned if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_s)
    return [
        (task, error)
        for task in owned
        if not task.cancelled() and (error := task.exception()) is not None
    ]
