"""Orchestrator benchmark: streamed WER against whole-file WER, and end-to-end latency.

Run: ``.venv/bin/python -m bench.bench_orchestrator`` (options: ``--configs default
high_accuracy ...``, ``--latency-seconds 60``, ``--skip-latency``, ``--skip-wer``), or
``... tune --config 16,8,8,24 --config 3,0.2,3,4`` to try chunk,overlap,interval,buffer
combinations in-process without a broker.

It starts its own mosquitto (project config, auth on) on a free loopback port, the STT
worker (tiny.en int8, beam 5: the SttConfig defaults) and the orchestrator in this
process, and for each config:

* **WER**: streams the 228 s LJ Speech passage as fast as the stack takes it and
  compares the merged transcript's WER with transcribing the whole file in one call
  (same model, same decoding options, same run): ratio streamed / whole-file.
* **latency**: streams the first ``--latency-seconds`` in real time (0.25 s frames) and,
  for every word of the final transcript, measures the time from sending the frame that
  holds the word's end to the client receiving the first merged transcript showing it
  (*shown*) and the first one holding its final reading (*final*): MQTT in and out,
  waiting for the chunk to fill, STT, merge. p50 / p99.

Results go to ``bench/results/orchestrator.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub

import aiomqtt
import numpy as np

from config_lib import MqttEndpoint
from config_manager.broker import (
    BrokerFiles,
    MosquittoProcess,
    free_port,
    render_broker_files,
    write_password_file,
)
from config_manager.presets import PRESETS
from workers.orchestrator import (
    Chunker,
    ChunkWords,
    Orchestrator,
    OrchestratorConfig,
    OrchestratorSettings,
    TranscriptMerger,
    Word,
)
from workers.orchestrator.audio import load_pcm16
from workers.orchestrator.client import StreamResult, stream_audio
from workers.orchestrator.textnorm import normalize_text, word_error_rate
from workers.stt import SttConfig, SttWorker, SttWorkerSettings
from workers.stt.engine import ModelSpec, WhisperEngine, load_engine

REPO = Path(__file__).resolve().parents[1]
DERIVED = REPO.parent / "shared" / "data" / "derived"
PASSAGE = DERIVED / "ljspeech_LJ001-0001_to_0032_16k.wav"
REFERENCE = DERIVED / "ljspeech_LJ001-0001_to_0032_16k.txt"
RATE = 16000
CONFIG_NAMES = ["default", *PRESETS]


def config_named(name: str) -> OrchestratorConfig:
    base = OrchestratorConfig().model_dump()
    if name == "default":
        return OrchestratorConfig.model_validate(base)
    if "," in name:
        chunk, overlap, interval, buffer = (float(x) for x in name.split(","))
        return OrchestratorConfig.model_validate(
            {
                **base,
                "chunk_duration_s": chunk,
                "overlap_duration_s": overlap,
                "processing_interval_s": interval,
                "buffer_duration_s": buffer,
            }
        )
    return OrchestratorConfig.model_validate({**base, **PRESETS[name].patches["orchestrator"]})


def stt_config_for(name: str) -> SttConfig:
    patch = PRESETS[name].patches.get("stt", {}) if name in PRESETS else {}
    return SttConfig.model_validate({**SttConfig().model_dump(), **patch})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- in-process tuning (no broker) ----------------------------------------------------------
def chunk_and_merge(
    engine: WhisperEngine, pcm: np.ndarray, config: OrchestratorConfig, stt: SttConfig
) -> tuple[str, dict[str, int]]:
    """What the running stack computes, without MQTT: chunk, transcribe, merge."""
    chunker = Chunker(config)
    merger = TranscriptMerger()
    for chunk in chunker.feed(pcm) + chunker.flush():
        result = engine.transcribe(chunk.samples.astype(np.float32) / 32768.0, stt)
        words = [
            Word(w.start + chunk.start_s, w.end + chunk.start_s, w.word, w.probability, chunk.index)
            for seg in result.segments
            for w in seg.words
        ]
        merger.add(ChunkWords(chunk.index, chunk.start_s, chunk.end_s, chunk.overlap_s, words))
    seams: dict[str, int] = {}
    for seam in merger.seams:
        seams[seam.method] = seams.get(seam.method, 0) + 1
    return merger.text, seams


def tune(configs: list[str]) -> None:
    engine = load_engine(ModelSpec.from_config(SttConfig()))
    pcm = load_pcm16(PASSAGE, RATE)
    reference = REFERENCE.read_text()
    started = time.perf_counter()
    audio = pcm.astype(np.float32) / 32768.0
    whole = word_error_rate(reference, engine.transcribe(audio, SttConfig()).text)
    print(f"whole file: WER {whole:.4f} ({time.perf_counter() - started:.1f} s)", flush=True)
    for name in configs:
        config = config_named(name)
        started = time.perf_counter()
        text, seams = chunk_and_merge(engine, pcm, config, stt_config_for(name))
        wer = word_error_rate(reference, text)
        print(
            f"{name:>24}: WER {wer:.4f}  ratio {wer / whole:.3f}  seams {seams}  "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )


# -- the running stack -----------------------------------------------------------------------
@dataclass
class Broker:
    process: MosquittoProcess
    users: dict[str, str]

    def endpoint(self, user: str) -> MqttEndpoint:
        return MqttEndpoint(self.process.host, self.process.port, user, self.users[user])

    def url(self, user: str) -> str:
        return f"mqtt://{user}:{self.users[user]}@{self.process.host}:{self.process.port}"


def start_broker(folder: Path) -> Broker:
    files = BrokerFiles(folder)
    port = free_port()
    render_broker_files(files, port=port)
    users = {u: secrets.token_urlsafe(16) for u in ("stt", "orchestrator", "client")}
    write_password_file(files.password_file, users)
    process = MosquittoProcess(files, port=port)
    process.start()
    return Broker(process, users)


async def stream_through_stack(
    broker: Broker,
    engine: WhisperEngine,
    name: str,
    pcm: np.ndarray,
    *,
    realtime: bool,
) -> StreamResult:
    config = config_named(name)
    tag = secrets.token_hex(3)
    async with (
        SttWorker(
            endpoint=broker.endpoint("stt"),
            instance_id=f"bench-stt-{tag}",
            config=stt_config_for(name),
            settings=SttWorkerSettings(persistent_session=False),
            engine=engine,
        ) as stt,
        Orchestrator(
            endpoint=broker.endpoint("orchestrator"),
            settings=OrchestratorSettings(
                instance_id=f"bench-orch-{tag}",
                persistent_session=False,
            ),
            config=config,
            config_version=1,
        ) as orchestrator,
        aiomqtt.Client(
            **broker.endpoint("client").client_kwargs(), identifier=f"bench-cli-{tag}"
        ) as client,
    ):
        await asyncio.wait_for(stt.wait_ready(), 30)
        await asyncio.wait_for(orchestrator.wait_connected(), 30)
        return await stream_audio(
            client, f"bench-{tag}", pcm, frame_s=0.25, realtime=realtime, timeout_s=900
        )


def word_latencies(result: StreamResult) -> tuple[list[float], list[float]]:
    """Per word of the final transcript, seconds from sending the frame holding its end to:

    * *shown*: the first published transcript with that word (same normalised text,
      start within 0.5 s), possibly still from the previous chunk's tentative tail;
    * *final*: the first transcript holding the exact reading that ends up final.
    """
    first_exact: dict[tuple[int, float], float] = {}
    seen_text: list[tuple[str, float, float]] = []  # (text, start, time seen)
    for doc, at in zip(result.documents, result.received_at, strict=True):
        for w in doc["words"]:
            key = (w["chunk_id"], w["start"])
            if key not in first_exact:
                first_exact[key] = at
                seen_text.append((normalize_text(w["word"]), w["start"], at))
    frame_ends = sorted(result.sent_at)
    shown, final = [], []
    for w in result.final["words"]:
        end_sample = round(w["end"] * RATE)
        frame = next((f for f in frame_ends if f >= end_sample), frame_ends[-1])
        sent = result.sent_at[frame]
        exact = first_exact.get((w["chunk_id"], w["start"]))
        if exact is None:
            continue
        text = normalize_text(w["word"])
        first = min(
            (at for t, start, at in seen_text if t == text and abs(start - w["start"]) < 0.5),
            default=exact,
        )
        shown.append(first - sent)
        final.append(exact - sent)
    return shown, final


async def run_stack(args: argparse.Namespace) -> dict[str, Any]:
    engine = load_engine(ModelSpec.from_config(SttConfig()))
    pcm = load_pcm16(PASSAGE, RATE)
    reference = REFERENCE.read_text()
    results: dict[str, Any] = {"configs": {}}
    folder = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    broker = start_broker(folder)
    try:
        if not args.skip_wer:
            started = time.perf_counter()
            whole_text = engine.transcribe(pcm.astype(np.float32) / 32768.0, SttConfig()).text
            whole = word_error_rate(reference, whole_text)
            results["whole_file"] = {"wer": whole, "seconds": time.perf_counter() - started}
            print(f"whole file ({len(pcm) / RATE:.0f} s): WER {whole:.4f}", flush=True)
        for name in args.configs:
            entry: dict[str, Any] = {"config": config_named(name).model_dump()}
            if not args.skip_wer:
                started = time.perf_counter()
                result = await stream_through_stack(broker, engine, name, pcm, realtime=False)
                wer = word_error_rate(reference, result.text)
                entry |= {
                    "wer": wer,
                    "ratio": wer / results["whole_file"]["wer"],
                    "chunks": len(result.final["chunks"]),
                    "stream_seconds": time.perf_counter() - started,
                }
                print(
                    f"{name:>24}: WER {wer:.4f}  ratio {entry['ratio']:.3f}  "
                    f"({entry['chunks']} chunks, {entry['stream_seconds']:.0f} s)",
                    flush=True,
                )
            if not args.skip_latency:
                head = pcm[: round(args.latency_seconds * RATE)]
                result = await stream_through_stack(broker, engine, name, head, realtime=True)
                shown, final = word_latencies(result)
                entry |= {
                    "shown_p50_s": pct(shown, 0.5),
                    "shown_p99_s": pct(shown, 0.99),
                    "final_p50_s": pct(final, 0.5),
                    "final_p99_s": pct(final, 0.99),
                    "latency_words": len(final),
                }
                print(
                    f"{name:>24}: word latency shown p50 {entry['shown_p50_s']:.2f} s "
                    f"p99 {entry['shown_p99_s']:.2f} s; final p50 {entry['final_p50_s']:.2f} s "
                    f"p99 {entry['final_p99_s']:.2f} s  ({len(final)} words, real time)",
                    flush=True,
                )
            results["configs"][name] = entry
    finally:
        broker.process.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench_orchestrator")
    parser.add_argument("mode", nargs="?", default="stack", choices=["stack", "tune"])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=CONFIG_NAMES,
        help="config names: default, a preset, or chunk,overlap,interval,buffer",
    )
    parser.add_argument("--config", action="append", help="(tune) one more config to try")
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-wer", action="store_true")
    args = parser.parse_args()
    if args.mode == "tune":
        tune(args.config or args.configs)
        return 0
    results = asyncio.run(run_stack(args))
    out = REPO / "bench" / "results" / "orchestrator.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and (args.skip_wer or args.skip_latency):
        # a partial run updates the figures it measured and keeps the others
        previous = json.loads(out.read_text())
        for name, entry in results["configs"].items():
            previous.setdefault("configs", {}).setdefault(name, {}).update(entry)
        results = previous | {k: v for k, v in results.items() if k != "configs"}
    out.write_text(json.dumps(results, indent=2))
    print(f"\nresults written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
