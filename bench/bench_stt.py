"""STT worker benchmark: the worker over MQTT against plain faster-whisper, same run.

Run: ``.venv/bin/python -m bench.bench_stt`` (add ``--seconds 60 --chunk 5 --rounds 3``).
It starts its own mosquitto (project config, auth on) on a free loopback port, loads
tiny.en (int8, beam 5, the SttConfig defaults) and cuts the first ``--seconds`` of
the LJ Speech passage in ``../shared/data`` into ``--chunk``-second chunks.

Measured, medians over ``--rounds`` alternating rounds:

* throughput: all chunks published at once -> last transcript received, against plain
  ``WhisperModel.transcribe`` of the same chunks in this process (same model files and
  options). Reported as real-time factors (wall / audio) and the median of the per-round
  worker/plain ratios (target <= 1.10);
* latency: one chunk at a time, publish -> transcript received, p50/p99, and the median
  of its ratio to the plain decode of the same chunk just before (paired);
* model swap: chunks published at a steady pace (2x the median plain decode time, so
  the worker keeps up), once without and once with a model change (same files under
  another path, so decoding speed after the swap is unchanged) applied after the 3rd
  chunk: the time the load + swap took, and how many chunks were delayed (latency more
  than 25 % of the median above the same chunk's in the run without a swap; chunks 0-1
  come before the swap and give the noise floor of that test).

Figures go to stdout and, as JSON, to ``bench/results/stt.json``. Bounded to ~2 min.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import soundfile as sf

from config_lib import MqttEndpoint
from config_manager.broker import (
    BrokerFiles,
    MosquittoProcess,
    free_port,
    render_broker_files,
    write_password_file,
)
from workers.common import (
    AudioChunk,
    audio_chunks_topic,
    encode_chunk,
    stt_transcripts_topic,
)
from workers.stt import SttConfig, SttWorker, SttWorkerSettings
from workers.stt.engine import (
    ModelSpec,
    WhisperEngine,
    decode_options,
    load_engine,
    pcm16_to_float32,
    resolve_model_path,
)

REPO = Path(__file__).resolve().parents[1]
PASSAGE = REPO.parent / "shared" / "data" / "derived" / "ljspeech_LJ001-0001_to_0032_16k.wav"
RATE = 16000


@dataclass
class Broker:
    process: MosquittoProcess
    users: dict[str, str]

    def endpoint(self, user: str) -> MqttEndpoint:
        return MqttEndpoint(self.process.host, self.process.port, user, self.users[user])


def start_broker(folder: Path) -> Broker:
    files = BrokerFiles(folder)
    port = free_port()
    render_broker_files(files, port=port)
    users = {u: secrets.token_urlsafe(16) for u in ("stt", "orchestrator")}
    write_password_file(files.password_file, users)
    process = MosquittoProcess(files, port=port)
    process.start()
    return Broker(process, users)


def make_chunks(session: str, seconds: float, chunk_s: float) -> list[AudioChunk]:
    samples, rate = sf.read(PASSAGE, dtype="int16")
    assert rate == RATE
    pcm = np.ascontiguousarray(samples[: int(seconds * RATE)], dtype="<i2").tobytes()
    step = int(chunk_s * RATE) * 2
    return [
        AudioChunk(session, i, start / 2 / RATE, RATE, pcm[start : start + step])
        for i, start in enumerate(range(0, len(pcm), step))
    ]


def plain_decode(model: Any, chunk: AudioChunk, config: SttConfig) -> float:
    """Plain faster-whisper on one chunk; returns the seconds it took."""
    started = time.perf_counter()
    segments, _ = model.transcribe(pcm16_to_float32(chunk.pcm), **decode_options(config))
    for _segment in segments:  # decoding happens while iterating
        pass
    return time.perf_counter() - started


class Client:
    """The bench's MQTT side: publishes chunks, timestamps transcripts as they arrive."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.arrivals: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    async def pump(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            await self.arrivals.put((time.perf_counter(), json.loads(message.payload)))

    async def send(self, chunk: AudioChunk) -> float:
        payload = encode_chunk(chunk)
        sent = time.perf_counter()
        await self.client.publish(audio_chunks_topic(chunk.session), payload, qos=1)
        return sent

    async def receive(self) -> tuple[float, dict[str, Any]]:
        return await asyncio.wait_for(self.arrivals.get(), 60)


async def worker_throughput(client: Client, chunks: list[AudioChunk]) -> float:
    started = time.perf_counter()
    for chunk in chunks:
        await client.send(chunk)
    ids = []
    arrived = started
    for _ in chunks:
        arrived, body = await client.receive()
        ids.append(body["chunk_id"])
    assert ids == [c.chunk_id for c in chunks], ids
    return arrived - started


async def paced(
    client: Client,
    chunks: list[AudioChunk],
    interval: float,
    worker: SttWorker | None = None,
    swap_to: SttConfig | None = None,
) -> tuple[list[float], float | None]:
    """Publish at a steady pace; return per-chunk latencies (and the swap's duration)."""
    sent: dict[int, float] = {}
    swap_s: float | None = None

    async def swap() -> None:
        nonlocal swap_s
        assert worker is not None
        assert swap_to is not None
        started = time.perf_counter()
        await worker.apply_config(_Change(swap_to, (worker.config_version or 0) + 1))
        swap_s = time.perf_counter() - started

    async with asyncio.TaskGroup() as group:
        next_at = time.perf_counter()
        for chunk in chunks:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))  # pacing the source
            sent[chunk.chunk_id] = await client.send(chunk)
            if swap_to is not None and chunk.chunk_id == 2:
                group.create_task(swap())
            next_at += interval
        latencies = []
        for chunk in chunks:
            arrived, body = await client.receive()
            assert body["chunk_id"] == chunk.chunk_id
            latencies.append(arrived - sent[chunk.chunk_id])
    return latencies, swap_s


