"""Fixtures of the orchestrator tests: a real STT worker on the session's broker."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from workers.stt import SttConfig, SttWorker, SttWorkerSettings
from workers.stt.engine import WhisperEngine


@pytest.fixture
async def stt(broker: Any, engine: WhisperEngine) -> AsyncIterator[SttWorker]:
    """An STT worker (tiny.en, SttConfig defaults) connected and subscribed."""
    async with SttWorker(
        endpoint=broker.endpoint("stt"),
        instance_id=f"stt-{secrets.token_hex(3)}",
        config=SttConfig(),
        settings=SttWorkerSettings(persistent_session=False),
        engine=engine,
    ) as worker:
        await asyncio.wait_for(worker.wait_ready(), 15)
        yield worker
