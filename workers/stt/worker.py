"""The STT worker: audio chunks in over MQTT, transcripts out, config hot-applied.

Concurrency model (one event loop, two private threads):

* the *connection* task keeps one aiomqtt client connected (reconnecting with capped,
  jittered backoff), and puts every message received on ``audio/chunks/+`` on an
  in-memory inbox that survives reconnects;
* the *processing* task takes chunks off the inbox strictly in arrival order, one at a
  time, and hands the blocking decode to the single *transcribe* thread, so the event
  loop stays free for keep-alives, config updates and publishing;
* a model change is loaded on the separate *load* thread while the old model keeps
  transcribing; the swap is one assignment of ``self._active`` on the event loop,
  so it falls between two chunks: each chunk is decoded once, entirely by the model
  and config snapshotted when it started.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

import aiomqtt

from config_lib import Backoff, MqttEndpoint, stop_tasks, validate_name
from workers.common import (
    AUDIO_CHUNKS_PREFIX,
    STT_ERRORS_PREFIX,
    UNKNOWN_SESSION,
    AudioChunk,
    ChunkDecodeError,
    InvalidNameError,
    decode_chunk,
    session_from_topic,
    stt_errors_topic,
    stt_transcripts_topic,
    wildcard,
)
from workers.stt.config import SttConfig
from workers.stt.engine import (
    ModelLoadError,
    ModelSpec,
    Transcription,
    WhisperEngine,
    load_engine,
    pcm16_to_float32,
)
from workers.stt.settings import SttWorkerSettings

__all__ = ["RedeliveryFilter", "SttConfigChange", "SttWorker", "WorkerStats"]

_log = logging.getLogger(__name__)

_DEDUPE_WINDOW = 512  # recent (mid, digest) pairs remembered to drop QoS 1 redeliveries


class SttConfigChange(Protocol):
    """What :meth:`SttWorker.apply_config` reads from a ``config_lib.ConfigChange``."""

    @property
    def new(self) -> SttConfig: ...

    @property
    def version(self) -> int | None: ...


@dataclass
class WorkerStats:
    """Counters exposed on the worker (and logged); cheap to export to Prometheus."""

    received: int = 0
    transcribed: int = 0
    duplicates: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    model_loads: int = 0
    model_load_failures: int = 0
    last_model_load_s: float | None = None


@dataclass(frozen=True, slots=True)
class _Active:
    """The model and config in force, swapped as one reference between two chunks."""

    engine: WhisperEngine
    config: SttConfig
    version: int | None


class RedeliveryFilter:
    """Recognises QoS 1 redeliveries: same packet id and same bytes as a recent message.

    A broker resends a QoS 1 message it has no PUBACK for with the same packet id. Packet
    ids are reused only after 65535 other messages, so within a window of a few hundred the
    pair (packet id, digest of the payload) identifies a copy; a new chunk never matches.
    """

    def __init__(self, window: int) -> None:
        self._window = window
        self._recent: OrderedDict[tuple[int, bytes], None] = OrderedDict()

    def seen(self, qos: int, mid: int, payload: bytes) -> bool:
        """True if this message is a copy of one among the last ``window``; else remember it."""
        if qos == 0:
            return False
        key = (mid, hashlib.blake2b(payload, digest_size=16).digest())
        if key in self._recent:
            return True
        self._recent[key] = None
        if len(self._recent) > self._window:
            self._recent.popitem(last=False)
        return False


class _Refused(Exception):
    """A chunk is refused; becomes an error event (internal control flow only)."""

    def __init__(self, code: str, message: str, chunk_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.chunk_id = chunk_id


class SttWorker:
    """Transcribe chunks from ``audio/chunks/<session>`` to ``stt/transcripts/<session>``.

    Use as ``async with SttWorker(endpoint=..., instance_id=..., config=...) as worker:``
    and register :meth:`apply_config` as a ConfigLibrary ``on_change`` callback.
    ``settings`` holds the limits (its broker fields are for ``main()``); ``engine``
    lets a caller hand over an already loaded model that matches ``config``.
    """

    def __init__(
        self,
        *,
        endpoint: MqttEndpoint,
        instance_id: str,
        config: SttConfig,
        config_version: int | None = None,
        settings: SttWorkerSettings | None = None,
        engine: WhisperEngine | None = None,
    ) -> None:
        settings = settings or SttWorkerSettings()
        self._endpoint = endpoint
        self._instance_id = validate_name(instance_id, "instance")
        self._settings = settings
        self._initial = (config, config_version, engine)
        self._active: _Active | None = None
        self.stats = WorkerStats()
        self._inbox: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(settings.max_pending_chunks)
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._apply_lock = asyncio.Lock()
        self._redeliveries = RedeliveryFilter(_DEDUPE_WINDOW)
        self._transcribe_pool: ThreadPoolExecutor | None = None
        self._load_pool: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._tasks:
            raise RuntimeError("an SttWorker can be entered only once")
        self._transcribe_pool = ThreadPoolExecutor(1, thread_name_prefix="stt-transcribe")
        self._load_pool = ThreadPoolExecutor(1, thread_name_prefix="stt-load")
        config, version, engine = self._initial
        try:
            if engine is None or engine.spec != ModelSpec.from_config(config):
                engine = await self._load(ModelSpec.from_config(config))
            self._active = _Active(engine, config, version)
            _log.info("STT worker %s starting with config version %s", self.instance_id, version)
            self._tasks = [
                asyncio.create_task(self._connection_loop(), name="stt-connection"),
                asyncio.create_task(self._processing_loop(), name="stt-processing"),
            ]
        except BaseException:
            self._shutdown_pools()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        for task, error in await stop_tasks(self._tasks):
            _log.error("task %s had failed: %r", task.get_name(), error)
        # A decode or load still running finishes on its thread; wait without blocking the loop.
        await asyncio.to_thread(self._shutdown_pools)

    def _shutdown_pools(self) -> None:
        for pool in (self._transcribe_pool, self._load_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    async def serve_forever(self) -> None:
        """Wait on the worker's tasks; returns or raises only if one of them ends."""
        if not self._tasks:
            raise RuntimeError("enter the worker (async with) before serving")
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()

    async def wait_ready(self) -> None:
        """Wait until the worker is connected and subscribed (bound it with a timeout)."""
        await self._connected.wait()

    # -- state -----------------------------------------------------------------------

    @property
    def instance_id(self) -> str:
        return self._instance_id

    @property
    def config(self) -> SttConfig:
        """The config in force (the one the next chunk will use)."""
        return self._require_active().config

    @property
    def config_version(self) -> int | None:
        """Version of the signed config in force; None when running on env/defaults."""
        return self._require_active().version

    @property
    def engine(self) -> WhisperEngine:
        """The model in force."""
        return self._require_active().engine

    def _require_active(self) -> _Active:
        if self._active is None:
            raise RuntimeError("the worker has not been started")
        return self._active

    # -- hot-apply -------------------------------------------------------------------

    async def apply_config(self, change: SttConfigChange) -> None:
        """ConfigLibrary callback: put ``change.new`` in force from the next chunk.

        Decoding options apply as they are. A change of model, device, compute type or
        CPU threads loads the new model on the load thread first (the old one keeps
        transcribing) and then swaps both between two chunks. If loading fails this
        raises :class:`~workers.stt.engine.ModelLoadError` and nothing changes, so the
        library reports ``failed`` with the reason and keeps the previous config.
        """
        new, version = change.new, change.version
        async with self._apply_lock:
            active = self._require_active()
            spec = ModelSpec.from_config(new)
            engine = active.engine
            if spec != engine.spec:
                _log.info(
                    "config version %s needs model %r (compute_type=%s): loading in background",
                    version,
                    spec.model,
                    spec.compute_type,
                )
                try:
                    engine = await self._load(spec)
                except ModelLoadError as exc:
                    # The library reports only "failed"; the reason is logged here.
                    _log.error(
                        "config version %s refused, keeping version %s: %s",
                        version,
                        active.version,
                        exc,
                    )
                    raise
            # One assignment on the event loop: the chunk being decoded keeps its snapshot.
            self._active = _Active(engine, new, version)
        _log.info("config version %s in force (model %r)", version, spec.model)

    async def _load(self, spec: ModelSpec) -> WhisperEngine:
        loop = asyncio.get_running_loop()
        try:
            engine = await loop.run_in_executor(self._load_pool, load_engine, spec)
        except Exception:
            self.stats.model_load_failures += 1
            raise
        self.stats.model_loads += 1
        self.stats.last_model_load_s = engine.load_seconds
        return engine

    # -- MQTT ------------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        settings = self._settings
        endpoint = self._endpoint
        backoff = Backoff(settings.reconnect_initial_s, settings.reconnect_max_s)
        while not self._closing:
            try:
                async with aiomqtt.Client(
                    **endpoint.client_kwargs(),
                    identifier=f"stt-{self._instance_id}",
                    clean_session=not settings.persistent_session,
                    keepalive=settings.keepalive_s,
                ) as client:
                    await client.subscribe(wildcard(AUDIO_CHUNKS_PREFIX), qos=1)
                    self._client = client
                    self._connected.set()
                    backoff.reset()
                    _log.info("connected to %s, subscribed to %s", endpoint, AUDIO_CHUNKS_PREFIX)
                    async for message in client.messages:
                        await self._inbox.put(message)
            except aiomqtt.MqttError as exc:
                _log.warning("MQTT connection to %s lost: %s (retrying)", endpoint, exc)
            finally:
                self._connected.clear()
                self._client = None
            await backoff.sleep()

    async def _publish(self, topic: str, body: dict[str, Any]) -> None:
        payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        while True:
            await self._connected.wait()
            client = self._client
            if client is None:  # pragma: no cover - cleared together with the event
                continue
            try:
                await client.publish(topic, payload, qos=1)
                return
            except aiomqtt.MqttError as exc:
                # A lost connection clears _connected in the connection task, so the next
                # round waits for the reconnect; a publish timeout on a live one just retries.
                delay = self._settings.reconnect_initial_s
                _log.warning("publish on %s failed (%s): retrying in %.1f s", topic, exc, delay)
                await asyncio.sleep(delay)

    # -- chunks ----------------------------------------------------------------------

    async def _processing_loop(self) -> None:
        while not self._closing:
            message = await self._inbox.get()
            await self._handle(message)

    async def _handle(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        try:
            topic_session: str | None = session_from_topic(AUDIO_CHUNKS_PREFIX, topic)
        except InvalidNameError:
            topic_session = None
        active = self._require_active()  # snapshot: this chunk uses this model and config
        try:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                raise _Refused("bad_payload", "payload is not binary")
            payload = bytes(payload)
            if self._redeliveries.seen(message.qos, message.mid, payload):
                self.stats.duplicates += 1
                _log.info("dropping a redelivered copy of a chunk on %s", topic)
                return
            self.stats.received += 1
            chunk = self._check(payload, topic_session, active.config)
            result = await self._transcribe(chunk, active)
        except _Refused as refused:
            await self._report_error(topic, topic_session, refused, active)
            return
        self.stats.transcribed += 1
        await self._publish(stt_transcripts_topic(chunk.session), result)

    def _check(self, payload: bytes, topic_session: str | None, config: SttConfig) -> AudioChunk:
        settings = self._settings
        if topic_session is None:
            raise _Refused("bad_topic", f"chunk topic must be {AUDIO_CHUNKS_PREFIX}/<session>")
        if len(payload) > settings.max_payload_bytes:
            raise _Refused(
                "too_large",
                f"payload of {len(payload)} bytes exceeds {settings.max_payload_bytes} bytes",
            )
        try:
            chunk = decode_chunk(payload, max_header_bytes=settings.max_header_bytes)
        except ChunkDecodeError as exc:
            raise _Refused(exc.code, str(exc)) from exc
        if chunk.session != topic_session:
            raise _Refused(
                "session_mismatch",
                f"chunk header names session {chunk.session!r} but was sent on {topic_session!r}",
                chunk.chunk_id,
            )
        if chunk.sample_rate != config.sample_rate:
            raise _Refused(
                "unsupported_sample_rate",
                f"sample rate {chunk.sample_rate} Hz refused: this worker accepts "
                f"{config.sample_rate} Hz mono 16-bit PCM",
                chunk.chunk_id,
            )
        if chunk.duration_s > config.max_chunk_duration_s:
            raise _Refused(
                "chunk_too_long",
                f"chunk of {chunk.duration_s:.3f} s exceeds max_chunk_duration_s="
                f"{config.max_chunk_duration_s} s",
                chunk.chunk_id,
            )
        return chunk

    async def _transcribe(self, chunk: AudioChunk, active: _Active) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            transcription = await loop.run_in_executor(
                self._transcribe_pool, _decode, active.engine, chunk.pcm, active.config
            )
        except (RuntimeError, ValueError) as exc:  # CTranslate2 reports failures as these
            raise _Refused("transcription_failed", str(exc), chunk.chunk_id) from exc
        return _transcript_body(
            chunk, transcription, active, self.instance_id, time.perf_counter() - started
        )

    async def _report_error(
        self, topic: str, session: str | None, refused: _Refused, active: _Active
    ) -> None:
        self.stats.errors[refused.code] = self.stats.errors.get(refused.code, 0) + 1
        _log.warning("refused chunk on %s: [%s] %s", topic, refused.code, refused)
        body = {
            "session": session,
            "chunk_id": refused.chunk_id,
            "code": refused.code,
            "message": str(refused),
            "topic": topic,
            "worker": self.instance_id,
            "stt_config_version": active.version,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        target = stt_errors_topic(session) if session else f"{STT_ERRORS_PREFIX}/{UNKNOWN_SESSION}"
        await self._publish(target, body)


def _decode(engine: WhisperEngine, pcm: bytes, config: SttConfig) -> Transcription:
    """Runs on the transcribe thread: PCM conversion and decoding."""
    return engine.transcribe(pcm16_to_float32(pcm), config)


def _transcript_body(
    chunk: AudioChunk,
    transcription: Transcription,
    active: _Active,
    worker: str,
    processing_s: float,
) -> dict[str, Any]:
    """The JSON transcript of one chunk; every time is in seconds from the session start."""
    offset = chunk.offset_s

    def at(t: float) -> float:
        return round(offset + t, 3)

    return {
        "session": chunk.session,
        "chunk_id": chunk.chunk_id,
        "offset_s": offset,
        "duration_s": round(chunk.duration_s, 6),
        "overlap_s": chunk.overlap_s,
        "text": transcription.text,
        "language": transcription.language,
        "segments": [
            {
                "start": at(seg.start),
                "end": at(seg.end),
                "text": seg.text,
                "avg_logprob": round(seg.avg_logprob, 4),
                "no_speech_prob": round(seg.no_speech_prob, 4),
                "words": [
                    {
                        "start": at(w.start),
                        "end": at(w.end),
                        "word": w.word,
                        "probability": round(w.probability, 4),
                    }
                    for w in seg.words
                ],
            }
            for seg in transcription.segments
        ],
        "chunk_config_version": chunk.config_version,
        "extra": dict(chunk.extra),
        "stt_config_version": active.version,
        "model": active.engine.describe(),
        "worker": worker,
        "processing_s": round(processing_s, 4),
    }
