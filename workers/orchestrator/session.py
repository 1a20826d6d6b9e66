"""One transcription session: chunker + merger + bookkeeping (pure, no IO).

The service feeds it input audio and STT transcripts; it returns the chunks to send and
builds the merged transcript document published on ``transcripts/final/<session>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from workers.orchestrator.chunker import Chunk, Chunker
from workers.orchestrator.config import OrchestratorConfig
from workers.orchestrator.merge import ChunkWords, TranscriptMerger, Word, join_words

__all__ = ["ChunkRecord", "Session", "TranscriptError"]


class TranscriptError(ValueError):
    """An STT transcript body that cannot be merged (missing or mistyped fields)."""


@dataclass(slots=True)
class ChunkRecord:
    """What the session knows about one chunk it sent."""

    chunk_id: int
    start_s: float
    end_s: float
    overlap_s: float
    config_version: int
    final: bool
    sent_at: float
    answered_at: float | None = None
    error: str | None = None
    words: int = 0


class Session:
    """Audio in, chunks out; transcripts in, one merged growing transcript out."""

    def __init__(
        self,
        session_id: str,
        config: OrchestratorConfig,
        version: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_id = session_id
        self._clock = clock
        self._chunker = Chunker(config, version)
        self._merger = TranscriptMerger(pause_final_s=config.final_after_pause_s)
        self.records: dict[int, ChunkRecord] = {}
        self._held: list[Chunk] = []  # cut but not sent (too many chunks in flight)
        self._sent_end = 0  # end sample of the last chunk sent
        self.chunks_coalesced = 0  # chunks cut and dropped unsent (the STT was behind)
        self.last_activity = clock()
        self.started_at = clock()
        self.ended = False  # no more input (end marker, idle timeout or shutdown)
        self.gaps_filled_samples = 0
        self.duplicate_samples_dropped = 0

    # -- input ---------------------------------------------------------------------------
    @property
    def config(self) -> OrchestratorConfig:
        return self._chunker.config

    @property
    def sample_rate(self) -> int:
        return self._chunker.config.sample_rate

    @property
    def received_samples(self) -> int:
        return self._chunker.received_samples

    def feed(self, pcm: bytes, offset_s: float | None = None) -> list[Chunk]:
        """Add input PCM (16-bit LE mono). ``offset_s`` (the frame's place in the session)
        lets the session drop a re-sent overlap or fill a gap with silence."""
        if self.ended:
            raise RuntimeError(f"session {self.session_id} has ended")
        self.last_activity = self._clock()
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
        if offset_s is not None:
            start = round(offset_s * self.sample_rate)
            expected = self.received_samples
            if start < expected:
                drop = min(expected - start, len(samples))
                self.duplicate_samples_dropped += drop
                samples = samples[drop:]
            elif start > expected:
                gap = start - expected
                self.gaps_filled_samples += gap
                samples = np.concatenate((np.zeros(gap, dtype=np.int16), samples))
        return self._record(self._chunker.feed(samples))

    def apply(self, config: OrchestratorConfig, version: int) -> list[Chunk]:
        """New chunking config from the next chunk boundary on."""
        if self.ended:
            return []
        self._merger.pause_final_s = config.final_after_pause_s
        return self._record(self._chunker.apply(config, version))

    def end(self) -> list[Chunk]:
        """No more input: flush the tail."""
        if self.ended:
            return []
        self.ended = True
        return self._record(self._chunker.flush())

    def _record(self, chunks: list[Chunk]) -> list[Chunk]:
        self._held.extend(chunks)
        return self.release()

    def release(self) -> list[Chunk]:
        """The chunks to send now: as many as ``max_chunks_in_flight`` allows.

        With a limit, when several chunks wait, the newest one that still overlaps the
        last chunk sent by at least half the configured overlap is sent, numbered next,
        and the older ones are dropped (its audio covers theirs): a slow STT worker gets
        fewer, fresher chunks instead of a growing queue.
        """
        limit = self.config.max_chunks_in_flight
        out: list[Chunk] = []
        while self._held and (limit == 0 or self.outstanding < limit):
            pick = 0
            if limit:
                margin = round(self.config.overlap_duration_s * self.sample_rate / 2)
                reach = max(0, self._sent_end - margin)  # a chunk from 0 covers all before it
                for i, c in enumerate(self._held):
                    if c.start_sample <= reach:
                        pick = i
            self.chunks_coalesced += pick
            chunk = self._held[pick]
            del self._held[: pick + 1]
            out.append(self._send(chunk))
        return out

    def _send(self, chunk: Chunk) -> Chunk:
        overlap = max(0, self._sent_end - chunk.start_sample) if self._sent_end else 0
        sent = replace(chunk, index=len(self.records), overlap_samples=overlap)
        self._sent_end = sent.end_sample
        self.records[sent.index] = ChunkRecord(
            sent.index,
            sent.start_s,
            sent.end_s,
            sent.overlap_s,
            sent.config_version,
            sent.final,
            self._clock(),
        )
        return sent

    def idle_for(self) -> float:
        """Seconds since the last input audio."""
        return self._clock() - self.last_activity

    # -- transcripts ---------------------------------------------------------------------
    def on_transcript(self, body: Mapping[str, Any]) -> bool:
        """Merge one STT transcript body; True if the merged transcript may have changed."""
        try:
            chunk_id = int(body["chunk_id"])
            words = [
                Word(
                    float(w["start"]),
                    float(w["end"]),
                    str(w["word"]),
                    float(w.get("probability", 1.0)),
                    chunk_id,
                )
                for seg in body.get("segments", [])
                for w in seg.get("words") or []
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise TranscriptError(f"unusable transcript body: {exc!r}") from exc
        record = self.records.get(chunk_id)
        if record is None or record.answered_at is not None:
            return False  # not ours (another run of the session id) or a duplicate
        record.answered_at = self._clock()
        record.words = len(words)
        return self._merger.add(
            ChunkWords(
                chunk_id,
                record.start_s,
                record.end_s,
                record.overlap_s,
                words,
                record.config_version,
                record.final,
            )
        )

    def on_error(self, chunk_id: int, message: str) -> bool:
        """The STT worker refused a chunk: merge it as empty so the session can finish."""
        record = self.records.get(chunk_id)
        if record is None or record.answered_at is not None:
            return False
        record.answered_at = self._clock()
        record.error = message
        return self._merger.add(
            ChunkWords(chunk_id, record.start_s, record.end_s, record.overlap_s, [])
        )

    @property
    def outstanding(self) -> int:
        """Chunks sent and not answered yet."""
        return sum(1 for r in self.records.values() if r.answered_at is None)

    @property
    def complete(self) -> bool:
        """Input ended and every chunk answered: the transcript is final."""
        return self.ended and self.outstanding == 0 and not self._held

    @property
    def text(self) -> str:
        return self._merger.text

    @property
    def words(self) -> list[Word]:
        return list(self._merger.words)

    def document(self, *, final: bool | None = None) -> dict[str, Any]:
        """The JSON document published on ``transcripts/final/<session>``."""
        is_final = self.complete if final is None else final
        merged = self._merger
        seams = {c.index: s.method for c, s in zip(merged.chunks, merged.seams, strict=True)}
        # A final document (session over, or given up on) has only final words.
        interim = [] if is_final else merged.interim_words
        decided = merged.final_words if not is_final else merged.words
        return {
            "session": self.session_id,
            "final": is_final,
            "text": join_words([*decided, *interim]),
            "final_text": join_words(decided),
            "interim_text": join_words(interim),
            "words": [
                {
                    "start": round(w.start, 3),
                    "end": round(w.end, 3),
                    "word": w.text,
                    "probability": round(w.probability, 4),
                    "chunk_id": w.chunk,
                    "final": is_stable,
                }
                for words, is_stable in ((decided, True), (interim, False))
                for w in words
            ],
            "duration_s": round(self.received_samples / self.sample_rate, 3),
            "chunks": [
                {
                    "chunk_id": r.chunk_id,
                    "start_s": round(r.start_s, 3),
                    "end_s": round(r.end_s, 3),
                    "overlap_s": round(r.overlap_s, 3),
                    "config_version": r.config_version,
                    "answered": r.answered_at is not None,
                    "words": r.words,
                    "seam": seams.get(r.chunk_id),
                    **({"error": r.error} if r.error else {}),
                }
                for r in sorted(self.records.values(), key=lambda r: r.chunk_id)
            ],
            "config_versions": sorted({r.config_version for r in self.records.values()}),
        }
