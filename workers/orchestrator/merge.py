"""Merge per-chunk word lists into one growing transcript of final and interim words (pure).

Every chunk is decoded independently, so each stretch of audio inside an overlap gets
two readings. The merger keeps two lists:

* **final** words: decided, never changed again (published with ``"final": true``);
* **interim** words: the newest chunk's reading of the audio after the last final word,
  shown at once and replaced by the next chunk's reading.

When chunk k arrives (in order; overlap ``[s_k, e_{k-1})``, ``t* = s_k + overlap/2``):

1. **Forced commit at the seam.** Interim words (chunk k-1's reading) whose midpoint is
   before ``t*`` become final: no later chunk hears them in full. Chunk k's words before
   ``t*`` are dropped (its truncated left edge). If the two words meeting at ``t*`` are
   two readings of the same audio (they overlap in time, or one is a prefix or suffix of
   the other: "an example | sample", "perfect | perfection"), only one is kept: the
   reading of the chunk that heard more of the word (taken to span from the first
   reading's start to the second's end).
2. **Agreement (LocalAgreement-2).** Chunk k's words after the last final word are
   compared with the remaining interim words: their common prefix (same normalised
   text, times within ``max_skew_s``), extended through the last run of two or more
   agreeing words, becomes final in chunk k's reading (it heard more audio after them).
   This is how words become final with long overlaps: two successive decodes, each
   with seconds of audio on both sides, agree on them.
3. **Pause (optional, ``pause_final_s > 0``).** In the rest of chunk k's reading, the
   last word followed by at least ``pause_final_s`` of silence (a gap before the next
   word, or before the chunk's end for its last word; the STT worker's VAD leaves no
   words in silence) becomes final at once, with every word before it: a reading that
   ends at a pause has its right context, so one decode decides it. This saves the hop
   (one more chunk) that agreement waits for.
4. The rest of chunk k's reading becomes the new interim words.
5. The last chunk of a session (``final``) makes everything final.

No word is kept twice (an instant of audio is decided once) and a word is final only
when two decodes agreed on it or no later chunk can hear it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from workers.orchestrator.textnorm import normalize_text

__all__ = ["ChunkWords", "TranscriptMerger", "Word", "join_words"]


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
    # "first" | "agreed" (some words agreed) | "midpoint" (forced only) | "pause" (only
    # the pause rule) | "pending" (nothing decided)
    method: str
    time_s: float
    agreed: int = 0  # words made final by agreement at this chunk
    forced: int = 0  # words made final because no later chunk hears them
    paused: int = 0  # words made final because a pause follows them in this reading


@dataclass(slots=True)
class TranscriptMerger:
    """Growing transcript of one session. Feed chunks with :meth:`add` in any order."""

    max_skew_s: float = 0.5
    junction_gap_s: float = 0.3
    pause_final_s: float = 0.0  # 0: a word is final only by agreement (or the seam)
    final_words: list[Word] = field(default_factory=list)
    interim_words: list[Word] = field(default_factory=list)
    seams: list[_Seam] = field(default_factory=list)
    chunks: list[ChunkWords] = field(default_factory=list)
    _pending: dict[int, ChunkWords] = field(default_factory=dict)
    _next: int = 0

    @property
    def next_index(self) -> int:
        """Index of the next chunk the merger needs (earlier ones are merged)."""
        return self._next

    @property
    def words(self) -> list[Word]:
        """Final words, then interim words."""
        return [*self.final_words, *self.interim_words]

    @property
    def text(self) -> str:
        return join_words(self.words)

    @property
    def final_text(self) -> str:
        return join_words(self.final_words)

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

    # -- the rule ----------------------------------------------------------------------
    def _merge(self, chunk: ChunkWords) -> None:
        new = sorted(chunk.words, key=lambda w: w.start)
        previous = self.chunks[-1] if self.chunks else None
        self.chunks.append(chunk)
        if previous is None:
            self.interim_words = new
            seam = _Seam("first", chunk.start_s)
        else:
            seam = self._join(previous, chunk, new)
        if chunk.final:
            self.final_words.extend(self.interim_words)
            self.interim_words = []
        elif self.pause_final_s > 0:
            seam.paused = self._final_at_pause(chunk)
            if seam.paused and seam.method == "pending":
                seam.method = "pause"
        self.seams.append(seam)

    def _final_at_pause(self, chunk: ChunkWords) -> int:
        """Make final the interim words up to the last one followed by a pause of at least
        ``pause_final_s`` in this chunk's reading; returns how many."""
        words = self.interim_words
        cut = 0
        for i, w in enumerate(words):
            following = words[i + 1].start if i + 1 < len(words) else chunk.end_s
            if following - w.end >= self.pause_final_s:
                cut = i + 1
        self.final_words.extend(words[:cut])
        self.interim_words = words[cut:]
        return cut

    def _join(self, previous: ChunkWords, chunk: ChunkWords, new: list[Word]) -> _Seam:
        # A chunk that starts where the session starts has no truncated left edge.
        t_star = chunk.start_s + max(0.0, chunk.overlap_s) / 2 if chunk.start_s > 0 else 0.0
        forced = [w for w in self.interim_words if w.mid < t_star]
        older = [w for w in self.interim_words if w.mid >= t_star]
        head = [w for w in new if w.mid >= t_star]
        committed_before = len(self.final_words)
        self.final_words.extend(forced)
        head = self._after_final(head)
        if forced and head and self._same_audio(forced[-1], head[0]):
            # One spoken word cut by a chunk edge, read by both chunks: it spans about
            # [a.start, b.end]; keep the reading of the chunk that heard more of it.
            a, b = forced[-1], head[0]
            if b.end - chunk.start_s > previous.end_s - a.start:
                self.final_words.pop()
            else:
                head.pop(0)
        agreed = self._agreement(older, head)
        self.final_words.extend(head[:agreed])
        self.interim_words = head[agreed:]
        n_forced = len(self.final_words) - committed_before - agreed
        method = "agreed" if agreed else ("midpoint" if n_forced else "pending")
        return _Seam(method, t_star, agreed, n_forced)

    def _after_final(self, head: list[Word]) -> list[Word]:
        """``head`` without the words the final transcript already holds."""
        if not self.final_words:
            return head
        last = self.final_words[-1]
        head = [w for w in head if w.mid > last.end]
        if (
            head
            and _norm(head[0]) == _norm(last)
            and abs(head[0].start - last.start) <= self.max_skew_s
        ):
            head = head[1:]
        return head

    def _agreement(self, older: Sequence[Word], head: Sequence[Word]) -> int:
        """How many of ``head``'s words two successive readings agree on.

        The common prefix (same words, times within ``max_skew_s``), extended through the
        last run of at least two agreeing words further on: words the readings dispute
        between two agreeing runs take the newer reading (it heard more audio after them).
        """
        a = [_norm(w) for w in older]
        b = [_norm(w) for w in head]
        matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
        agreed = 0
        for block in matcher.get_matching_blocks():
            run = 0
            while run < block.size and (
                abs(older[block.a + run].mid - head[block.b + run].mid) <= self.max_skew_s
            ):
                run += 1
            prefix = block.a == 0 and block.b == 0
            if run >= 2 or (prefix and run >= 1):
                agreed = max(agreed, block.b + run)
        return agreed

    def _same_audio(self, a: Word, b: Word) -> bool:
        """Whether ``a`` (before the seam) and ``b`` (after it) are two readings of one
        spoken word: overlapping in time, or close and spelled alike (one a prefix or
        suffix of the other, or most letters shared)."""
        overlap = min(a.end, b.end) - max(a.start, b.start)
        shorter = min(a.end - a.start, b.end - b.start)
        if shorter > 0 and overlap >= 0.3 * shorter:
            return True
        if b.start - a.end > self.junction_gap_s:
            return False
        ta, tb = _norm(a), _norm(b)
        if not ta or not tb:
            return False
        short, long_ = sorted((ta, tb), key=len)
        if long_.startswith(short) or long_.endswith(short):
            return True
        # "example" | "sample": most letters shared, in order
        return difflib.SequenceMatcher(a=ta, b=tb, autojunk=False).ratio() >= 0.7


def _norm(word: Word) -> str:
    return normalize_text(word.text)


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
