"""The worker wired to the real ConfigLibrary: signed updates over MQTT, applied reports.

In-process: a ConfigLibrary for a unique service name feeds ``SttWorker.apply_config``.
Subprocess: ``python -m workers.stt`` as deployed (service ``stt``, its own broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from asr_baseline import assert_within_margin, direct_text
from stt_support import DATA, SAMPLE_RATE, cut, librispeech, read_pcm16, session_client, unique

from config_lib import (
    AppliedReport,
    ConfigLibrary,
    LibrarySettings,
    applied_topic,
    encrypt_secrets,
    save_data_key,
    sign_envelope,
    updated_topic,
)
from workers.common import AudioChunk
from workers.stt import SttConfig, SttWorker, SttWorkerSettings
from workers.stt.engine import WhisperEngine

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LJ_PASSAGE = DATA / "derived" / "ljspeech_LJ001-0001_to_0032_16k.wav"


class Manager:
    """Signs and publishes STT configs the way the config manager does."""

    def __init__(self, client: aiomqtt.Client, keys: Any, service: str) -> None:
        self.client, self.keys, self.service = client, keys, service

    async def publish(self, version: int, **values: Any) -> None:
        config = SttConfig.model_validate(values)
        data_key = self.keys.data_key(self.service)
        payload = encrypt_secrets(config, service=self.service, key=data_key)
        raw = sign_envelope(
            service=self.service, version=version, epoch=1, config=payload, key=self.keys.signing
        )
        await self.client.publish(updated_topic(self.service), raw, qos=1, retain=True)


class Reports:
    """Applied reports of one instance, read as the `debug` user."""

    def __init__(self, client: aiomqtt.Client, service: str, instance: str) -> None:
        self.client = client
        self.topic = applied_topic(service, instance)

    async def next(self, within: float = 30, **expected: Any) -> AppliedReport:
        """The next report whose fields equal ``expected`` (earlier ones are skipped)."""

        async def find() -> AppliedReport:
            async for message in self.client.messages:
                if message.topic.matches(self.topic):
                    assert isinstance(message.payload, bytes)
                    report = AppliedReport.from_bytes(message.payload)
                    if all(getattr(report, k) == v for k, v in expected.items()):
                        return report
            raise AssertionError("message stream ended")

        return await asyncio.wait_for(find(), within)


@contextlib.asynccontextmanager
async def manager_and_reports(
    broker: Any, keys: Any, service: str, instance: str
) -> AsyncIterator[tuple[Manager, Reports]]:
    async with (
        aiomqtt.Client(**broker.endpoint("manager").client_kwargs()) as manager,
        aiomqtt.Client(**broker.endpoint("debug").client_kwargs()) as debug,
    ):
        reports = Reports(debug, service, instance)
        await debug.subscribe(reports.topic, qos=1)
        yield Manager(manager, keys, service), reports


async def test_signed_updates_mid_stream_applied_reported_and_failed_model_kept(
    broker: Any, keys: Any, service_name: str, tmp_path: Path, engine: WhisperEngine
) -> None:
    instance = unique("stt")
    settings = LibrarySettings(
        data_dir=tmp_path / "data",
        lkg_dir=tmp_path / "lkg",
        mqtt_url=None,
        instance_id=instance,
        initial_wait=5.0,
        fresh_wait=0.0,  # no manager: no freshness record will come
        reconnect_min_delay=0.05,
        reconnect_max_delay=0.5,
    )
    session = unique("signed")
    chunks = list(cut(session, read_pcm16(LJ_PASSAGE)[: 24 * SAMPLE_RATE * 2], 3.0))
    first, second = chunks[:4], chunks[4:]
    async with manager_and_reports(broker, keys, service_name, instance) as (manager, reports):
        await manager.publish(1)
        async with (
            ConfigLibrary(
                service=service_name,
                model=SttConfig,
                settings=settings,
                trust=keys.trust,
                data_keys=[keys.data_key(service_name)],
                endpoint=broker.endpoint(service_name),
            ) as cfg,
            SttWorker(
                endpoint=broker.endpoint("stt"),
                instance_id=instance,
                config=cfg.current,
                config_version=cfg.version,
                settings=SttWorkerSettings(persistent_session=False),
                engine=engine,
            ) as worker,
            session_client(broker.endpoint("orchestrator"), session) as orch,
        ):
            assert cfg.version == 1
            cfg.on_change(worker.apply_config)
            await asyncio.wait_for(worker.wait_ready(), 15)
            for chunk in first:
                await orch.send(chunk)
            results = [await orch.transcript()]
            await manager.publish(2, beam_size=1)
            await reports.next(status="applied", version=2)
            await manager.publish(3, beam_size=1, compute_type="int8_float32")
            report = await reports.next(status="applied", version=3)
            assert report.reason is None
            assert worker.config_version == 3
            assert worker.engine.spec.compute_type == "int8_float32"
            for chunk in second:
                await orch.send(chunk)
            results += [await orch.transcript() for _ in range(len(chunks) - 1)]

            # A model folder that does not exist: failed, version 3 and its model stay.
            missing = str(tmp_path / "no-such-model")
            await manager.publish(4, model=missing, compute_type="int8_float32")
            failed = await reports.next(status="failed")
            assert failed.version == 3
            assert failed.attempted_version == 4
            assert failed.reason == "model_load_failed"
            assert failed.detail is not None
            assert "no-such-model" in failed.detail
            assert cfg.version == 3
            assert worker.config_version == 3
            assert worker.engine.spec.model == "tiny.en"
            speech, reference = librispeech("6930-75918-0000")
            await orch.send(AudioChunk(session, 100, 30.0, SAMPLE_RATE, speech))
            after_failure = await orch.transcript()

    assert [r["chunk_id"] for r in results] == [c.chunk_id for c in chunks]
    versions = [r["stt_config_version"] for r in results]
    assert versions == sorted(versions)
    assert versions[0] == 1
    assert all(r["stt_config_version"] == 3 for r in results[len(first) :])
    assert all(r["model"]["compute_type"] == "int8_float32" for r in results[len(first) :])
    assert after_failure["chunk_id"] == 100
    assert after_failure["stt_config_version"] == 3
    baseline = direct_text(engine, speech, SttConfig(beam_size=1))
    assert_within_margin(reference, after_failure["text"], baseline, "after a failed load")


async def test_python_m_workers_stt_runs_with_signed_config(
    own_broker: Any, keys: Any, engine: WhisperEngine, tmp_path: Path
) -> None:
    """The deployed entry point: signed config in, transcripts out, clean stop on SIGTERM."""
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    (data / "keys" / "trust.pem").write_bytes(keys.trust.to_pem())
    save_data_key(data / "keys" / "stt.key", keys.data_key("stt"))
    instance = unique("stt-main")
    env = {
        **os.environ,
        "CONFIG_LIB_DATA_DIR": str(data),
        "CONFIG_LIB_MQTT_URL": own_broker.url("stt"),
        "CONFIG_LIB_DATA_KEY": str(data / "keys" / "stt.key"),
        "CONFIG_LIB_INSTANCE_ID": instance,
        "CONFIG_LIB_INITIAL_WAIT": "5",
        "CONFIG_LIB_FRESH_WAIT": "0",  # no manager: no freshness record will come
        "STT_PERSISTENT_SESSION": "false",
    }
    session = unique("main")
    speech = read_pcm16(DATA / "derived" / "jfk_16k.wav")
    async with manager_and_reports(own_broker, keys, "stt", instance) as (manager, reports):
        await manager.publish(1, beam_size=2)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.stt",
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        log = ProcessLog(proc)
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(log.read())
                await reports.next(within=60, status="applied", version=1)
                await log.wait_for("subscribed to audio/chunks")
                async with session_client(own_broker.endpoint("orchestrator"), session) as orch:
                    await orch.send(AudioChunk(session, 0, 0.0, SAMPLE_RATE, speech))
                    first = await orch.transcript()
                    await manager.publish(2, beam_size=1, word_timestamps=False)
                    await reports.next(status="applied", version=2)
                    await orch.send(AudioChunk(session, 1, 11.0, SAMPLE_RATE, speech))
                    second = await orch.transcript()
                proc.send_signal(signal.SIGTERM)
                await reports.next(status="offline")
                returncode = await asyncio.wait_for(proc.wait(), 30)
                await reader
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            print(log.text)  # shown by pytest when the test fails
    assert returncode == 0, log.text
    assert first["stt_config_version"] == 1
    jfk = (DATA / "derived" / "jfk_16k.txt").read_text()
    baseline = direct_text(engine, speech, SttConfig(beam_size=2))
    assert_within_margin(jfk, first["text"], baseline, "python -m workers.stt vs direct")
    assert second["chunk_id"] == 1
    assert second["stt_config_version"] == 2
    assert all(seg["words"] == [] for seg in second["segments"])
    assert "loaded Whisper model 'tiny.en'" in log.text
    assert "compute_type=int8" in log.text
    assert "STT worker stopped" in log.text


class ProcessLog:
    """The stderr of a child process, read line by line, with a wait for a given line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._new_line = asyncio.Condition()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    async def read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            async with self._new_line:
                self.lines.append(raw.decode(errors="replace"))
                self._new_line.notify_all()

    async def wait_for(self, words: str, within: float = 60) -> None:
        async def seen() -> None:
            async with self._new_line:
                await self._new_line.wait_for(lambda: words in self.text)

        try:
            await asyncio.wait_for(seen(), within)
        except TimeoutError:
            raise AssertionError(f"{words!r} not logged; log so far:\n{self.text}") from None
