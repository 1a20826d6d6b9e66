"""Hot-applying SttConfig changes to a running worker (the ConfigLibrary callback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from asr_baseline import assert_within_margin, direct_text
from stt_support import DATA, SAMPLE_RATE, cut, librispeech, read_pcm16, session_client, unique

from workers.common import AudioChunk
from workers.stt import ModelLoadError, SttConfig, SttWorker, SttWorkerSettings
from workers.stt.engine import WhisperEngine

pytestmark = pytest.mark.slow

LJ_PASSAGE = DATA / "derived" / "ljspeech_LJ001-0001_to_0032_16k.wav"


@dataclass(frozen=True)
class Change:
    """The fields of ``config_lib.ConfigChange`` the worker reads."""

    old: SttConfig
    new: SttConfig
    version: int
    changed: frozenset[str] = frozenset()


def change(worker: SttWorker, version: int, **updates: Any) -> Change:
    new = SttConfig.model_validate({**worker.config.model_dump(), **updates})
    return Change(worker.config, new, version, frozenset(updates))


@pytest.fixture
async def worker(broker: Any, engine: WhisperEngine) -> AsyncIterator[SttWorker]:
    async with SttWorker(
        endpoint=broker.endpoint("stt"),
        instance_id=unique("stt"),
        config=SttConfig(),
        config_version=0,
        settings=SttWorkerSettings(persistent_session=False),
        engine=engine,
    ) as w:
        await asyncio.wait_for(w.wait_ready(), 15)
        yield w


async def test_beam_then_model_change_mid_stream_every_chunk_once_in_order(
    broker: Any, worker: SttWorker, engine: WhisperEngine
) -> None:
    session = unique("swap")
    pcm = read_pcm16(LJ_PASSAGE)[: 30 * SAMPLE_RATE * 2]
    chunks = list(cut(session, pcm, 3.0))
    first, second = chunks[:6], chunks[6:]
    async with session_client(broker.endpoint("orchestrator"), session) as orch:
        for chunk in first:
            await orch.send(chunk)
        results = [await orch.transcript()]
        await worker.apply_config(change(worker, 1, beam_size=1))
        assert worker.config_version == 1
        # The new model loads on the load thread while the old one keeps transcribing.
        await worker.apply_config(change(worker, 2, compute_type="int8_float32"))
        assert worker.config_version == 2
        assert worker.engine is not engine
        assert worker.engine.spec.compute_type == "int8_float32"
        for chunk in second:
            await orch.send(chunk)
        # A sentinel after the stream: if any chunk were answered twice, a duplicate
        # would arrive before it and the id sequence below would not match.
        sentinel = AudioChunk(session, 99, 30.0, SAMPLE_RATE, b"")
        await orch.send(sentinel)
        results += [await orch.transcript() for _ in range(len(chunks))]
    ids = [r["chunk_id"] for r in results]
    assert ids == [c.chunk_id for c in chunks] + [99]
    versions = [r["stt_config_version"] for r in results]
    assert versions == sorted(versions), "a chunk went back to an older config"
    assert versions[0] == 0
    assert set(versions) <= {0, 1, 2}
    for result in results[len(first) :]:
        assert result["stt_config_version"] == 2
        assert result["model"]["compute_type"] == "int8_float32"
    for result in results:
        expected = "int8_float32" if result["stt_config_version"] == 2 else "int8"
        assert result["model"]["compute_type"] == expected
    # Same-run baseline: each chunk decoded here with the beam size its answer used
    # (int8 and int8_float32 are the same computation on a CPU).
    beams = {0: 5, 1: 1, 2: 1}
    by_id = {c.chunk_id: c for c in chunks}
    got, baseline = [], []
    for r in results[:-1]:
        config = SttConfig(beam_size=beams[r["stt_config_version"]])
        got.append(r["text"])
        baseline.append(direct_text(engine, by_id[r["chunk_id"]].pcm, config))
    base = " ".join(baseline)
    assert_within_margin(base, " ".join(got), base, "across the model swap vs direct")
    assert worker.stats.model_loads == 1


async def test_missing_model_folder_fails_and_the_old_model_keeps_working(
    broker: Any, worker: SttWorker, engine: WhisperEngine, tmp_path: Any
) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        await worker.apply_config(change(worker, 5, model=str(missing), beam_size=2))
    assert str(missing) in str(info.value)
    assert worker.config_version == 0
    assert worker.config.beam_size == SttConfig().beam_size  # not the refused 2
    assert worker.engine is engine
    assert worker.stats.model_load_failures == 1
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match=r"missing model\.bin"):
        await worker.apply_config(change(worker, 6, model=str(empty)))
    session = unique("kept")
    speech, reference = librispeech("6930-75918-0000")
    async with session_client(broker.endpoint("orchestrator"), session) as orch:
        await orch.send(AudioChunk(session, 0, 0.0, SAMPLE_RATE, speech))
        result = await orch.transcript()
    assert result["stt_config_version"] == 0
    assert result["model"]["name"] == "tiny.en"
    assert_within_margin(reference, result["text"], direct_text(engine, speech), "old model")


async def test_decoding_and_chunk_limits_apply_from_the_next_chunk(
    broker: Any, worker: SttWorker, engine: WhisperEngine
) -> None:
    session = unique("opts")
    speech = read_pcm16(DATA / "librispeech" / "7902-96591-0000.flac")  # 2.1 s
    async with session_client(broker.endpoint("orchestrator"), session) as orch:
        await orch.send(AudioChunk(session, 0, 0.0, SAMPLE_RATE, speech))
        before = await orch.transcript()
        await worker.apply_config(
            change(worker, 7, word_timestamps=False, max_chunk_duration_s=2.0)
        )
        assert worker.engine is engine, "decoding options must not reload the model"
        await orch.send(AudioChunk(session, 1, 2.1, SAMPLE_RATE, speech))
        refused = await orch.error()
        await orch.send(AudioChunk(session, 2, 4.2, SAMPLE_RATE, speech[: SAMPLE_RATE * 2]))
        after = await orch.transcript()
    assert any(seg["words"] for seg in before["segments"])
    assert before["stt_config_version"] == 0
    assert refused["code"] == "chunk_too_long"
    assert refused["chunk_id"] == 1
    assert refused["stt_config_version"] == 7
    assert after["chunk_id"] == 2
    assert after["stt_config_version"] == 7
    assert after["segments"], "speech was transcribed"
    assert all(seg["words"] == [] for seg in after["segments"])


async def test_rollback_to_the_previous_config_restores_it(worker: SttWorker) -> None:
    previous = worker.config
    forward = change(worker, 3, beam_size=2, initial_prompt="A meeting.")
    await worker.apply_config(forward)
    assert (worker.config.beam_size, worker.config_version) == (2, 3)
    # What ConfigLibrary does when a later callback raises: call again with the old config.
    await worker.apply_config(Change(forward.new, previous, 0))
    assert worker.config == previous
    assert worker.config_version == 0
