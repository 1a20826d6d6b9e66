"""The running STT worker: real mosquitto, real tiny.en model, real speech."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asr_baseline import assert_within_margin, direct_text
from stt_support import (
    DATA,
    SAMPLE_RATE,
    cut,
    librispeech,
    normalise,
    read_pcm16,
    session_client,
    unique,
)

from workers.common import MAGIC, AudioChunk, encode_chunk
from workers.stt import SttConfig, SttWorker, SttWorkerSettings
from workers.stt.engine import WhisperEngine

pytestmark = pytest.mark.slow

# Whole-utterance recordings with exact references (see ../shared/data/README.md).
RECORDINGS = [
    ("derived/jfk_16k.wav", (DATA / "derived" / "jfk_16k.txt").read_text()),
    *(
        (f"librispeech/{key}.flac", text)
        for key, text in (
            line.split("\t")
            for line in (DATA / "librispeech" / "transcripts.tsv").read_text().splitlines()
        )
    ),
]

# The worker must decode as plain faster-whisper does: each recording is also decoded in
# this process with the same engine (the same-run baseline), and the worker may have at
# most max(2 words, 10 %) more errors than that in total (8 of 75 words). Which words
# tiny.en gets wrong depends on the CPU (docs/stt.md), so no absolute WER is asserted; a
# dropped, doubled or misordered chunk, or a wrong sample-rate conversion, still fails.


@pytest.fixture
async def worker(broker: Any, engine: WhisperEngine) -> AsyncIterator[SttWorker]:
    async with SttWorker(
        endpoint=broker.endpoint("stt"),
        instance_id=unique("stt"),
        config=SttConfig(),
        settings=SttWorkerSettings(persistent_session=False),
        engine=engine,
    ) as w:
        await asyncio.wait_for(w.wait_ready(), 15)
        yield w


async def test_real_speech_through_the_worker_within_wer_bound(
    broker: Any, worker: SttWorker, engine: WhisperEngine
) -> None:
    session = unique("wer")
    refs: list[str] = []
    hyps: list[str] = []
    direct: list[str] = []
    async with session_client(broker.endpoint("orchestrator"), session) as orch:
        offset = 0.0
        chunks = []
        for index, (name, reference) in enumerate(RECORDINGS):
            pcm = read_pcm16(DATA / name)
            chunk = AudioChunk(
                session=session,
                chunk_id=index,
                offset_s=offset,
                sample_rate=SAMPLE_RATE,
                pcm=pcm,
                config_version=42,
                extra={"source": name},
            )
            chunks.append(chunk)
            refs.append(normalise(reference))
            direct.append(direct_text(engine, pcm))
            offset += chunk.duration_s
        for chunk in chunks:
            await orch.send(chunk)
        for chunk in chunks:
            result = await orch.transcript()
            assert result["chunk_id"] == chunk.chunk_id
            assert result["session"] == session
            assert result["offset_s"] == pytest.approx(chunk.offset_s)
            assert result["duration_s"] == pytest.approx(chunk.duration_s)
            assert result["chunk_config_version"] == 42
            assert result["extra"] == {"source": chunk.extra["source"]}
            assert result["stt_config_version"] is None  # running on defaults
            assert result["model"]["name"] == "tiny.en"
            assert result["model"]["compute_type"] == "int8"
            hyps.append(normalise(result["text"]))
            _assert_session_relative_words(result, chunk)
    assert_within_margin(" ".join(refs), " ".join(hyps), " ".join(direct), "worker vs direct")
    assert worker.stats.transcribed == len(RECORDINGS)
    assert orch.errors.empty()


def _assert_session_relative_words(result: dict[str, Any], chunk: AudioChunk) -> None:
    words = [w for seg in result["segments"] for w in seg["words"]]
    assert words, "word timestamps are on by default"
    previous = chunk.offset_s
    for word in words:
        assert chunk.offset_s - 0.01 <= word["start"] <= word["end"]
        assert word["end"] <= chunk.offset_s + chunk.duration_s + 0.5
        assert word["start"] >= previous - 0.01
        assert 0.0 <= word["probability"] <= 1.0
        previous = word["start"]
    assert "".join(w["word"] for w in words).strip() == result["text"].replace("  ", " ")


async def test_consecutive_chunks_answered_in_order_with_session_offsets(
    broker: Any, worker: SttWorker, engine: WhisperEngine
) -> None:
    session = unique("order")
    pcm = read_pcm16(DATA / "derived" / "jfk_16k.wav")
    chunks = list(cut(session, pcm, 4.0))
    assert len(chunks) == 3
    async with session_client(broker.endpoint("orchestrator"), session) as orch:
        for chunk in chunks:
            await orch.send(chunk)
        results = [await orch.transcript() for _ in chunks]
    assert [r["chunk_id"] for r in results] == [0, 1, 2]
    for chunk, result in zip(chunks, results, strict=True):
        _assert_session_relative_words(result, chunk)
    got = " ".join(r["text"] for r in results)
    baseline = " ".join(direct_text(engine, c.pcm) for c in chunks)
    assert_within_margin(baseline, got, baseline, "4 s chunks vs direct")


def _raw(header: dict[str, Any], pcm: bytes = b"") -> bytes:
    body = json.dumps(header).encode()
    return MAGIC + struct.pack(">I", len(body)) + body + pcm


async def test_refused_chunks_produce_error_events_and_the_worker_carries_on(
    broker: Any, worker: SttWorker, engine: WhisperEngine
) -> None:
    session = unique("errors")
    other = unique("other")
    speech, reference = librispeech("7902-96591-0000")
    good = AudioChunk(session, 9, 0.0, SAMPLE_RATE, speech)
    async with session_client(broker.endpoint("orchestrator"), session) as orch:
        await orch.send_raw(b"not a chunk at all")
        await orch.send_raw(encode_chunk(AudioChunk(session, 1, 0.0, 8000, b"\x00\x00" * 800)))
        too_long = AudioChunk(session, 2, 0.0, SAMPLE_RATE, b"\x00\x00" * SAMPLE_RATE * 31)
        await orch.send_raw(encode_chunk(too_long))
        await orch.send_raw(encode_chunk(AudioChunk(other, 3, 0.0, SAMPLE_RATE, b"")))
        await orch.send_raw(_raw({"session": session, "chunk_id": 4, "offset_s": 0}))
        await orch.send(good)
        expected = [
            (None, "bad_magic", "expected"),
            (1, "unsupported_sample_rate", "8000 Hz refused"),
            (2, "chunk_too_long", "max_chunk_duration_s"),
            (3, "session_mismatch", other),
            (None, "bad_header_field", "sample_rate"),
        ]
        for chunk_id, code, words in expected:
            event = await orch.error()
            assert event["code"] == code
            assert event["chunk_id"] == chunk_id
            assert event["session"] == session
            assert words in event["message"]
            assert event["worker"] == worker.instance_id
        result = await orch.transcript()
    assert result["chunk_id"] == 9
    assert_within_margin(reference, result["text"], direct_text(engine, speech), "after refusals")
    assert worker.stats.errors == {
        "bad_magic": 1,
        "unsupported_sample_rate": 1,
        "chunk_too_long": 1,
        "session_mismatch": 1,
        "bad_header_field": 1,
    }


async def test_empty_chunk_gets_an_empty_transcript(broker: Any, worker: SttWorker) -> None:
    session = unique("empty")
    async with session_client(broker.endpoint("orchestrator"), session) as orch:
        await orch.send(AudioChunk(session, 0, 5.0, SAMPLE_RATE, b"", extra={"final": True}))
        result = await orch.transcript()
    assert result["text"] == ""
    assert result["segments"] == []
    assert result["extra"] == {"final": True}


async def test_broker_restart_reconnects_and_queued_chunks_are_transcribed(
    own_broker: Any, engine: WhisperEngine
) -> None:
    """A persistent MQTT session: chunks sent while the worker reconnects are not lost."""
    speech, reference = librispeech("7902-96591-0000")
    session = unique("restart")
    settings = SttWorkerSettings(
        persistent_session=True, reconnect_initial_s=0.05, reconnect_max_s=0.5
    )
    async with SttWorker(
        endpoint=own_broker.endpoint("stt"),
        instance_id=unique("stt"),
        config=SttConfig(),
        settings=settings,
        engine=engine,
    ) as worker:
        await asyncio.wait_for(worker.wait_ready(), 15)
        async with session_client(own_broker.endpoint("orchestrator"), session) as orch:
            await orch.send(AudioChunk(session, 0, 0.0, SAMPLE_RATE, speech))
            assert (await orch.transcript())["chunk_id"] == 0
        # Mosquitto saves its sessions on a clean stop and reloads them on start.
        await asyncio.to_thread(own_broker.stop)
        await asyncio.to_thread(own_broker.start)
        async with session_client(own_broker.endpoint("orchestrator"), session) as orch:
            # Sent as soon as the broker is back, likely before the worker has reconnected:
            # the broker queues it in the worker's persistent session.
            await orch.send(AudioChunk(session, 1, 2.1, SAMPLE_RATE, speech))
            result = await orch.transcript()
    assert result["chunk_id"] == 1
    assert_within_margin(reference, result["text"], direct_text(engine, speech), "after restart")
    assert worker.stats.transcribed == 2
