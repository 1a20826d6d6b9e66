"""Orchestrator benchmark: final-word WER against whole-file WER, junction errors, latency.

Run: ``.venv/bin/python -m bench.bench_orchestrator`` (options: ``--configs default
high_accuracy ...`` or ``chunk,overlap,interval,buffer``, ``--latency-seconds 60``,
``--skip-latency``, ``--skip-wer``).

For each config (the default, and every preset with its STT decoding fields):

* **WER, pooled over every recording in ``../shared/data``**: the 228 s LJ Speech
  passage (the 32 LJ clips are the same audio, so they are not counted twice), JFK, the
  three LibriSpeech utterances and the AMI excerpt. Each is cut by the orchestrator's
  own :class:`~workers.orchestrator.session.Session` (the chunker and merge the service
  runs), each chunk decoded by the same engine, and the final transcript scored against
  the reference. **Whole-file**: each recording decoded in one call with the same model
  and decoding options, same run. The ratio is streamed / whole-file. This part runs in
  process: chunks are cut from the audio alone and decoding is deterministic, so the
  final text is the one the running stack publishes at any playback speed.
  WER is given with two normalisers: ours (``workers.orchestrator.textnorm``) and the
  ``whisper-normalizer`` package's English normaliser (both through ``jiwer``).
* **Junction errors**: a junction word is a word the final transcript holds in the
  reading of a chunk whose first or last word it is (the last word of one chunk or the
  first of the next: the chunk heard it at its edge). Errors are counted on reference words the
  whole-file decode gets right (plus insertions); the share of those at a junction word
  is compared with the share of words that are junction words.
* **Latency, real-time playback through the running stack** (mosquitto, STT worker,
  orchestrator, a client; first ``--latency-seconds`` of the passage in 0.25 s frames):
  per word of the final transcript, seconds from sending the frame holding the word's
  end to the client receiving the first transcript that shows it (*interim*: same
  normalised word, start within 0.5 s) and the first holding it as a final word
  (*final*). p50 / p99. These depend on the machine's load (decode time); compare
  configs measured in the same run.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub

import aiomqtt
import jiwer
import numpy as np
from whisper_normalizer.english import EnglishTextNormalizer

from config_lib import MqttEndpoint
from config_manager.broker import (
    BrokerFiles,
    MosquittoProcess,
    free_port,
    render_broker_files,
    write_password_file,
)
from workers.orchestrator import Orchestrator, OrchestratorConfig, OrchestratorSettings, Session
from workers.orchestrator.audio import load_pcm16
from workers.orchestrator.client import StreamResult, stream_audio
from workers.orchestrator.presets import PRESETS
from workers.orchestrator.textnorm import normalize_text
from workers.stt import SttConfig, SttWorker, SttWorkerSettings
from workers.stt.engine import ModelSpec, WhisperEngine, load_engine

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PASSAGE = DATA / "derived" / "ljspeech_LJ001-0001_to_0032_16k.wav"
RATE = 16000
CONFIG_NAMES = ["default", *PRESETS]
Normaliser = Callable[[str], str]
_WHISPER = EnglishTextNormalizer()
NORMALISERS: dict[str, Normaliser] = {
    "ours": normalize_text,
    "whisper": lambda text: " ".join(_WHISPER(text).split()),
}


def recordings() -> list[tuple[str, Path, str]]:
    """(name, audio file, reference) for every distinct recording in ../shared/data."""
    out = [
        ("lj_passage", PASSAGE, PASSAGE.with_suffix(".txt").read_text()),
        ("jfk", DATA / "derived" / "jfk_16k.wav", (DATA / "derived" / "jfk_16k.txt").read_text()),
    ]
    for line in (DATA / "librispeech" / "transcripts.tsv").read_text().splitlines():
        key, text = line.split("\t")
        out.append((f"libri_{key}", DATA / "librispeech" / f"{key}.flac", text))
    for wav in sorted((DATA / "ami").glob("*.wav")):
        out.append((f"ami_{wav.stem}", wav, wav.with_suffix(".txt").read_text()))
    return out


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
    return OrchestratorConfig.model_validate({**base, **PRESETS[name]["patches"]["orchestrator"]})


def stt_config_for(name: str) -> SttConfig:
    patch = PRESETS[name]["patches"]["stt"] if name in PRESETS else {}
    return SttConfig.model_validate({**SttConfig().model_dump(), **patch})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- final text of a stream, in process --------------------------------------------------
def stream_in_process(
    engine: WhisperEngine, pcm: np.ndarray, config: OrchestratorConfig, stt: SttConfig
) -> tuple[dict[str, Any], set[tuple[int, float]]]:
    """The final transcript document the service publishes for ``pcm`` (no MQTT), and the
    edge words of every chunk: (chunk id, start) of each chunk's first and last word."""
    # Every chunk decoded, as when the STT worker keeps up with real time (a worker that
    # falls behind gets coalesced chunks: see max_chunks_in_flight).
    session = Session("bench", config.model_copy(update={"max_chunks_in_flight": 0}), 1)
    chunks = session.feed(pcm.astype("<i2").tobytes(), 0.0) + session.end()
    edges: set[tuple[int, float]] = set()
    for chunk in chunks:
        result = engine.transcribe(chunk.samples.astype(np.float32) / 32768.0, stt)
        words = [
            {
                "start": w.start + chunk.start_s,
                "end": w.end + chunk.start_s,
                "word": w.word,
                "probability": w.probability,
            }
            for seg in result.segments
            for w in seg.words
        ]
        if words:
            edges.update({(chunk.index, round(words[i]["start"], 3)) for i in (0, -1)})
        session.on_transcript({"chunk_id": chunk.index, "segments": [{"words": words}]})
    return session.document(final=True), edges


