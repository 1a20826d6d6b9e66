"""Pure, IO-free chunker: cuts one session's PCM stream into overlapping chunks.

Layout (all positions are absolute sample indices from the session start)::

    chunk k-1:  [s_{k-1} ........................ e_{k-1})
    chunk k:                      [s_k ........................ e_k)
                                  |<- overlap ->|<-- new (hop) -->|

* ``s_k = max(0, e_{k-1} - overlap)`` and ``e_k <= e_{k-1} + hop`` where
  ``hop = min(processing_interval, chunk - overlap)``; the first chunk is ``[0, hop)``, and
  the next ones start at 0 (repeating all the audio so far) until the overlap fits.
* The end ``e_k`` is the quietest point (lowest energy over 20 ms, on a 10 ms grid) in
  the last ``boundary_search`` seconds before its latest possible end, so a chunk edge
  seldom cuts a word in half. With ``boundary_search = 0`` chunks end at fixed times.
* A config change (:meth:`Chunker.apply`) takes effect at the next chunk boundary: the
  next chunk uses the new overlap and hop (its overlap is clipped to the previous
  chunk's length, so no audio is ever sent in more than two chunks). Audio is never
  lost and is never sent twice except inside the configured overlap.
* :meth:`Chunker.flush` emits the tail at the end of the stream (``final=True``).
* The retained audio never exceeds ``buffer_duration``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workers.orchestrator.config import OrchestratorConfig

__all__ = ["Chunk", "Chunker"]

Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk ready to send: its audio and where it sits in the session."""

    index: int
    start_sample: int
    overlap_samples: int
    samples: Pcm
    sample_rate: int
    config_version: int
    final: bool = False

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.samples)

    @property
    def start_s(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def end_s(self) -> float:
        return self.end_sample / self.sample_rate

    @property
    def overlap_s(self) -> float:
        return self.overlap_samples / self.sample_rate


def _samples(seconds: float, rate: int) -> int:
    return max(1, round(seconds * rate))


class Chunker:
    """Rolling buffer for one session. Feed it PCM; it returns the chunks that are ready."""

    def __init__(self, config: OrchestratorConfig, version: int = 0) -> None:
        self._config = config
        self._version = version
        self._rate = config.sample_rate
        self._buf: Pcm = np.zeros(0, dtype=np.int16)
        self._buf_start = 0  # absolute index of self._buf[0]
        self._emitted_end = 0  # e_{k-1}: end of the last chunk sent (0 before the first)
        self._last_start = 0  # s_{k-1}: start of the last chunk sent
        self._next_index = 0
        self._closed = False

    # -- state ------------------------------------------------------------------------
    @property
    def config(self) -> OrchestratorConfig:
        return self._config

    @property
    def version(self) -> int:
        return self._version

    @property
    def received_samples(self) -> int:
        """Samples received so far (end of the stream as known)."""
        return self._buf_start + len(self._buf)

    @property
    def buffered_samples(self) -> int:
        return len(self._buf)

    @property
    def max_buffer_samples(self) -> int:
        return _samples(self._config.buffer_duration_s, self._rate)

    def _hop(self) -> int:
        return _samples(self._config.hop_duration_s, self._rate)

    def _overlap(self) -> int:
        return _samples(self._config.overlap_duration_s, self._rate)

    # -- input ------------------------------------------------------------------------
    def apply(self, config: OrchestratorConfig, version: int) -> list[Chunk]:
        """Switch config from the next chunk on; returns chunks the new hop makes ready."""
        if config.sample_rate != self._rate:
            raise ValueError(
                f"cannot change sample_rate mid-session ({self._rate} -> {config.sample_rate})"
            )
        self._config = config
        self._version = version
        out: list[Chunk] = []
        self._emit_ready(out)
        self._trim()
        return out

    def feed(self, pcm: Pcm) -> list[Chunk]:
        """Append samples; return every chunk that became complete, in order."""
        if self._closed:
            raise RuntimeError("chunker is closed")
        out: list[Chunk] = []
        pcm = np.asarray(pcm, dtype=np.int16)
        pos = 0
        while pos < len(pcm):
            # Never take in more than the next chunk needs, so the buffer stays bounded
            # however large the incoming frame is.
            room = self._next_end() - self.received_samples
            take = min(max(room, 1), len(pcm) - pos)
            self._buf = np.concatenate((self._buf, pcm[pos : pos + take]))
            pos += take
            self._emit_ready(out)
            self._trim()
        return out

    def flush(self) -> list[Chunk]:
        """End of stream: emit the tail not yet sent (marked ``final``), then close.

        Returns nothing when the last chunk already ended exactly at the end of the
        stream; the caller knows the stream ended because it called ``flush``.
        """
        if self._closed:
            return []
        out: list[Chunk] = []
        self._emit_ready(out)
        end = self.received_samples
        if end > self._emitted_end:
            out.append(self._cut(end, final=True))
        self._closed = True
        self._buf_start = end
        self._buf = np.zeros(0, dtype=np.int16)
        return out

    # -- internals --------------------------------------------------------------------
    def _next_end(self) -> int:
        # The first chunk holds one hop: words are heard as early as later ones, and the
        # next chunks grow (each repeating all of the previous one) until the overlap fits.
        return self._emitted_end + self._hop()

    def _next_start(self) -> int:
        if self._emitted_end == 0:
            return 0
        # The overlap never reaches back past the previous chunk's start (only possible
        # right after a switch to a longer overlap).
        return max(self._buf_start, self._last_start, self._emitted_end - self._overlap())

    def _search(self) -> int:
        """Samples before the latest end in which a quieter cut point is looked for."""
        wanted = round(self._config.boundary_search_s * self._rate)
        return max(0, min(wanted, self._hop() // 2))

    def _quiet_end(self, latest: int) -> int:
        """The quietest cut point in ``[latest - search, latest]`` (latest on ties)."""
        search = self._search()
        step = max(1, self._rate // 100)  # 10 ms grid
        if search < step:
            return latest
        half = step  # energy over +-10 ms around each candidate
        lo = max(latest - search, self._buf_start + half)
        hi = latest - half
        if hi <= lo:
            return latest
        base = self._buf_start
        window = self._buf[lo - half - base : hi + half - base].astype(np.float64)
        energy = np.cumsum(np.concatenate(([0.0], window * window)))
        candidates = np.arange(lo, hi + 1, step)
        rel = candidates - (lo - half)
        sums = energy[rel + half] - energy[rel - half]
        # Latest among the quietest: keeps chunks as long as allowed when all is equal.
        best = len(sums) - 1 - int(np.argmin(sums[::-1]))
        return int(candidates[best])

    def _emit_ready(self, out: list[Chunk]) -> None:
        while self.received_samples >= self._next_end():
            out.append(self._cut(self._quiet_end(self._next_end()), final=False))

    def _cut(self, end: int, *, final: bool) -> Chunk:
        start = self._next_start()
        overlap = self._emitted_end - start if self._emitted_end else 0
        samples = self._buf[start - self._buf_start : end - self._buf_start].copy()
        chunk = Chunk(
            index=self._next_index,
            start_sample=start,
            overlap_samples=overlap,
            samples=samples,
            sample_rate=self._rate,
            config_version=self._version,
            final=final,
        )
        self._next_index += 1
        self._emitted_end = end
        self._last_start = start
        return chunk

    def _trim(self) -> None:
        """Keep only what the next chunk can need: its overlap and the pending new audio.

        The overlap kept is the larger of the current overlap and what the buffer bound
        allows, so a later config with a longer overlap still finds its audio.
        """
        if self._emitted_end == 0:
            return
        keep_overlap = max(self._overlap(), self.max_buffer_samples - self._hop())
        keep_from = max(self._buf_start, self._emitted_end - keep_overlap)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
