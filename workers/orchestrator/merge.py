"""Merge per-chunk word lists into one growing transcript (pure, no IO).

Rule, applied at each seam between chunk k-1 and chunk k (overlap ``[s_k, e_{k-1})``):

1. **Align across the seam.** Take the transcript's words near the seam (the *tail*) and
   chunk k's words near the seam (the *head*), normalise them (lower case, no
   punctuation) and find the words both hypotheses agree on — same text, and times that
   agree within ``max_skew_s``. This is LocalAgreement-2 restricted to the audio both
   chunks heard. Of the agreeing pairs, the one closest to the middle of the overlap is
   the cut: the transcript keeps its words up to and including it, and chunk k supplies
   everything after it.
2. **Otherwise, midpoint ownership.** When no word agrees (short overlaps, a word cut in
   half by both chunk edges), a word belongs to the chunk in whose inner half of the
   overlap its midpoint falls: transcript words whose midpoint is at or after
   ``t* = s_k + overlap/2`` are dropped, and chunk k's words whose midpoint is before
   ``t*`` are dropped. Each chunk thus loses only the words nearest its own edge, where
   Whisper sees a truncated word and is least reliable.

   If the last word kept and the first word taken are two readings of one word cut at
   different points ("perfect" | "perfection": close in time, one a prefix or suffix
   of the other), only the fuller one is kept.

Either way no word is counted twice (each instant of audio is owned by exactly one
chunk) and none is dropped unless the other chunk heard it too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from workers.orchestrator.textnorm import normalize_text

__all__ = ["ChunkWords", "TranscriptMerger", "Word"]


@dataclass(frozen=True, slots=True)
class Word:
    """A recognised word with times in seconds from the session start."""

    start: float
    end: float
    text: str
    probability: float = 1.0
    chunk: int = -1

    @property
    def mid(self) -> float:
        return (self.start + self.end) / 2


@dataclass(frozen=True, slots=True)
class ChunkWords:
    """The words of one chunk, with the chunk's place in the session."""

    index: int
    start_s: float
    end_s: float
    overlap_s: float
    words: Sequence[Word]
    config_version: int | None = None
    final: bool = False


@dataclass(slots=True)
class _Seam:
    method: str  # "aligned" | "midpoint" | "first"
    time_s: float


@dataclass(slots=True)
class TranscriptMerger:
    """Growing transcript of one session. Feed chunks with :meth:`add` in any order."""

    max_skew_s: float = 0.5
    seam_margin_s: float = 0.6
    junction_gap_s: float = 0.3
    words: list[Word] = field(default_factory=list)
    seams: list[_Seam] = field(default_factory=list)
    chunks: list[ChunkWords] = field(default_factory=list)
    _pending: dict[int, ChunkWords] = field(default_factory=dict)
    _next: int = 0

    @property
    def next_index(self) -> int:
        """Index of the next chunk the merger needs (earlier ones are merged)."""
        return self._next

    @property
    def text(self) -> str:
        return join_words(self.words)

    def stable_words(self, before_s: float) -> list[Word]:
        """Words that end before ``before_s`` (a later seam cannot change them)."""
        return [w for w in self.words if w.end <= before_s]

    def add(self, chunk: ChunkWords) -> bool:
        """Queue ``chunk``; merge every chunk now in sequence. True if anything merged."""
        if chunk.index < self._next or chunk.index in self._pending:
            return False  # duplicate delivery
        self._pending[chunk.index] = chunk
        merged = False
        while self._next in self._pending:
            self._merge(self._pending.pop(self._next))
            self._next += 1
            merged = True
        return merged

    def _merge(self, chunk: ChunkWords) -> None:
        self.chunks.append(chunk)
        new = sorted(chunk.words, key=lambda w: w.start)
        if not self.words or chunk.overlap_s <= 0:
            self.words.extend(new)
            self.seams.append(_Seam("first" if not self.seams else "midpoint", chunk.start_s))
            return
        seam_lo = chunk.start_s
        seam_hi = chunk.start_s + chunk.overlap_s
        tail_from = len(self.words)
        while tail_from > 0 and self.words[tail_from - 1].end > seam_lo - self.seam_margin_s:
            tail_from -= 1
        tail = self.words[tail_from:]
        head_to = 0
        while head_to < len(new) and new[head_to].start < seam_hi + self.seam_margin_s:
            head_to += 1
        head = new[:head_to]
        cut = self._align(tail, head, (seam_lo + seam_hi) / 2)
        if cut is not None:
            i, j = cut
            kept = self.words[: tail_from + i + 1]
            self.words = kept + new[j + 1 :]
            self.seams.append(_Seam("aligned", tail[i].mid))
            return
        t_star = (seam_lo + seam_hi) / 2
        kept = self.words[:tail_from] + [w for w in tail if w.mid < t_star]
        rest = [w for w in new if w.mid >= t_star]
        if kept and rest and self._same_word(kept[-1], rest[0]):
            # One word heard by both chunks, each cutting it at a different point
            # ("perfect" | "perfection"): keep the fuller reading once.
            if len(normalize_text(rest[0].text)) > len(normalize_text(kept[-1].text)):
                kept.pop()
            else:
                rest.pop(0)
        self.words = kept + rest
        self.seams.append(_Seam("midpoint", t_star))

    def _same_word(self, a: Word, b: Word) -> bool:
        """Whether ``a`` (end of the transcript) and ``b`` (start of the next chunk) look
        like two readings of one spoken word: close in time and one text a prefix or
        suffix of the other."""
        if b.start - a.end > self.junction_gap_s:
            return False
        ta, tb = normalize_text(a.text), normalize_text(b.text)
        if not ta or not tb:
            return False
        short, long_ = sorted((ta, tb), key=len)
        return long_.startswith(short) or long_.endswith(short)

    def _align(
        self, tail: Sequence[Word], head: Sequence[Word], centre: float
    ) -> tuple[int, int] | None:
        """Index pair (tail i, head j) of the agreeing word closest to ``centre``."""
        if not tail or not head:
            return None
        a = [normalize_text(w.text) for w in tail]
        b = [normalize_text(w.text) for w in head]
        matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
        best: tuple[float, int, int] | None = None
        for block in matcher.get_matching_blocks():
            for t in range(block.size):
                i, j = block.a + t, block.b + t
                if not a[i]:
                    continue
                if abs(tail[i].mid - head[j].mid) > self.max_skew_s:
                    continue
                dist = abs((tail[i].mid + head[j].mid) / 2 - centre)
                if best is None or dist < best[0]:
                    best = (dist, i, j)
        return None if best is None else (best[1], best[2])


def join_words(words: Iterable[Word]) -> str:
    """Join Whisper word tokens into text.

    Whisper's word tokens carry their own leading space (" Hello,"); a token without one
    continues the previous word (" i" ".e."), except across a chunk seam, where a space
    is added.
    """
    parts: list[str] = []
    prev_chunk: int | None = None
    for w in words:
        text = w.text
        if parts and prev_chunk != w.chunk and not text.startswith(" "):
            text = " " + text
        parts.append(text)
        prev_chunk = w.chunk
    return "".join(parts).strip()