# -- scoring -------------------------------------------------------------------------------
@dataclass
class Score:
    """Error counts pooled over recordings."""

    ref_words: int = 0
    errors: int = 0
    words: int = 0  # streamed words (normalised tokens)
    junction_words: int = 0
    counted_errors: int = 0  # errors on reference words the whole file gets right, + insertions
    junction_errors: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.ref_words)


def wer_counts(reference: str, hypothesis: str, norm: Normaliser) -> tuple[int, int]:
    ref, hyp = norm(reference), norm(hypothesis)
    if not ref.split():
        return len(hyp.split()), 0
    out = jiwer.process_words(ref, hyp or "")
    return out.substitutions + out.deletions + out.insertions, len(ref.split())


def junction_analysis(
    reference: str,
    words: Sequence[dict[str, Any]],
    edges: set[tuple[int, float]],
    whole: str,
    score: Score,
) -> None:
    """Add the junction counts of one recording's final words to ``score`` (our normaliser)."""
    tokens: list[str] = []
    owner: list[int] = []
    for i, w in enumerate(words):
        for token in normalize_text(w["word"]).split():
            tokens.append(token)
            owner.append(i)
    # a junction word: the final transcript holds it in the reading of a chunk whose first
    # or last word it is (the chunk heard it at its edge)
    junction = [(w["chunk_id"], w["start"]) in edges for w in words]
    ref = normalize_text(reference)
    if not ref or not tokens:
        return
    right: set[int] = set()
    if normalize_text(whole):
        for a in jiwer.process_words(ref, normalize_text(whole)).alignments[0]:
            if a.type == "equal":
                right.update(range(a.ref_start_idx, a.ref_end_idx))
    score.words += len(tokens)
    score.junction_words += sum(junction[o] for o in owner)
    for a in jiwer.process_words(ref, " ".join(tokens)).alignments[0]:
        if a.type == "equal":
            continue
        hyp_idx = list(range(a.hyp_start_idx, a.hyp_end_idx))
        near = hyp_idx or [
            i for i in (a.hyp_start_idx - 1, a.hyp_start_idx) if 0 <= i < len(tokens)
        ]
        at_junction = any(junction[owner[i]] for i in near)
        if a.type == "insert":
            units = a.hyp_end_idx - a.hyp_start_idx
        else:
            units = sum(1 for r in range(a.ref_start_idx, a.ref_end_idx) if r in right)
        score.counted_errors += units
        if at_junction and units:
            score.junction_errors += units
            context = " ".join(tokens[max(0, a.hyp_start_idx - 2) : a.hyp_end_idx + 2])
            score.examples.append(f"{a.type}: ...{context}...")


