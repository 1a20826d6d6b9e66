"""Recognition bounds that hold on any CPU: compare with a baseline decoded in the same run.

The same tiny.en int8 decode of the same audio gives different words on different x86-64
CPUs (CTranslate2 runs Intel MKL on Intel CPUs and oneDNN elsewhere; see docs/stt.md), so
no test may hold Whisper to words or error counts read off one machine's output. Instead a test
decodes the same audio with the same model and options in the same run (``direct_text``,
``chunked_baseline``) and allows the code under test at most ``margin`` more word errors
than that baseline: max(2 words, 10 % of the reference), rounded up.

A bound relative to a baseline still fails when chunking or merging breaks: a dropped or
doubled 2 s chunk costs 4-6 words of 22, a wrong sample rate nearly all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jiwer
import numpy as np
import numpy.typing as npt

from workers.orchestrator.textnorm import normalize_text
from workers.stt import SttConfig
from workers.stt.engine import WhisperEngine, pcm16_to_float32

__all__ = [
    "ChunkDecode",
    "Score",
    "assert_no_chunk_lost",
    "assert_within_margin",
    "check_streamed",
    "chunked_baseline",
    "decode_chunks",
    "direct_text",
    "margin",
    "score",
]

RATE = 16000


def margin(reference_words: int) -> int:
    """Extra word errors allowed over a same-run baseline: max(2 words, 10 %), rounded up."""
    return max(2, math.ceil(0.10 * reference_words))


@dataclass(frozen=True)
class Score:
    """Word errors of a hypothesis against a reference (both normalised)."""

    errors: int
    words: int

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else 0.0


def score(reference: str, hypothesis: str) -> Score:
    ref = normalize_text(reference)
    hyp = normalize_text(hypothesis)
    words = len(ref.split())
    if not words:
        return Score(len(hyp.split()), 0)
    out = jiwer.process_words(ref, hyp)
    return Score(out.substitutions + out.deletions + out.insertions, words)


def assert_within_margin(reference: str, got: str, baseline: str, what: str = "") -> Score:
    """``got`` has at most ``margin`` more word errors against ``reference`` than ``baseline``.

    With no human reference, pass the baseline as ``reference`` too (then ``got`` must be
    within ``margin`` word edits of the baseline).
    """
    mine, base = score(reference, got), score(reference, baseline)
    allowed = base.errors + margin(mine.words)
    summary = (
        f"{what}: {mine.errors}/{mine.words} word errors, same-run baseline "
        f"{base.errors}/{base.words}, allowed {allowed}"
    )
    print(summary)  # shown by pytest on failure, and with -s
    assert mine.errors <= allowed, f"{summary}\n  got:      {got!r}\n  baseline: {baseline!r}"
    return mine


def direct_text(
    engine: WhisperEngine, audio: bytes | npt.NDArray[np.int16], config: SttConfig | None = None
) -> str:
    """``audio`` (16 kHz mono int16) decoded in one call, in this process, right now."""
    pcm = audio if isinstance(audio, bytes) else np.ascontiguousarray(audio, "<i2").tobytes()
    return engine.transcribe(pcm16_to_float32(pcm), config or SttConfig()).text


@dataclass(frozen=True)
class ChunkDecode:
    """One chunk of a session decoded standalone here; word times from the session start."""

    start_s: float
    end_s: float
    own_from: float  # the chunk owns [own_from, own_to): midpoints of the overlaps
    own_to: float
    core_from: float  # audio no other chunk heard: [core_from, core_to)
    core_to: float
    words: tuple[tuple[float, float, str], ...]


def decode_chunks(
    engine: WhisperEngine, pcm: npt.NDArray[np.int16], chunks: Sequence[dict[str, Any]]
) -> list[ChunkDecode]:
    """Each chunk of an orchestrator result (its ``chunks`` list) decoded standalone with
    the same engine and SttConfig defaults, as the worker decoded it."""
    out = []
    config = SttConfig()
    for index, chunk in enumerate(chunks):
        start, end = chunk["start_s"], chunk["end_s"]
        following = chunks[index + 1] if index + 1 < len(chunks) else None
        audio = pcm[round(start * RATE) : round(end * RATE)]
        decoded = engine.transcribe(pcm16_to_float32(audio.astype("<i2").tobytes()), config)
        out.append(
            ChunkDecode(
                start_s=start,
                end_s=end,
                own_from=start + chunk["overlap_s"] / 2 if index else float("-inf"),
                own_to=(
                    following["start_s"] + following["overlap_s"] / 2 if following else float("inf")
                ),
                core_from=start + chunk["overlap_s"],
                core_to=following["start_s"] if following else end,
                words=tuple(
                    (start + w.start, start + w.end, w.word.strip())
                    for segment in decoded.segments
                    for w in segment.words
                ),
            )
        )
    return out


def chunked_baseline(decoded: Sequence[ChunkDecode]) -> str:
    """The simplest merge of the session's own chunks, decoded here: each word is kept by
    the chunk in whose own half of the overlap its midpoint lies.

    The words Whisper hears in 2-4 s of audio (the part that differs between CPUs) are the
    same as the worker's, so only the orchestrator's merge is judged against this.
    """
    return " ".join(
        text
        for chunk in decoded
        for start, end, text in chunk.words
        if chunk.own_from <= (start + end) / 2 < chunk.own_to
    )


def assert_no_chunk_lost(decoded: Sequence[ChunkDecode], doc: dict[str, Any]) -> None:
    """Every chunk that heard a word no other chunk heard has words in the merged result,
    and every merged word lies within the chunk it is attributed to. This holds on any
    CPU: it compares the worker's decodes with the same decodes made here."""
    index_of = {c["chunk_id"]: i for i, c in enumerate(doc["chunks"])}
    kept: dict[int, int] = {}
    for word in doc["words"]:
        index = index_of[word["chunk_id"]]
        chunk = decoded[index]
        assert chunk.start_s - 0.05 <= word["start"] <= word["end"] <= chunk.end_s + 0.5, word
        kept[index] = kept.get(index, 0) + 1
    for index, chunk in enumerate(decoded):
        core = [w for w in chunk.words if chunk.core_from <= (w[0] + w[1]) / 2 < chunk.core_to]
        if core:
            assert kept.get(index, 0) > 0, f"chunk {index} alone heard {core}; none kept"


def check_streamed(
    engine: WhisperEngine,
    pcm: npt.NDArray[np.int16],
    reference: str,
    doc: dict[str, Any],
    what: str,
) -> Score:
    """A streamed session's merged transcript, held to its own chunks decoded here."""
    decoded = decode_chunks(engine, pcm, doc["chunks"])
    assert_no_chunk_lost(decoded, doc)
    return assert_within_margin(reference, doc["text"], chunked_baseline(decoded), what)
