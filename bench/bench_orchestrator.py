"""Orchestrator benchmark: final-word WER against whole-file WER, junction errors, latency.

Run: ``.venv/bin/python -m bench.bench_orchestrator`` (about 15 min on an idle 2-core
machine; options: ``--configs default high_accuracy ...`` or
``chunk,overlap,interval,buffer[,beam[,pause]]``, ``--realtime-wer default ...``,
``--latency-seconds 60``, ``--cpu-threads 2``, ``--skip-latency``, ``--skip-wer``).

For each config (the default, and every preset with its STT decoding fields):

* **WER, pooled over every recording in ``../shared/data``**: the 228 s LJ Speech
  passage (the 32 LJ clips are the same audio, so they are not counted twice), JFK, the
  three LibriSpeech utterances and the AMI excerpt (262 s, 657 reference words).
  **Whole-file**: each recording decoded in one call with the same model and decoding
  options, same run. The ratio is streamed / whole-file, and Δ pp the difference.
  For the configs in ``--realtime-wer`` (default: ``default``, the low-latency mode)
  the streamed text is the final transcript the client received when every recording
  was **played in real time through the running stack** (below): chunks coalesced when
  the STT worker falls behind count. For the other configs (the presets) it is computed
  **in process** (the orchestrator's own :class:`~workers.orchestrator.session.Session`,
  every chunk decoded by the same engine, no coalescing: what the stack publishes when
  the worker keeps up); the output says which ("WER measured").
  WER is given with two normalisers: ours (``workers.orchestrator.textnorm``) and the
  ``whisper-normalizer`` package's English normaliser (both through ``jiwer``).
* **Junction errors**: a junction word is a word the final transcript holds in the
  reading of a chunk whose first or last word it is (the last word of one chunk or the
  first of the next: the chunk heard it at its edge). Errors are counted on reference
  words the whole-file decode gets right (plus insertions); the share of those at a
  junction word is compared with the share of words that are junction words.
* **Latency, real-time playback through the running stack** (mosquitto, STT worker,
  orchestrator, a client sending 100 ms frames paced at the speed of speech): every
  recording for the ``--realtime-wer`` configs, the first ``--latency-seconds`` of the
  passage for the others. Per word of the final transcript, seconds from the word's end
  in the audio (on the playback clock) to the client receiving the first transcript that
  shows it (*interim*: same normalised word, start within 0.5 s) and the first holding it
  as a final word (*final*). p50 / p99.
* **Where the time goes** (per chunk, p50): audio of the chunk's end due → chunk sent by
  the orchestrator (waiting while the previous chunk is at the worker) → decode start
  (MQTT, worker queue) → decode end → transcript merged by the orchestrator → document
  at the client; chunks decoded and coalesced; decoding wall time and CPU time (process
  CPU during decodes, all threads) as a share of the audio's duration.

Latency depends on the machine's load (decode time): every figure is printed with the
load average; compare configs measured in the same run. Results go to
``bench/results/orchestrator.json`` (with the command and the bench's duration).
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
from workers.orchestrator.session import ChunkRecord
from workers.orchestrator.textnorm import normalize_text
from workers.stt import SttConfig, SttWorker, SttWorkerSettings
from workers.stt.engine import ModelSpec, Transcription, WhisperEngine, load_engine

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PASSAGE = DATA / "derived" / "ljspeech_LJ001-0001_to_0032_16k.wav"
RATE = 16000
FRAME_S = 0.1  # client frames: 100 ms, as a microphone client would send
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
    """``default``, a preset, or ``chunk,overlap,interval,buffer[,beam[,pause]]`` (the
    default's other fields; ``pause`` is ``final_after_pause_s``)."""
    base = OrchestratorConfig().model_dump()
    if name == "default":
        return OrchestratorConfig.model_validate(base)
    if "," in name:
        values = [float(x) for x in name.split(",")]
        chunk, overlap, interval, buffer = values[:4]
        fields = {
            "chunk_duration_s": chunk,
            "overlap_duration_s": overlap,
            "processing_interval_s": interval,
            "buffer_duration_s": buffer,
        }
        if len(values) > 5:
            fields["final_after_pause_s"] = values[5]
        return OrchestratorConfig.model_validate({**base, **fields})
    return OrchestratorConfig.model_validate({**base, **PRESETS[name]["patches"]["orchestrator"]})


def stt_config_for(name: str) -> SttConfig:
    patch: dict[str, Any] = dict(PRESETS[name]["patches"]["stt"]) if name in PRESETS else {}
    if "," in name and len(name.split(",")) > 4:
        patch["beam_size"] = int(float(name.split(",")[4]))
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
        words: list[dict[str, Any]] = [
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


Recording = tuple[str, np.ndarray, str]  # name, 16-bit PCM, reference text


class WholeCache:
    """Each recording decoded whole in one call, per STT config (computed once per run)."""

    def __init__(self) -> None:
        self._texts: dict[str, dict[str, str]] = {}

    def get(self, engine: WhisperEngine, name: str, recs: Sequence[Recording]) -> dict[str, str]:
        stt = stt_config_for(name)
        key = stt.model_dump_json()
        if key not in self._texts:
            self._texts[key] = {
                n: engine.transcribe(pcm.astype(np.float32) / 32768.0, stt).text
                for n, pcm, _ in recs
            }
        return self._texts[key]


def load_recordings() -> list[Recording]:
    return [(n, load_pcm16(p, RATE), ref) for n, p, ref in recordings()]


def score(
    finals: Sequence[tuple[str, dict[str, Any], set[tuple[int, float]]]],
    recs: Sequence[Recording],
    wholes: dict[str, str],
) -> dict[str, Any]:
    """Pooled WER of final documents (recording name, document, edge words) against the
    references, beside the whole-file decodes; junction-error share."""
    references = {n: ref for n, _, ref in recs}
    streamed: dict[str, Score] = {k: Score() for k in NORMALISERS}
    whole: dict[str, Score] = {k: Score() for k in NORMALISERS}
    per_recording: dict[str, float] = {}
    for rec, doc, edges in finals:
        reference = references[rec]
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
    entry: dict[str, Any] = {
        "chunks": sum(len(doc["chunks"]) for _, doc, _ in finals),
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
        entry[f"delta_pp_{k}"] = 100 * (streamed[k].wer - whole[k].wer)
        entry[f"errors_{k}"] = [streamed[k].errors, whole[k].errors, streamed[k].ref_words]
    return entry


def wer_line(name: str, entry: dict[str, Any], how: str) -> str:
    return (
        f"{name:>22}: WER {entry['wer_ours']:.2%} (whole {entry['whole_wer_ours']:.2%}, "
        f"ratio {entry['ratio_ours']:.2f}, {entry['delta_pp_ours']:+.2f} pp) | "
        f"whisper-normalizer {entry['wer_whisper']:.2%} (whole {entry['whole_wer_whisper']:.2%}, "
        f"ratio {entry['ratio_whisper']:.2f}) | junction errors "
        f"{entry['junction_error_share']:.0%} vs words {entry['junction_word_share']:.0%} | "
        f"{entry['chunks']} chunks | {how} | {load_text()}"
    )


def wer_part(
    engine: WhisperEngine, names: list[str], recs: Sequence[Recording], wholes: WholeCache
) -> dict[str, Any]:
    """Final-text WER with every chunk decoded in process (no coalescing)."""
    results: dict[str, Any] = {}
    for name in names:
        config, stt = config_named(name), stt_config_for(name)
        texts = wholes.get(engine, name, recs)
        started = time.perf_counter()
        finals = []
        for rec, pcm, _ in recs:
            doc, edges = stream_in_process(engine, pcm, config, stt)
            finals.append((rec, doc, edges))
        entry = score(finals, recs, texts)
        entry["config"] = config.model_dump()
        entry["stt"] = {f: getattr(stt, f) for f in ("beam_size", "vad_filter")}
        entry["seconds"] = time.perf_counter() - started
        entry["wer_measured"] = "in process"
        results[name] = entry
        print(wer_line(name, entry, f"in process, {entry['seconds']:.0f} s"), flush=True)
    return results


# -- real-time playback through the running stack -----------------------------------------
class TimedEngine(WhisperEngine):
    """The shared engine, recording (start, end, words) of every decode (monotonic clock):
    the STT worker decodes one session's chunks in order, so decode i is chunk i."""

    def __init__(self, engine: WhisperEngine) -> None:
        super().__init__(spec=engine.spec, path=engine.path, model=engine._model, load_seconds=0.0)
        self.decodes: list[tuple[float, float, list[float]]] = []
        self.cpu_seconds = 0.0  # process CPU time spent while decoding (all threads)

    def transcribe(self, audio: np.ndarray, config: SttConfig) -> Transcription:
        started, cpu = time.monotonic(), time.process_time()
        result = super().transcribe(audio, config)
        self.cpu_seconds += time.process_time() - cpu
        starts = [w.start for seg in result.segments for w in seg.words]
        self.decodes.append((started, time.monotonic(), starts))
        return result


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


@dataclass
class Played:
    """One recording played through the stack: what the client got, and the timeline."""

    name: str
    result: StreamResult
    records: list[ChunkRecord]
    decodes: list[tuple[float, float, list[float]]]
    started: float  # playback clock: audio time t was due at started + t
    coalesced: int  # chunks cut and dropped unsent (the STT worker was behind)
    cpu_seconds: float  # CPU time of the decodes (process time, all threads)


async def play_through_stack(
    broker: Broker,
    engine: WhisperEngine,
    name: str,
    clips: Sequence[tuple[str, np.ndarray]],
) -> list[Played]:
    """Play each clip in real time, one session after the other, through one running stack
    (mosquitto, STT worker, orchestrator, a client) with config ``name``."""
    tag = secrets.token_hex(3)
    timed = TimedEngine(engine)
    sessions: dict[str, Session] = {}
    holder: list[Orchestrator] = []

    def keep_session(document: dict[str, Any]) -> None:
        session = holder[0].sessions.get(document["session"]) if holder else None
        if session is not None:
            sessions[session.session_id] = session

    out: list[Played] = []
    async with (
        SttWorker(
            endpoint=broker.endpoint("stt"),
            instance_id=f"bench-stt-{tag}",
            # the engine's threads, or the worker would load another engine
            config=stt_config_for(name).model_copy(update={"cpu_threads": engine.spec.cpu_threads}),
            settings=SttWorkerSettings(persistent_session=False),
            engine=timed,
        ) as stt,
        Orchestrator(
            endpoint=broker.endpoint("orchestrator"),
            settings=OrchestratorSettings(
                instance_id=f"bench-orch-{tag}", persistent_session=False
            ),
            config=config_named(name),
            config_version=1,
            on_published=keep_session,
        ) as orchestrator,
        aiomqtt.Client(
            **broker.endpoint("client").client_kwargs(), identifier=f"bench-cli-{tag}"
        ) as client,
    ):
        holder.append(orchestrator)
        await asyncio.wait_for(stt.wait_ready(), 30)
        await asyncio.wait_for(orchestrator.wait_connected(), 30)
        for clip, pcm in clips:
            session_id = f"bench-{tag}-{len(out)}"
            first_decode, cpu_before = len(timed.decodes), timed.cpu_seconds
            result = await stream_audio(
                client, session_id, pcm, frame_s=FRAME_S, realtime=True, timeout_s=900
            )
            started = min(t - end / RATE for end, t in result.sent_at.items())
            session = sessions[session_id]
            records = sorted(session.records.values(), key=lambda r: r.chunk_id)
            out.append(
                Played(
                    clip,
                    result,
                    records,
                    timed.decodes[first_decode:],
                    started,
                    session.chunks_coalesced,
                    timed.cpu_seconds - cpu_before,
                )
            )
    return out


def word_latencies(played: Played) -> tuple[list[float], list[float]]:
    """Per word of the final transcript, seconds from its end in the audio (on the playback
    clock) to the first document showing it (*interim*: same normalised word, start within
    0.5 s) and the first holding it as a final word."""
    result = played.result
    seen: list[tuple[str, float, float, bool]] = []  # (text, start, time received, final)
    for doc, at in zip(result.documents, result.received_at, strict=True):
        for w in doc["words"]:
            seen.append((normalize_text(w["word"]), w["start"], at, bool(w.get("final"))))
    interim, final = [], []
    for w in result.final["words"]:
        spoken = played.started + w["end"]
        text = normalize_text(w["word"])
        matches = [
            (at, fin) for t, start, at, fin in seen if t == text and abs(start - w["start"]) < 0.5
        ]
        if not matches:
            continue
        interim.append(min(at for at, _ in matches) - spoken)
        final.append(min(at for at, fin in matches if fin) - spoken)
    return interim, final


def stage_times(played: Played) -> dict[str, list[float]]:
    """Per chunk, where the time goes: audio of the chunk's end due → chunk sent by the
    orchestrator (cut, plus waiting while another chunk is at the worker) → decode start
    (MQTT, worker queue) → decode end → transcript merged at the orchestrator (MQTT back)
    → document received by the client."""
    stages: dict[str, list[float]] = {
        k: [] for k in ("held", "to_decode", "decode", "back", "to_client", "total")
    }
    docs = list(zip(played.result.documents, played.result.received_at, strict=True))
    for record, (dec_start, dec_end, _) in zip(played.records, played.decodes, strict=False):
        if record.answered_at is None:
            continue
        due = played.started + record.end_s
        received = next(
            (
                at
                for doc, at in docs
                if any(c["chunk_id"] == record.chunk_id and c["answered"] for c in doc["chunks"])
            ),
            None,
        )
        if received is None:
            continue
        stages["held"].append(record.sent_at - due)
        stages["to_decode"].append(dec_start - record.sent_at)
        stages["decode"].append(dec_end - dec_start)
        stages["back"].append(record.answered_at - dec_end)
        stages["to_client"].append(received - record.answered_at)
        stages["total"].append(received - due)
    return stages


def edges_of(played: Played) -> set[tuple[int, float]]:
    """(chunk id, start) of each decoded chunk's first and last word."""
    edges: set[tuple[int, float]] = set()
    for record, (_, _, starts) in zip(played.records, played.decodes, strict=False):
        if starts:
            edges.update({(record.chunk_id, round(record.start_s + starts[i], 3)) for i in (0, -1)})
    return edges


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


async def realtime_part(
    engine: WhisperEngine,
    names: list[str],
    full: set[str],
    latency_seconds: float,
    recs: Sequence[Recording],
    wholes: WholeCache,
) -> dict[str, Any]:
    """Real-time playback through the running stack: every recording for the configs in
    ``full`` (final-text WER scored on what the client received, and latency), the first
    ``latency_seconds`` of the passage for the others (latency only)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    broker = start_broker(folder)
    results: dict[str, Any] = {}
    try:
        for name in names:
            began, load_before = time.perf_counter(), os.getloadavg()
            if name in full:
                clips = [(n, pcm) for n, pcm, _ in recs]
            else:
                clips = [("lj_passage", recs[0][1][: round(latency_seconds * RATE)])]
            played = await play_through_stack(broker, engine, name, clips)
            interim: list[float] = []
            final: list[float] = []
            stages: dict[str, list[float]] = {}
            for p in played:
                i, f = word_latencies(p)
                interim += i
                final += f
                for k, v in stage_times(p).items():
                    stages.setdefault(k, []).extend(v)
            entry: dict[str, Any] = {
                "interim_p50_s": pct(interim, 0.5),
                "interim_p99_s": pct(interim, 0.99),
                "final_p50_s": pct(final, 0.5),
                "final_p99_s": pct(final, 0.99),
                "latency_words": len(final),
                "latency_audio_s": sum(len(pcm) for _, pcm in clips) / RATE,
                "latency_recordings": [n for n, _ in clips],
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "stages_p50_s": {k: pct(v, 0.5) for k, v in stages.items()},
                "stages_p90_s": {k: pct(v, 0.9) for k, v in stages.items()},
                "chunks_decoded": sum(len(p.decodes) for p in played),
                "chunks_coalesced": sum(p.coalesced for p in played),
                "decode_busy_share": sum(e - s for p in played for s, e, _ in p.decodes)
                / max(1e-9, sum(len(pcm) for _, pcm in clips) / RATE),
                "decode_cpu_share": sum(p.cpu_seconds for p in played)
                / max(1e-9, sum(len(pcm) for _, pcm in clips) / RATE),
                "realtime_seconds": time.perf_counter() - began,
            }
            if name in full:
                finals = [(p.name, p.result.final, edges_of(p)) for p in played]
                entry.update(score(finals, recs, wholes.get(engine, name, recs)))
                entry["wer_measured"] = "real-time playback"
                print(wer_line(name, entry, "real-time playback"), flush=True)
            results[name] = entry
            st = entry["stages_p50_s"]
            print(
                f"{name:>22}: interim p50 {entry['interim_p50_s']:.2f} s p99 "
                f"{entry['interim_p99_s']:.2f} s | final p50 {entry['final_p50_s']:.2f} s p99 "
                f"{entry['final_p99_s']:.2f} s | {len(final)} words, "
                f"{entry['latency_audio_s']:.0f} s of audio in real time "
                f"({entry['realtime_seconds']:.0f} s) | {load_text()}\n"
                f"{'':>24}per chunk p50: chunk end due -> sent {st['held']:.2f} s, -> decode "
                f"start {st['to_decode']:.2f} s, decode {st['decode']:.2f} s, -> merged "
                f"{st['back']:.2f} s, -> client {st['to_client']:.2f} s (total "
                f"{st['total']:.2f} s) | {entry['chunks_decoded']} chunks decoded, "
                f"{entry['chunks_coalesced']} coalesced, decoding busy "
                f"{entry['decode_busy_share']:.0%} of real time, decoding CPU "
                f"{entry['decode_cpu_share']:.0%} of one core",
                flush=True,
            )
    finally:
        broker.process.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def table(results: dict[str, Any]) -> str:
    """The per-config summary table (markdown)."""
    lines = [
        "| config | WER | whole | ratio | Δ pp | WER measured | WER (whisper-norm.) | whole | "
        "ratio | junction errors / words | interim p50 / p99 | final p50 / p99 | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in results["configs"].items():

        def f(key: str, fmt: str, e: dict[str, Any] = e) -> str:
            return format(e[key], fmt) if key in e else "–"

        load = e.get("load_average_before")
        lines.append(
            f"| {name} | {f('wer_ours', '.2%')} | {f('whole_wer_ours', '.2%')} | "
            f"{f('ratio_ours', '.2f')} | {f('delta_pp_ours', '+.2f')} | "
            f"{e.get('wer_measured', '–')} | {f('wer_whisper', '.2%')} | "
            f"{f('whole_wer_whisper', '.2%')} | {f('ratio_whisper', '.2f')} | "
            f"{f('junction_error_share', '.0%')} / {f('junction_word_share', '.0%')} | "
            f"{f('interim_p50_s', '.2f')} / {f('interim_p99_s', '.2f')} s | "
            f"{f('final_p50_s', '.2f')} / {f('final_p99_s', '.2f')} s | "
            f"{'–' if load is None else f'{load[0]:.1f}'} |"
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
    parser.add_argument(
        "--realtime-wer",
        nargs="*",
        default=["default"],
        help="configs whose final-text WER is measured by playing every recording in real "
        "time through the running stack (the others: in process, every chunk decoded)",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=60.0,
        help="configs not in --realtime-wer: seconds of the passage played for latency",
    )
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=SttConfig().cpu_threads,
        help="CTranslate2 threads of the one engine every config decodes with",
    )
    parser.add_argument("--skip-latency", action="store_true", help="no real-time playback")
    parser.add_argument("--skip-wer", action="store_true", help="no in-process WER")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "orchestrator.json"
    )
    args = parser.parse_args()
    began = time.perf_counter()
    print(f"start: {load_text()}", flush=True)
    engine = load_engine(ModelSpec.from_config(SttConfig(cpu_threads=args.cpu_threads)))
    recs = load_recordings()
    total_s = sum(len(pcm) for _, pcm, _ in recs) / RATE
    print(f"{len(recs)} recordings, {total_s:.0f} s: {', '.join(n for n, _, _ in recs)}")
    wholes = WholeCache()
    full = set() if args.skip_latency else set(args.realtime_wer) & set(args.configs)
    configs: dict[str, dict[str, Any]] = {name: {} for name in args.configs}
    if not args.skip_wer:
        in_process = [n for n in args.configs if n not in full]
        for name, entry in wer_part(engine, in_process, recs, wholes).items():
            configs[name].update(entry)
    if not args.skip_latency:
        realtime = asyncio.run(
            realtime_part(engine, args.configs, full, args.latency_seconds, recs, wholes)
        )
        for name, entry in realtime.items():
            configs[name].update(entry)
    seconds = time.perf_counter() - began
    results = {
        "configs": configs,
        "load_average_end": os.getloadavg(),
        "bench_seconds": seconds,
        "command": " ".join(sys.argv),
        "cpu_threads": args.cpu_threads,
    }
    print()
    print(table(results))
    print(f"\nbench took {seconds:.0f} s; end: {load_text()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists() and (args.skip_wer or args.skip_latency):
        # a partial run updates the figures it measured and keeps the others
        previous = json.loads(args.out.read_text())
        for name, entry in configs.items():
            previous.setdefault("configs", {}).setdefault(name, {}).update(entry)
        results = previous | {k: v for k, v in results.items() if k != "configs"}
    args.out.write_text(json.dumps(results, indent=2))
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
