"""Helpers for the STT tests: read real speech, cut it into chunks, talk to the worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import soundfile as sf

from config_lib import MqttEndpoint
from workers.common import (
    AudioChunk,
    audio_chunks_topic,
    encode_chunk,
    stt_errors_topic,
    stt_transcripts_topic,
)

SAMPLE_RATE = 16000
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def librispeech(key: str) -> tuple[bytes, str]:
    """A LibriSpeech utterance as PCM bytes, with its reference transcript."""
    rows = dict(
        line.split("\t")
        for line in (DATA / "librispeech" / "transcripts.tsv").read_text().splitlines()
    )
    return read_pcm16(DATA / "librispeech" / f"{key}.flac"), rows[key]


def read_pcm16(path: Path) -> bytes:
    """A 16 kHz mono recording as 16-bit little-endian PCM bytes."""
    samples, rate = sf.read(path, dtype="int16", always_2d=False)
    assert rate == SAMPLE_RATE, f"{path} is {rate} Hz"
    assert samples.ndim == 1, f"{path} is not mono"
    return np.ascontiguousarray(samples, dtype="<i2").tobytes()


def cut(session: str, pcm: bytes, seconds: float, *, first_id: int = 0) -> Iterator[AudioChunk]:
    """Consecutive chunks of at most ``seconds`` of audio, without overlap."""
    step = int(seconds * SAMPLE_RATE) * 2
    for index, start in enumerate(range(0, len(pcm), step)):
        yield AudioChunk(
            session=session,
            chunk_id=first_id + index,
            offset_s=start / 2 / SAMPLE_RATE,
            sample_rate=SAMPLE_RATE,
            pcm=pcm[start : start + step],
        )


def normalise(text: str) -> str:
    """Lower case, no punctuation, common contractions expanded (for WER)."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"\bi'm\b", "i am", text)
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text).split())


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class SessionClient:
    """Publishes chunks of one session and collects the worker's answers for it."""

    client: aiomqtt.Client
    session: str
    transcripts: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    errors: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def send(self, chunk: AudioChunk) -> None:
        await self.client.publish(audio_chunks_topic(chunk.session), encode_chunk(chunk), qos=1)

    async def send_raw(self, payload: bytes, session: str | None = None) -> None:
        await self.client.publish(audio_chunks_topic(session or self.session), payload, qos=1)

    async def transcript(self, within: float = 60) -> dict[str, Any]:
        """The next transcript of the session, waiting at most ``within`` seconds."""
        return await asyncio.wait_for(self.transcripts.get(), within)

    async def error(self, within: float = 30) -> dict[str, Any]:
        """The next error event of the session, waiting at most ``within`` seconds."""
        return await asyncio.wait_for(self.errors.get(), within)

    async def _pump(self) -> None:
        errors_topic = stt_errors_topic(self.session)
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            body = json.loads(message.payload)
            if message.topic.matches(errors_topic):
                await self.errors.put(body)
            else:
                await self.transcripts.put(body)


@contextlib.asynccontextmanager
async def session_client(endpoint: MqttEndpoint, session: str) -> AsyncIterator[SessionClient]:
    """Connect as the orchestrator would, subscribed to one session's answers."""
    async with aiomqtt.Client(**endpoint.client_kwargs(), identifier=unique("test-orch")) as client:
        await client.subscribe(stt_transcripts_topic(session), qos=1)
        await client.subscribe(stt_errors_topic(session), qos=1)
        listener = SessionClient(client, session)
        pump = asyncio.create_task(listener._pump(), name=f"pump-{session}")
        try:
            yield listener
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
