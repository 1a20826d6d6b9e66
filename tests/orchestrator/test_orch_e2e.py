"""End to end: real mosquitto, real STT worker with tiny.en, real speech, the orchestrator.

Audio goes in on ``audio/input/<session>`` (through the same client the ``transcribe``
command uses); the merged transcript comes back on ``transcripts/final/<session>``.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest

from config_lib import (
    ConfigLibrary,
    LibrarySettings,
    encrypt_secrets,
    sign_envelope,
    updated_topic,
)
from config_manager.presets import PRESETS
from workers.orchestrator import Orchestrator, OrchestratorConfig, OrchestratorSettings
from workers.orchestrator.audio import load_pcm16
from workers.orchestrator.client import stream_audio
from workers.orchestrator.textnorm import normalize_text, word_error_rate
from workers.stt import SttConfig, SttWorker
from workers.stt.engine import WhisperEngine

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RATE = 16000


def _librispeech(key: str) -> tuple[Path, str]:
    rows = dict(
        line.split("\t")
        for line in (DATA / "librispeech" / "transcripts.tsv").read_text().splitlines()
    )
    return DATA / "librispeech" / f"{key}.flac", rows[key]


def _lj_excerpt(count: int) -> tuple[list[Path], str]:
    rows = dict(
        line.split("\t")
        for line in (DATA / "ljspeech" / "transcripts.tsv").read_text().splitlines()
    )
    keys = [f"LJ001-{i:04d}" for i in range(1, count + 1)]
    return [DATA / "ljspeech" / f"{k}.flac" for k in keys], " ".join(rows[k] for k in keys)


RECORDINGS = {
    "jfk": (DATA / "derived" / "jfk_16k.wav", (DATA / "derived" / "jfk_16k.txt").read_text()),
    "libri": _librispeech("2412-153948-0000"),
}


def _preset_config(name: str) -> OrchestratorConfig:
    patch = dict(PRESETS[name].patches["orchestrator"])
    return OrchestratorConfig.model_validate({**OrchestratorConfig().model_dump(), **patch})


async def _stack(
    broker: Any, engine: WhisperEngine, config: OrchestratorConfig, version: int = 1
) -> tuple[Orchestrator, aiomqtt.Client]:
    orchestrator = Orchestrator(
        endpoint=broker.endpoint("orchestrator"),
        settings=OrchestratorSettings(
            instance_id=f"orch-{secrets.token_hex(3)}",
            persistent_session=False,
        ),
        config=config,
        config_version=version,
    )
    endpoint = broker.endpoint("client")
    client = aiomqtt.Client(**endpoint.client_kwargs(), identifier=f"cli-{secrets.token_hex(3)}")
    return orchestrator, client


def _whole_file_text(engine: WhisperEngine, pcm: np.ndarray) -> str:
    return engine.transcribe(pcm.astype(np.float32) / 32768.0, SttConfig()).text


def _seam_duplicates(doc: dict[str, Any]) -> list[str]:
    """Words repeated back to back where the second comes from a later chunk."""
    words = doc["words"]
    out = []
    for a, b in itertools.pairwise(words):
        same = normalize_text(a["word"]) == normalize_text(b["word"])
        if same and a["chunk_id"] != b["chunk_id"]:
            out.append(a["word"])
    return out


def _check_coverage(doc: dict[str, Any], duration_s: float) -> None:
    chunks = doc["chunks"]
    assert chunks[0]["start_s"] == 0.0
    assert chunks[-1]["end_s"] == pytest.approx(duration_s, abs=1e-3)
    for prev, cur in itertools.pairwise(chunks):
        assert cur["start_s"] == pytest.approx(prev["end_s"] - cur["overlap_s"], abs=1e-3)
        assert cur["end_s"] > prev["end_s"]
    assert all(c["answered"] for c in chunks)


# Bounds, measured with tiny.en int8 beam 5 on this machine (see docs/orchestrator.md).
# Whole-file WER is 0/22 (JFK) and 0/35 (LibriSpeech 2412-153948-0000). Streamed with
# high_accuracy (4 s chunks, 0.8 s overlap) we measured 2/22 on JFK ("so am I fellow"
# inside the first 4 s window) and 0/35 on LibriSpeech; with real_time_optimized (2 s
# chunks, 0.2 s overlap) 3/22 and 3/35. tiny.en mishears words when it sees only 2-4 s:
# they are misheard, not doubled or dropped at seams (asserted separately). A lost or
# doubled chunk shows up in the coverage and seam checks; the WER bound guards
# recognition quality with room for about one more misheard word than measured.
WER_MARGIN = {"high_accuracy": 0.15, "real_time_optimized": 0.20}


@pytest.mark.parametrize("recording", ["jfk", "libri"])
@pytest.mark.parametrize("preset", ["high_accuracy", "real_time_optimized"])
async def test_streamed_transcript_matches_whole_file(
    broker: Any, engine: WhisperEngine, stt: SttWorker, recording: str, preset: str
) -> None:
    path, reference = RECORDINGS[recording]
    pcm = load_pcm16(path, RATE)
    config = _preset_config(preset)
    orchestrator, client = await _stack(broker, engine, config)
    async with orchestrator, client:
        await asyncio.wait_for(orchestrator.wait_connected(), 10)
        session = f"t-{recording}-{secrets.token_hex(3)}"
        result = await stream_audio(client, session, pcm, timeout_s=90)
    doc = result.final
    assert doc["final"] is True
    _check_coverage(doc, len(pcm) / RATE)
    assert len(doc["chunks"]) >= 2  # the recording really was cut
    assert _seam_duplicates(doc) == []
    whole = word_error_rate(reference, _whole_file_text(engine, pcm))
    streamed = word_error_rate(reference, doc["text"])
    print(f"{recording}/{preset}: streamed WER {streamed:.3f}, whole file {whole:.3f}")
    assert streamed <= whole + WER_MARGIN[preset], doc["text"]
    # word times are session-relative and in order
    starts = [w["start"] for w in doc["words"]]
    assert starts == sorted(starts)
    assert starts[0] >= 0
    assert doc["words"][-1]["end"] <= len(pcm) / RATE + 0.5


# The default config (16 s chunks, 8 s overlap) on 34.5 s of LJ Speech (five clips, read
# at 22.05 kHz and resampled): measured 1 error in 86 words, the same as the whole file
# in one call ("concern" for "concerned" in one, a different word in the other). The
# bound allows whole-file + 0.035 (3 words in 86): the target ratio of 1.10 is
# for the 228 s passage (bench/), a 86-word excerpt cannot resolve it.
async def test_default_config_on_lj_excerpt(
    broker: Any, engine: WhisperEngine, stt: SttWorker
) -> None:
    paths, reference = _lj_excerpt(5)
    pcm = np.concatenate([load_pcm16(p, RATE) for p in paths])
    orchestrator, client = await _stack(broker, engine, OrchestratorConfig())
    async with orchestrator, client:
        await asyncio.wait_for(orchestrator.wait_connected(), 10)
        result = await stream_audio(client, f"t-lj-{secrets.token_hex(3)}", pcm, timeout_s=120)
    doc = result.final
    _check_coverage(doc, len(pcm) / RATE)
    assert len(doc["chunks"]) == 4
    assert all(s == "aligned" for s in [c["seam"] for c in doc["chunks"]][1:])
    assert _seam_duplicates(doc) == []
    whole = word_error_rate(reference, _whole_file_text(engine, pcm))
    streamed = word_error_rate(reference, doc["text"])
    print(f"lj-excerpt/default: streamed WER {streamed:.3f}, whole file {whole:.3f}")
    assert streamed <= whole + 0.035, doc["text"]


async def test_preset_switch_mid_stream_through_signed_config(
    broker: Any, engine: WhisperEngine, stt: SttWorker, keys: Any, tmp_path: Path
) -> None:
    """exact_whisper_match (v1) → high_accuracy (v2), signed and published mid-stream."""
    path, reference = RECORDINGS["libri"]
    pcm = load_pcm16(path, RATE)
    service = f"orch-{secrets.token_hex(3)}"  # its own config topic and broker user
    first, second = _preset_config("exact_whisper_match"), _preset_config("high_accuracy")

    def signed(config: OrchestratorConfig, version: int) -> bytes:
        payload = encrypt_secrets(config, service=service, key=keys.data_key(service))
        return sign_envelope(
            service=service, version=version, epoch=1, config=payload, key=keys.signing
        )

    async with aiomqtt.Client(**broker.endpoint("manager").client_kwargs()) as manager:
        await manager.publish(updated_topic(service), signed(first, 1), qos=1, retain=True)
        library = ConfigLibrary(
            service=service,
            model=OrchestratorConfig,
            # No manager: no freshness record will come, so no wait for one.
            settings=LibrarySettings(data_dir=tmp_path, initial_wait=5.0, fresh_wait=0.0),
            trust=keys.trust,
            data_keys=[keys.data_key(service)],
            endpoint=broker.endpoint(service),
        )
        async with library as cfg:
            assert cfg.version == 1
            orchestrator, client = await _stack(broker, engine, cfg.current, cfg.version)
            unsubscribe = cfg.on_change(orchestrator.apply_config)
            switched_at: list[float] = []

            async def before_frame(offset_s: float) -> None:
                if offset_s >= 5.0 and not switched_at:
                    switched_at.append(offset_s)
                    await manager.publish(
                        updated_topic(service), signed(second, 2), qos=1, retain=True
                    )
                    await cfg.wait_for_version(2, timeout=10)

            async with orchestrator, client:
                await asyncio.wait_for(orchestrator.wait_connected(), 10)
                result = await stream_audio(
                    client,
                    f"t-switch-{secrets.token_hex(3)}",
                    pcm,
                    frame_s=0.25,
                    timeout_s=90,
                    before_frame=before_frame,
                )
                assert orchestrator.config_version == 2
            unsubscribe()
        await manager.publish(updated_topic(service), b"", qos=1, retain=True)
    doc = result.final
    assert doc["config_versions"] == [1, 2]
    _check_coverage(doc, len(pcm) / RATE)
    versions = [c["config_version"] for c in doc["chunks"]]
    assert versions == sorted(versions)
    # v1 chunks were all cut before the switch; v2 chunks carry v2's overlap
    assert all(c["end_s"] <= switched_at[0] for c in doc["chunks"] if c["config_version"] == 1)
    for c in doc["chunks"][1:]:
        expected = 0.2 if c["config_version"] == 1 else 0.8
        assert c["overlap_s"] == pytest.approx(expected, abs=1e-3)
    assert any(
        c["end_s"] - c["start_s"] == pytest.approx(4.0)
        for c in doc["chunks"]
        if c["config_version"] == 2
    )
    assert _seam_duplicates(doc) == []
    whole = word_error_rate(reference, _whole_file_text(engine, pcm))
    assert word_error_rate(reference, doc["text"]) <= whole + 0.15, doc["text"]