@dataclass(frozen=True)
class _Change:
    new: SttConfig
    version: int


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from faster_whisper import WhisperModel

    config = SttConfig()
    spec = ModelSpec.from_config(config)
    engine: WhisperEngine = load_engine(spec)
    plain = WhisperModel(
        str(resolve_model_path(config.model)),
        device=config.device,
        compute_type=config.compute_type,
        cpu_threads=config.cpu_threads,
        num_workers=1,
        local_files_only=True,
    )
    session = f"bench-{secrets.token_hex(3)}"
    chunks = make_chunks(session, args.seconds, args.chunk)
    audio_s = sum(c.duration_s for c in chunks)
    with tempfile.TemporaryDirectory(prefix="bench-stt-") as tmp:
        copy = Path(tmp) / "tiny-copy"
        shutil.copytree(resolve_model_path(config.model), copy)
        swap_to = config.model_copy(update={"model": str(copy)})
        broker = start_broker(Path(tmp) / "mosquitto")
        try:
            async with (
                SttWorker(
                    endpoint=broker.endpoint("stt"),
                    instance_id=f"bench-stt-{secrets.token_hex(3)}",
                    config=config,
                    settings=SttWorkerSettings(persistent_session=False),
                    engine=engine,
                ) as worker,
                aiomqtt.Client(**broker.endpoint("orchestrator").client_kwargs()) as mqtt,
            ):
                await asyncio.wait_for(worker.wait_ready(), 15)
                await mqtt.subscribe(stt_transcripts_topic(session), qos=1)
                client = Client(mqtt)
                async with asyncio.TaskGroup() as group:
                    pump = group.create_task(client.pump())
                    try:
                        results = await measure(
                            args, client, worker, plain, config, chunks, swap_to
                        )
                    finally:
                        pump.cancel()
        finally:
            broker.process.stop()
    results["audio_s"] = round(audio_s, 2)
    results["chunks"] = len(chunks)
    results["chunk_s"] = args.chunk
    return results


async def measure(
    args: argparse.Namespace,
    client: Client,
    worker: SttWorker,
    plain: Any,
    config: SttConfig,
    chunks: list[AudioChunk],
    swap_to: SttConfig,
) -> dict[str, Any]:
    audio_s = sum(c.duration_s for c in chunks)
    plain_decode(plain, chunks[0], config)  # warm-up, not counted
    await worker_throughput(client, chunks[:1])
    plain_walls, worker_walls, per_chunk = [], [], []
    for _ in range(args.rounds):  # alternate to share the machine's noise fairly
        times = [plain_decode(plain, c, config) for c in chunks]
        per_chunk += times
        plain_walls.append(sum(times))
        worker_walls.append(await worker_throughput(client, chunks))
    plain_rtf = statistics.median(plain_walls) / audio_s
    worker_rtf = statistics.median(worker_walls) / audio_s
    ratios = [w / p for w, p in zip(worker_walls, plain_walls, strict=True)]

    # Closed loop, paired per chunk: plain decode, then the same chunk through the worker.
    plain_times, latencies = [], []
    for chunk in chunks:
        plain_times.append(plain_decode(plain, chunk, config))
        latencies.append(await worker_throughput(client, [chunk]))
    chunk_ratios = [w / p for w, p in zip(latencies, plain_times, strict=True)]

    interval = 2.0 * statistics.median(per_chunk)
    paced_latencies, _ = await paced(client, chunks, interval)
    swap_latencies, swap_s = await paced(client, chunks, interval, worker, swap_to)
    # A chunk is "delayed by the swap" if it took noticeably longer than the same chunk
    # in the run just before without a swap (same pace, same audio).
    slack = 0.25 * statistics.median(paced_latencies)
    extra = [s - n for s, n in zip(swap_latencies, paced_latencies, strict=True)]
    # Chunks 0-1 are answered before the swap starts: the same test on them is the noise floor.
    delayed = [i for i, d in enumerate(extra) if d > slack and i >= 2]
    noise = [i for i, d in enumerate(extra) if d > slack and i < 2]
    return {
        "plain_rtf": round(plain_rtf, 4),
        "worker_rtf": round(worker_rtf, 4),
        "rtf_ratio": round(statistics.median(ratios), 4),
        "rtf_ratio_per_round": [round(r, 4) for r in ratios],
        "rtf_ratio_of_medians": round(worker_rtf / plain_rtf, 4),
        "plain_chunk_p50_s": round(pct(plain_times, 0.5), 4),
        "plain_chunk_p99_s": round(pct(plain_times, 0.99), 4),
        "latency_p50_s": round(pct(latencies, 0.5), 4),
        "latency_p99_s": round(pct(latencies, 0.99), 4),
        "latency_ratio_median": round(statistics.median(chunk_ratios), 4),
        "pace_interval_s": round(interval, 4),
        "swap_load_s": round(swap_s or 0.0, 4),
        "swap_delay_slack_s": round(slack, 4),
        "chunks_delayed_by_swap": len(delayed),
        "delayed_chunk_ids": delayed,
        "noise_floor_delayed_before_swap": f"{len(noise)}/2",
        "swap_max_extra_latency_s": round(max(extra), 4),
        "model_after_swap": worker.engine.describe()["path"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=40.0, help="audio used (s)")
    parser.add_argument("--chunk", type=float, default=5.0, help="chunk length (s)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"  # before faster_whisper imports huggingface_hub
    if not PASSAGE.is_file():
        print(f"test audio not found: {PASSAGE}", file=sys.stderr)
        return 2
    results = asyncio.run(run(args))
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "stt.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