def wer_part(engine: WhisperEngine, names: list[str]) -> dict[str, Any]:
    recs = [(n, load_pcm16(p, RATE), ref) for n, p, ref in recordings()]
    total_s = sum(len(pcm) for _, pcm, _ in recs) / RATE
    print(
        f"{len(recs)} recordings, {total_s:.0f} s: {', '.join(n for n, _, _ in recs)}", flush=True
    )
    results: dict[str, Any] = {}
    whole_cache: dict[str, dict[str, str]] = {}
    for name in names:
        config, stt = config_named(name), stt_config_for(name)
        key = stt.model_dump_json()
        if key not in whole_cache:
            whole_cache[key] = {
                n: engine.transcribe(pcm.astype(np.float32) / 32768.0, stt).text
                for n, pcm, _ in recs
            }
        wholes = whole_cache[key]
        started = time.perf_counter()
        streamed: dict[str, Score] = {k: Score() for k in NORMALISERS}
        whole: dict[str, Score] = {k: Score() for k in NORMALISERS}
        chunks = 0
        per_recording: dict[str, float] = {}
        for rec, pcm, reference in recs:
            doc, edges = stream_in_process(engine, pcm, config, stt)
            chunks += len(doc["chunks"])
            for k, norm in NORMALISERS.items():
                e, n = wer_counts(reference, doc["text"], norm)
                streamed[k].errors += e
                streamed[k].ref_words += n
                we, wn = wer_counts(reference, wholes[rec], norm)
                whole[k].errors += we
                whole[k].ref_words += wn
                if k == "ours":
                    per_recording[rec] = e / max(1, n)
            junction_analysis(reference, doc["words"], edges, wholes[rec], streamed["ours"])
        s = streamed["ours"]
        entry = {
            "config": config.model_dump(),
            "stt": {f: getattr(stt, f) for f in ("beam_size", "vad_filter")},
            "chunks": chunks,
            "seconds": time.perf_counter() - started,
            "per_recording_wer": per_recording,
            "junction_error_share": s.junction_errors / max(1, s.counted_errors),
            "junction_word_share": s.junction_words / max(1, s.words),
            "junction_errors": s.junction_errors,
            "counted_errors": s.counted_errors,
            "junction_examples": s.examples[:10],
        }
        for k in NORMALISERS:
            entry[f"wer_{k}"] = streamed[k].wer
            entry[f"whole_wer_{k}"] = whole[k].wer
            entry[f"ratio_{k}"] = streamed[k].wer / max(whole[k].wer, 1e-9)
            entry[f"errors_{k}"] = [streamed[k].errors, whole[k].errors, streamed[k].ref_words]
        results[name] = entry
        print(
            f"{name:>22}: WER {entry['wer_ours']:.2%} (whole {entry['whole_wer_ours']:.2%}, "
            f"ratio {entry['ratio_ours']:.2f}) | whisper-normalizer {entry['wer_whisper']:.2%} "
            f"(whole {entry['whole_wer_whisper']:.2%}, ratio {entry['ratio_whisper']:.2f}) | "
            f"junction errors {entry['junction_error_share']:.0%} vs words "
            f"{entry['junction_word_share']:.0%} | {chunks} chunks, {entry['seconds']:.0f} s",
            flush=True,
        )
    return results


# -- latency through the running stack -------------------------------------------------------
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
    users = {u: secrets.token_urlsafe(16) for u in ("stt", "orchestrator", "client")}
    write_password_file(files.password_file, users)
    process = MosquittoProcess(files, port=port)
    process.start()
    return Broker(process, users)


