"""Stream audio into a running orchestrator and follow its merged transcript.

Used by the ``transcribe`` command, the end-to-end tests and the bench: publishes
frames on ``audio/input/<session>`` (the chunk framing, last frame marked
``{"final": true}``) and collects the documents from ``transcripts/final/<session>``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import numpy as np
import numpy.typing as npt

from workers.common import AudioChunk, audio_input_topic, encode_chunk, final_transcripts_topic

__all__ = ["NoAnswerError", "StreamResult", "stream_audio"]

Progress = Callable[[float, float, dict[str, Any] | None], None]
"""Called with (seconds sent, seconds transcribed, latest document or None)."""


class NoAnswerError(TimeoutError):
    """No transcript document came back within ``answer_timeout_s`` of the audio being sent:
    no orchestrator or no STT worker is serving the broker."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no STT worker answered in {seconds:g} s")
        self.seconds = seconds


@dataclass
class StreamResult:
    """What came back for one streamed session."""

    session: str
    final: dict[str, Any]
    documents: list[dict[str, Any]] = field(default_factory=list)
    sent_at: dict[int, float] = field(default_factory=dict)  # frame end sample -> time sent
    received_at: list[float] = field(default_factory=list)  # monotonic time of each document

    @property
    def text(self) -> str:
        return str(self.final.get("text", ""))


async def stream_audio(
    client: aiomqtt.Client,
    session: str,
    pcm: npt.NDArray[np.int16],
    *,
    sample_rate: int = 16000,
    frame_s: float = 0.5,
    realtime: bool = False,
    timeout_s: float = 300.0,
    progress: Progress | None = None,
    before_frame: Callable[[float], Awaitable[None]] | None = None,
    answer_timeout_s: float | None = None,
) -> StreamResult:
    """Send ``pcm`` as session ``session`` and wait for its final merged transcript.

    ``client`` must be connected; this subscribes to the session's transcript topic
    before sending. With ``realtime`` frames are paced at the speed of speech.
    ``before_frame`` is awaited with each frame's offset (seconds) before it is sent
    (tests use it to change the config at a known point of the stream).
    Raises ``TimeoutError`` if the final transcript does not come within ``timeout_s``
    after the last frame, and :class:`NoAnswerError` (a ``TimeoutError``) if, with
    ``answer_timeout_s`` set, no transcript document at all has come within that many
    seconds after the last frame (nothing is serving the session).
    """
    topic = final_transcripts_topic(session)
    await client.subscribe(topic, qos=1)
    documents: list[dict[str, Any]] = []
    received_at: list[float] = []
    sent_at: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    final: asyncio.Future[dict[str, Any]] = loop.create_future()
    first: asyncio.Future[None] = loop.create_future()
    sent_s = 0.0

    async def listen() -> None:
        async for message in client.messages:
            if message.topic.value != topic or not isinstance(message.payload, bytes):
                continue
            doc = json.loads(message.payload)
            documents.append(doc)
            received_at.append(time.monotonic())
            if not first.done():
                first.set_result(None)
            if progress is not None:
                progress(sent_s, _transcribed_s(doc), doc)
            if doc.get("final") and not final.done():
                final.set_result(doc)
                return

    listener = asyncio.create_task(listen(), name=f"listen-{session}")
    try:
        frame = max(1, round(frame_s * sample_rate))
        started = time.monotonic()
        n = len(pcm)
        pos = 0
        while True:
            end = min(n, pos + frame)
            last = end >= n
            chunk = AudioChunk(
                session=session,
                chunk_id=pos // frame,
                offset_s=pos / sample_rate,
                sample_rate=sample_rate,
                pcm=pcm[pos:end].astype("<i2").tobytes(),
                extra={"final": True} if last else {},
            )
            if before_frame is not None:
                await before_frame(pos / sample_rate)
            if realtime:
                due = started + end / sample_rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            await client.publish(audio_input_topic(session), encode_chunk(chunk), qos=1)
            sent_at[end] = time.monotonic()
            sent_s = end / sample_rate
            if progress is not None:
                progress(sent_s, _transcribed_s(documents[-1]) if documents else 0.0, None)
            pos = end
            if last:
                break
        if answer_timeout_s is not None and answer_timeout_s < timeout_s:
            try:
                await asyncio.wait_for(asyncio.shield(first), answer_timeout_s)
            except TimeoutError:
                raise NoAnswerError(answer_timeout_s) from None
        doc = await asyncio.wait_for(asyncio.shield(final), timeout_s)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await client.unsubscribe(topic)
    return StreamResult(session, doc, documents, sent_at, received_at)


def _transcribed_s(doc: dict[str, Any]) -> float:
    answered = [c["end_s"] for c in doc.get("chunks", []) if c.get("answered")]
    return float(max(answered, default=0.0))
