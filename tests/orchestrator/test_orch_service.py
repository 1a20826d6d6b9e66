"""The running orchestrator's wiring: idle timeout, refused input, the transcribe command."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest
from asr_baseline import assert_within_margin, check_streamed, direct_text

from config_lib import encrypt_secrets, save_data_key, sign_envelope, updated_topic
from workers.common import AudioChunk, audio_input_topic, encode_chunk, final_transcripts_topic
from workers.orchestrator import Orchestrator, OrchestratorConfig, OrchestratorSettings
from workers.orchestrator.audio import load_pcm16
from workers.orchestrator.client import stream_audio
from workers.orchestrator.textnorm import word_error_rate
from workers.stt import SttConfig, SttWorker, SttWorkerSettings
from workers.stt.engine import WhisperEngine

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
RATE = 16000
JFK_TEXT = (
    "and so my fellow americans ask not what your country can do for you "
    "ask what you can do for your country"
)


def _orchestrator(broker: Any, config: OrchestratorConfig) -> Orchestrator:
    return Orchestrator(
        endpoint=broker.endpoint("orchestrator"),
        settings=OrchestratorSettings(
            instance_id=f"orch-{secrets.token_hex(3)}",
            persistent_session=False,
            sweep_interval_s=0.1,
        ),
        config=config,
    )


def _frame(session: str, pcm: np.ndarray, offset: int, rate: int = RATE, **extra: Any) -> bytes:
    return encode_chunk(
        AudioChunk(
            session=session,
            chunk_id=offset,
            offset_s=offset / rate,
            sample_rate=rate,
            pcm=pcm.astype("<i2").tobytes(),
            extra=extra,
        )
    )


async def _final(client: aiomqtt.Client, topic: str) -> dict[str, Any]:
    async for message in client.messages:
        if message.topic.value == topic and isinstance(message.payload, bytes):
            doc = json.loads(message.payload)
            if doc["final"]:
                return dict(doc)
    raise AssertionError("message stream ended")


async def test_idle_session_is_flushed_and_closed(
    broker: Any, engine: WhisperEngine, stt: SttWorker
) -> None:
    """No end marker: after session_idle_timeout_s the tail is sent and the result final."""
    pcm = load_pcm16(DATA / "derived" / "jfk_16k.wav")
    config = OrchestratorConfig(
        chunk_duration_s=4.0,
        overlap_duration_s=0.8,
        processing_interval_s=3.2,
        buffer_duration_s=8.0,
        session_idle_timeout_s=1.0,
    )
    session = f"t-idle-{secrets.token_hex(3)}"
    orchestrator = _orchestrator(broker, config)
    client = aiomqtt.Client(**broker.endpoint("client").client_kwargs())
    async with orchestrator, client:
        await asyncio.wait_for(orchestrator.wait_connected(), 10)
        await client.subscribe(final_transcripts_topic(session), qos=1)
        step = RATE // 2
        for pos in range(0, len(pcm), step):
            payload = _frame(session, pcm[pos : pos + step], pos)
            await client.publish(audio_input_topic(session), payload, qos=1)
        doc = await asyncio.wait_for(_final(client, final_transcripts_topic(session)), 60)
        assert orchestrator.stats.sessions_timed_out == 1
        assert session not in orchestrator.sessions
    assert doc["chunks"][-1]["end_s"] == pytest.approx(len(pcm) / RATE, abs=1e-3)
    assert all(c["answered"] for c in doc["chunks"])
    # The flushed tail made it into the text: its words are there (last chunk's id).
    last = doc["chunks"][-1]["chunk_id"]
    assert any(w["chunk_id"] == last for w in doc["words"]), doc["words"]
    check_streamed(engine, pcm, JFK_TEXT, doc, "idle flush vs chunked")


async def test_bad_input_is_refused_and_the_next_session_works(
    broker: Any, engine: WhisperEngine, stt: SttWorker
) -> None:
    pcm = load_pcm16(DATA / "derived" / "jfk_16k.wav")
    orchestrator = _orchestrator(broker, OrchestratorConfig())
    bad = f"t-bad-{secrets.token_hex(3)}"
    async with orchestrator, aiomqtt.Client(**broker.endpoint("client").client_kwargs()) as client:
        await asyncio.wait_for(orchestrator.wait_connected(), 10)
        topic = audio_input_topic(bad)
        await client.publish(topic, b"not a chunk", qos=1)
        await client.publish(topic, _frame(bad, pcm[:800], 0, rate=8000), qos=1)
        await client.publish(topic, _frame("someone-else", pcm[:800], 0), qos=1)
        good = f"t-good-{secrets.token_hex(3)}"
        result = await stream_audio(client, good, pcm, timeout_s=60)
        assert orchestrator.stats.refused_frames == {
            "bad_magic": 1,
            "bad_sample_rate": 1,
            "session_mismatch": 1,
        }
        assert bad not in orchestrator.sessions
    check_streamed(engine, pcm, JFK_TEXT, result.final, "after bad input vs chunked")


async def test_transcribe_command_streams_a_flac_and_prints_wer(
    broker: Any, engine: WhisperEngine, stt: SttWorker
) -> None:
    """``python -m workers.orchestrator transcribe`` against the running stack: the JFK
    FLAC is 44.1 kHz stereo, so this also covers reading and resampling."""
    orchestrator = _orchestrator(broker, OrchestratorConfig())
    async with orchestrator:
        await asyncio.wait_for(orchestrator.wait_connected(), 10)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.orchestrator",
            "transcribe",
            str(DATA / "jfk" / "jfk.flac"),
            "--reference",
            str(DATA / "jfk" / "jfk.txt"),
            "--mqtt-url",
            broker.url("client"),
            "--timeout",
            "60",
            cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().strip().splitlines()
    # The command reads the 44.1 kHz stereo file the same way: same audio, one chunk.
    whole = direct_text(engine, load_pcm16(DATA / "jfk" / "jfk.flac"))
    assert_within_margin(JFK_TEXT, lines[0], whole, "transcribe command")
    printed = re.fullmatch(r"WER: (\d+\.\d\d)%", lines[-1])
    assert printed is not None, lines[-1]
    reference = (DATA / "jfk" / "jfk.txt").read_text()
    assert float(printed[1]) == pytest.approx(100 * word_error_rate(reference, lines[0]), abs=0.01)
    assert "transcribed" in err.decode()  # the progress bar went to stderr


async def test_python_m_workers_orchestrator_runs_with_signed_config(
    own_broker: Any, keys: Any, engine: WhisperEngine, tmp_path: Path
) -> None:
    """The deployed entry point: signed config from the ConfigLibrary, the broker
    credentials of the library (no ORCHESTRATOR_MQTT_URL), transcripts out, clean stop."""
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    (data / "keys" / "trust.pem").write_bytes(keys.trust.to_pem())
    save_data_key(data / "keys" / "orchestrator.key", keys.data_key("orchestrator"))
    env = {
        **os.environ,
        "CONFIG_LIB_DATA_DIR": str(data),
        "CONFIG_LIB_MQTT_URL": own_broker.url("orchestrator"),
        "CONFIG_LIB_DATA_KEY": str(data / "keys" / "orchestrator.key"),
        "CONFIG_LIB_INSTANCE_ID": f"orch-main-{secrets.token_hex(3)}",
        "CONFIG_LIB_INITIAL_WAIT": "5",
        "CONFIG_LIB_FRESH_WAIT": "0",  # no manager: no freshness record will come
        "ORCHESTRATOR_PERSISTENT_SESSION": "false",
    }
    env.pop("ORCHESTRATOR_MQTT_URL", None)
    config = OrchestratorConfig(
        chunk_duration_s=8.0,
        overlap_duration_s=5.0,
        processing_interval_s=3.0,
        buffer_duration_s=13.0,
        max_chunks_in_flight=0,  # every chunk cut is sent: the overlaps are exact
        preset="custom",
    )
    payload = encrypt_secrets(config, service="orchestrator", key=keys.data_key("orchestrator"))
    signed = sign_envelope(
        service="orchestrator", version=1, epoch=1, config=payload, key=keys.signing
    )
    pcm = load_pcm16(DATA / "derived" / "jfk_16k.wav")
    async with aiomqtt.Client(**own_broker.endpoint("manager").client_kwargs()) as manager:
        await manager.publish(updated_topic("orchestrator"), signed, qos=1, retain=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.orchestrator",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    log: list[str] = []
    connected = asyncio.Event()

    async def read_log() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            log.append(raw.decode(errors="replace"))
            if "workers.orchestrator.service: connected to" in log[-1]:
                connected.set()

    reader = asyncio.create_task(read_log())
    try:
        await asyncio.wait_for(connected.wait(), 60)
        async with (
            SttWorker(
                endpoint=own_broker.endpoint("stt"),
                instance_id=f"stt-{secrets.token_hex(3)}",
                config=SttConfig(),
                settings=SttWorkerSettings(persistent_session=False),
                engine=engine,
            ) as stt,
            aiomqtt.Client(**own_broker.endpoint("client").client_kwargs()) as client,
        ):
            await asyncio.wait_for(stt.wait_ready(), 15)
            result = await stream_audio(client, f"t-main-{secrets.token_hex(3)}", pcm, timeout_s=60)
        proc.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(proc.wait(), 30)
        await asyncio.wait_for(reader, 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        print("".join(log))  # shown by pytest when the test fails
    text = "".join(log)
    assert returncode == 0, text
    assert "chunking config version 1 from broker" in text
    assert result.final["config_versions"] == [1]
    chunks = result.final["chunks"]
    assert len(chunks) == 4  # [0, 3) [0, 6) [1, 9) [4, 11): the signed config's hop and overlap
    assert [c["overlap_s"] for c in chunks[1:]] == [min(5.0, prev["end_s"]) for prev in chunks[:-1]]
    # held to the same chunks decoded here (see asr_baseline.py)
    check_streamed(engine, pcm, JFK_TEXT, result.final, "python -m orchestrator vs chunked")
    assert f"instance={env['CONFIG_LIB_INSTANCE_ID']}" in text
    assert "orchestrator stopped" in text