async def stream_through_stack(
    broker: Broker, engine: WhisperEngine, name: str, pcm: np.ndarray, *, realtime: bool
) -> StreamResult:
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
                instance_id=f"bench-orch-{tag}", persistent_session=False
            ),
            config=config_named(name),
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
    """Per word of the final transcript, seconds from sending the frame holding its end to
    the first document showing it (*interim*: same normalised word, start within 0.5 s)
    and the first holding it as a final word (same normalised word and start within 0.5 s,
    marked final)."""
    seen: list[tuple[str, float, float, bool]] = []  # (text, start, time received, final)
    for doc, at in zip(result.documents, result.received_at, strict=True):
        for w in doc["words"]:
            seen.append((normalize_text(w["word"]), w["start"], at, bool(w.get("final"))))
    frame_ends = sorted(result.sent_at)
    interim, final = [], []
    for w in result.final["words"]:
        end_sample = round(w["end"] * RATE)
        frame = next((f for f in frame_ends if f >= end_sample), frame_ends[-1])
        sent = result.sent_at[frame]
        text = normalize_text(w["word"])
        matches = [
            (at, fin) for t, start, at, fin in seen if t == text and abs(start - w["start"]) < 0.5
        ]
        if not matches:
            continue
        interim.append(min(at for at, _ in matches) - sent)
        final.append(min(at for at, fin in matches if fin) - sent)
    return interim, final


async def latency_part(engine: WhisperEngine, names: list[str], seconds: float) -> dict[str, Any]:
    pcm = load_pcm16(PASSAGE, RATE)[: round(seconds * RATE)]
    folder = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    broker = start_broker(folder)
    results: dict[str, Any] = {}
    try:
        for name in names:
            load = os.getloadavg()[0]
            result = await stream_through_stack(broker, engine, name, pcm, realtime=True)
            interim, final = word_latencies(result)
            results[name] = {
                "interim_p50_s": pct(interim, 0.5),
                "interim_p99_s": pct(interim, 0.99),
                "final_p50_s": pct(final, 0.5),
                "final_p99_s": pct(final, 0.99),
                "latency_words": len(final),
                "load_average": load,
            }
            r = results[name]
            print(
                f"{name:>22}: interim p50 {r['interim_p50_s']:.2f} s p99 "
                f"{r['interim_p99_s']:.2f} s | final p50 {r['final_p50_s']:.2f} s p99 "
                f"{r['final_p99_s']:.2f} s | {len(final)} words, real time, load {load:.1f}",
                flush=True,
            )
    finally:
        broker.process.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def table(results: dict[str, Any]) -> str:
    """The per-config summary table (markdown)."""
    lines = [
        "| config | WER | whole | ratio | WER (whisper-norm.) | whole | ratio | junction "
        "errors / words | interim p50 / p99 | final p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in results["configs"].items():

        def f(key: str, fmt: str, e: dict[str, Any] = e) -> str:
            return format(e[key], fmt) if key in e else "–"

        lines.append(
            f"| {name} | {f('wer_ours', '.2%')} | {f('whole_wer_ours', '.2%')} | "
            f"{f('ratio_ours', '.2f')} | {f('wer_whisper', '.2%')} | "
            f"{f('whole_wer_whisper', '.2%')} | {f('ratio_whisper', '.2f')} | "
            f"{f('junction_error_share', '.0%')} / {f('junction_word_share', '.0%')} | "
            f"{f('interim_p50_s', '.1f')} / {f('interim_p99_s', '.1f')} s | "
            f"{f('final_p50_s', '.1f')} / {f('final_p99_s', '.1f')} s |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench_orchestrator")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=CONFIG_NAMES,
        help="config names: default, a preset, or chunk,overlap,interval,buffer",
    )
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-wer", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "orchestrator.json"
    )
    args = parser.parse_args()
    engine = load_engine(ModelSpec.from_config(SttConfig()))
    configs: dict[str, dict[str, Any]] = {name: {} for name in args.configs}
    if not args.skip_wer:
        for name, entry in wer_part(engine, args.configs).items():
            configs[name].update(entry)
    if not args.skip_latency:
        latency = asyncio.run(latency_part(engine, args.configs, args.latency_seconds))
        for name, entry in latency.items():
            configs[name].update(entry)
    results = {"configs": configs, "load_average_end": os.getloadavg()[0]}
    print()
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists() and (args.skip_wer or args.skip_latency):
        # a partial run updates the figures it measured and keeps the others
        previous = json.loads(args.out.read_text())
        for name, entry in configs.items():
            previous.setdefault("configs", {}).setdefault(name, {}).update(entry)
        results = previous | {k: v for k, v in results.items() if k != "configs"}
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
