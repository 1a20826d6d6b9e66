"""stop_tasks: every owned task ends, even one that swallows a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from config_lib import stop_tasks


async def test_a_task_that_survives_one_cancel_is_cancelled_again() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        # What asyncio.wait_for does on Python 3.11 when the cancel and the result race.
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # let it start waiting
    failures = await asyncio.wait_for(stop_tasks([task], retry_s=0.05), timeout=5)
    assert swallowed.is_set()
    assert task.cancelled()
    assert failures == []


async def test_failed_tasks_are_returned_not_raised() -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    async def idle() -> None:
        await asyncio.Event().wait()

    bad, good = asyncio.create_task(broken()), asyncio.create_task(idle())
    await asyncio.wait([bad], timeout=5)
    failures = await stop_tasks([bad, good])
    assert [(t, type(e)) for t, e in failures] == [(bad, RuntimeError)]
    assert good.cancelled()


@pytest.mark.parametrize("count", [0, 3])
async def test_done_tasks_need_no_cancelling(count: int) -> None:
    async def quick() -> int:
        return 1

    tasks = [asyncio.create_task(quick()) for _ in range(count)]
    await asyncio.gather(*tasks)
    assert await stop_tasks(tasks) == []
