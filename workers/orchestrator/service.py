"""The running orchestrator: MQTT in and out around :class:`Session` objects.

Topics (see :mod:`workers.common.topics`):

* reads ``audio/input/<session>``: live audio in the chunk framing of
  :mod:`workers.common.chunks`; a header ``extra`` of ``{"final": true}`` ends the session
  (the frame may carry the last audio or none);
* writes ``audio/chunks/<session>``: overlapping chunks for the STT worker;
* reads ``stt/transcripts/<session>`` and ``stt/errors/<session>``;
* writes ``transcripts/final/<session>``: the merged, growing transcript (JSON, QoS 1),
  republished after every merged chunk, ``"final": true`` once the session has closed.

A session closes on its end marker or after ``session_idle_timeout_s`` without audio;
its tail is flushed and its final transcript is published when the STT worker answered
every chunk (or ``transcript_timeout_s`` later without the missing ones).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import aiomqtt

from config_lib import Backoff, MqttEndpoint, stop_tasks
from workers.common import (
    AUDIO_INPUT_PREFIX,
    STT_ERRORS_PREFIX,
    STT_TRANSCRIPTS_PREFIX,
    AudioChunk,
    ChunkDecodeError,
    InvalidNameError,
    audio_chunks_topic,
    decode_chunk,
    encode_chunk,
    final_transcripts_topic,
    session_from_topic,
    wildcard,
)
from workers.orchestrator.chunker import Chunk
from workers.orchestrator.config import OrchestratorConfig
from workers.orchestrator.session import Session, TranscriptError
from workers.orchestrator.settings import OrchestratorSettings

__all__ = ["Orchestrator", "OrchestratorConfigChange", "OrchestratorStats"]

_log = logging.getLogger(__name__)


class OrchestratorConfigChange(Protocol):
    """What :meth:`Orchestrator.apply_config` needs of a ConfigLibrary change."""

    @property
    def new(self) -> OrchestratorConfig: ...

    @property
    def version(self) -> int | None: ...


@dataclass
class OrchestratorStats:
    """Counters for tests, logs and the bench."""

    input_frames: int = 0
    chunks_sent: int = 0
    transcripts: int = 0
    stt_errors: int = 0
    refused_frames: dict[str, int] = field(default_factory=dict)
    sessions_closed: int = 0
    sessions_timed_out: int = 0
    handler_failures: int = 0


@dataclass(slots=True)
class _Outgoing:
    topic: str
    payload: bytes


class Orchestrator:
    """Chunks live audio per session, sends chunks to STT, merges and publishes transcripts.

    ``async with Orchestrator(endpoint=..., settings=..., config=...) as orch:``;
    register :meth:`apply_config` as a ConfigLibrary ``on_change`` callback.
    ``on_published`` (optional) is called with every merged transcript document published,
    which is how the bench measures latency without a second client.
    """

    def __init__(
        self,
        *,
        endpoint: MqttEndpoint,
        settings: OrchestratorSettings,
        config: OrchestratorConfig,
        config_version: int = 0,
        on_published: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._settings = settings
        self._config = config
        self._version = config_version
        self._on_published = on_published
        self.sessions: dict[str, Session] = {}
        self.stats = OrchestratorStats()
        self._inbox: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(settings.max_pending_messages)
        self._outbox: deque[_Outgoing] = deque()
        self._outbox_ready = asyncio.Event()
        self._connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ended_at: dict[str, float] = {}

    # -- lifecycle -------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        if self._tasks:
            raise RuntimeError("an Orchestrator can be entered only once")
        self._tasks = [
            asyncio.create_task(self._connection_loop(), name="orchestrator-connection"),
            asyncio.create_task(self._processing_loop(), name="orchestrator-processing"),
            asyncio.create_task(self._sweep_loop(), name="orchestrator-sweep"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task, error in await stop_tasks(self._tasks):
            _log.error("task %s had failed: %r", task.get_name(), error)

    async def serve_forever(self) -> None:
        """Wait on the orchestrator's tasks; returns or raises only if one of them ends."""
        if not self._tasks:
            raise RuntimeError("enter the orchestrator (async with) before serving")
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()

    async def wait_connected(self) -> None:
        """Return once connected and subscribed."""
        await self._connected.wait()

    @property
    def config(self) -> OrchestratorConfig:
        return self._config

    @property
    def config_version(self) -> int:
        return self._version

    # -- hot apply -------------------------------------------------------------------
    async def apply_config(self, change: OrchestratorConfigChange) -> None:
        """ConfigLibrary callback: new chunking config from each session's next chunk on.

        A session whose sample rate differs from the new config's keeps its current
        config until it ends (a rate cannot change mid-stream); new sessions get the new
        one.
        """
        new, version = change.new, change.version if change.version is not None else 0
        self._config, self._version = new, version
        for session in self.sessions.values():
            if session.sample_rate != new.sample_rate:
                _log.warning(
                    "session %s keeps %d Hz until it ends (config %d asks for %d Hz)",
                    session.session_id,
                    session.sample_rate,
                    version,
                    new.sample_rate,
                )
                continue
            self._send_chunks(session, session.apply(new, version))
        _log.info("chunking config version %d applied (%s)", version, new.preset or "custom")

    # -- MQTT ------------------------------------------------------------------------
    async def _connection_loop(self) -> None:
        settings = self._settings
        endpoint = self._endpoint
        backoff = Backoff(settings.reconnect_initial_s, settings.reconnect_max_s)
        while True:
            try:
                async with aiomqtt.Client(
                    **endpoint.client_kwargs(),
                    identifier=f"orch-{settings.resolved_instance_id()}",
                    clean_session=not settings.persistent_session,
                    keepalive=settings.keepalive_s,
                ) as client:
                    for prefix in (AUDIO_INPUT_PREFIX, STT_TRANSCRIPTS_PREFIX, STT_ERRORS_PREFIX):
                        await client.subscribe(wildcard(prefix), qos=1)
                    self._client = client
                    self._connected.set()
                    backoff.reset()
                    _log.info("connected to %s", endpoint)
                    await self._pump(client)
            except aiomqtt.MqttError as exc:
                _log.warning("MQTT connection to %s lost: %s (retrying)", endpoint, exc)
            finally:
                self._connected.clear()
                self._client = None
            await backoff.sleep()

    async def _pump(self, client: aiomqtt.Client) -> None:
        """Read into the inbox and write the outbox until either side fails."""
        tasks = [
            asyncio.create_task(self._reader(client), name="orchestrator-reader"),
            asyncio.create_task(self._writer(client), name="orchestrator-writer"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise the MqttError that ended it
        finally:
            await stop_tasks(tasks)

    async def _reader(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._inbox.put(message)
        raise aiomqtt.MqttError("message stream ended")

    async def _writer(self, client: aiomqtt.Client) -> None:
        """Publish the outbox in order; a message is removed only once published."""
        while True:
            while not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            item = self._outbox[0]
            await client.publish(item.topic, item.payload, qos=1)
            self._outbox.popleft()

    def _enqueue(self, topic: str, payload: bytes) -> None:
        self._outbox.append(_Outgoing(topic, payload))
        self._outbox_ready.set()

    # -- processing ------------------------------------------------------------------
    async def _processing_loop(self) -> None:
        while True:
            message = await self._inbox.get()
            topic = message.topic.value
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                continue
            try:
                if topic.startswith(AUDIO_INPUT_PREFIX + "/"):
                    self._on_input(topic, bytes(payload))
                elif topic.startswith(STT_TRANSCRIPTS_PREFIX + "/"):
                    self._on_transcript(topic, bytes(payload))
                elif topic.startswith(STT_ERRORS_PREFIX + "/"):
                    self._on_stt_error(topic, bytes(payload))
            except Exception:
                # Dispatch boundary: one message we failed to handle (a bug, not bad
                # input: that is refused above) is logged and must not stop every other
                # session's processing.
                self.stats.handler_failures += 1
                _log.exception("failed to handle a message on %s", topic)

    def _refuse(self, code: str, topic: str, reason: str) -> None:
        self.stats.refused_frames[code] = self.stats.refused_frames.get(code, 0) + 1
        _log.warning("refused input on %s: [%s] %s", topic, code, reason)

    def _on_input(self, topic: str, payload: bytes) -> None:
        if len(payload) > self._settings.max_input_bytes:
            self._refuse("too_large", topic, f"{len(payload)} bytes")
            return
        try:
            topic_session = session_from_topic(AUDIO_INPUT_PREFIX, topic)
            frame = decode_chunk(payload)
        except (InvalidNameError, ChunkDecodeError) as exc:
            self._refuse(getattr(exc, "code", "bad_topic"), topic, str(exc))
            return
        if frame.session != topic_session:
            self._refuse("session_mismatch", topic, f"header says {frame.session!r}")
            return
        session = self.sessions.get(frame.session)
        if session is not None and session.ended:
            self._refuse("session_ended", topic, "frame after the end of the session")
            return
        if session is None:
            if len(self.sessions) >= self._settings.max_sessions:
                self._refuse("too_many_sessions", topic, f"limit {self._settings.max_sessions}")
                return
            if frame.sample_rate != self._config.sample_rate:
                self._refuse(
                    "bad_sample_rate",
                    topic,
                    f"{frame.sample_rate} Hz, expected {self._config.sample_rate} Hz",
                )
                return
            session = Session(frame.session, self._config, self._version)
            self.sessions[frame.session] = session
            _log.info("session %s opened (config version %d)", frame.session, self._version)
        elif frame.sample_rate != session.sample_rate:
            self._refuse(
                "bad_sample_rate",
                topic,
                f"{frame.sample_rate} Hz, session runs at {session.sample_rate} Hz",
            )
            return
        self.stats.input_frames += 1
        if frame.pcm:
            self._send_chunks(session, session.feed(frame.pcm, frame.offset_s))
        if frame.extra.get("final") is True:
            self._end_session(session)

    def _end_session(self, session: Session) -> None:
        self._send_chunks(session, session.end())
        self._ended_at[session.session_id] = asyncio.get_running_loop().time()
        self._maybe_close(session)

    def _send_chunks(self, session: Session, chunks: list[Chunk]) -> None:
        for c in chunks:
            wire = AudioChunk(
                session=session.session_id,
                chunk_id=c.index,
                offset_s=c.start_s,
                sample_rate=c.sample_rate,
                pcm=c.samples.astype("<i2").tobytes(),
                overlap_s=c.overlap_s,
                config_version=c.config_version,
                extra={"final": c.final},
            )
            self._enqueue(audio_chunks_topic(session.session_id), encode_chunk(wire))
            self.stats.chunks_sent += 1

    def _on_transcript(self, topic: str, payload: bytes) -> None:
        body = self._load_json(topic, payload, STT_TRANSCRIPTS_PREFIX)
        if body is None:
            return
        session = self.sessions.get(str(body.get("session")))
        if session is None:
            return  # a session of another orchestrator run, or already closed
        try:
            changed = session.on_transcript(body)
        except TranscriptError as exc:
            _log.warning("transcript on %s ignored: %s", topic, exc)
            return
        self.stats.transcripts += 1
        if changed:
            self._publish_document(session)
        self._send_chunks(session, session.release())  # an answer frees room for the next
        self._maybe_close(session)

    def _on_stt_error(self, topic: str, payload: bytes) -> None:
        body = self._load_json(topic, payload, STT_ERRORS_PREFIX)
        if body is None:
            return
        session = self.sessions.get(str(body.get("session")))
        chunk_id = body.get("chunk_id")
        if session is None or not isinstance(chunk_id, int):
            return
        self.stats.stt_errors += 1
        _log.warning("STT refused chunk %s of %s: %s", chunk_id, session.session_id, body)
        if session.on_error(chunk_id, f"{body.get('code')}: {body.get('message')}"):
            self._publish_document(session)
        self._send_chunks(session, session.release())
        self._maybe_close(session)

    @staticmethod
    def _load_json(topic: str, payload: bytes, prefix: str) -> dict[str, Any] | None:
        try:
            session_from_topic(prefix, topic)
            body = json.loads(payload)
        except (InvalidNameError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            _log.warning("ignoring message on %s: %s", topic, exc)
            return None
        return body if isinstance(body, dict) else None

    def _publish_document(self, session: Session, *, final: bool | None = None) -> None:
        document = session.document(final=final)
        self._enqueue(
            final_transcripts_topic(session.session_id),
            json.dumps(document, separators=(",", ":")).encode(),
        )
        if self._on_published is not None:
            try:
                self._on_published(document)
            except Exception:
                # User callback boundary: a failing observer is logged, publishing goes on.
                _log.exception("on_published callback failed")

    def _maybe_close(self, session: Session) -> None:
        if not session.complete:
            return
        self._publish_document(session, final=True)
        self._close(session)

    def _close(self, session: Session) -> None:
        self.sessions.pop(session.session_id, None)
        self._ended_at.pop(session.session_id, None)
        self.stats.sessions_closed += 1
        _log.info(
            "session %s closed: %.1f s of audio, %d chunks, %d words",
            session.session_id,
            session.received_samples / session.sample_rate,
            len(session.records),
            len(session.words),
        )

    async def _sweep_loop(self) -> None:
        """Close idle sessions; give up waiting for transcripts that never came."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._settings.sweep_interval_s)
            now_mono = loop.time()
            for session in list(self.sessions.values()):
                if not session.ended:
                    idle = session.idle_for()
                    if idle >= session.config.session_idle_timeout_s:
                        _log.info("session %s idle for %.1f s: closing", session.session_id, idle)
                        self.stats.sessions_timed_out += 1
                        self._end_session(session)
                    continue
                ended = self._ended_at.get(session.session_id, now_mono)
                if now_mono - ended >= self._settings.transcript_timeout_s:
                    _log.warning(
                        "session %s: %d transcripts missing after %.0f s; publishing without",
                        session.session_id,
                        session.outstanding,
                        self._settings.transcript_timeout_s,
                    )
                    self._publish_document(session, final=True)
                    self._close(session)
