"""The orchestrator's configuration model (importable without numpy or faster-whisper).

The config manager reads this model through the ``config_manager.schemas`` entry point,
so this module imports nothing beyond pydantic.
"""

from __future__ import annotations

from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["OrchestratorConfig"]

# Human labels for the editor (the JSON Schema's ``title``), one place for every field.
_TITLES: Final = {
    "chunk_duration_s": "Chunk length (s)",
    "overlap_duration_s": "Overlap (s)",
    "processing_interval_s": "New audio per chunk (s)",
    "buffer_duration_s": "Buffer length (s)",
    "sample_rate": "Sample rate (Hz)",
    "boundary_search_s": "Boundary search window (s)",
    "session_idle_timeout_s": "Idle session timeout (s)",
    "max_chunks_in_flight": "Chunks at the STT worker at most",
    "final_after_pause_s": "Final after a pause of (s)",
    "preset": "Preset",
}


def _title(name: str, _info: object) -> str:
    return _TITLES.get(name, name.replace("_", " ").capitalize())


class OrchestratorConfig(BaseModel):
    """How the orchestrator cuts a session's audio into overlapping chunks.

    A chunk carries ``overlap_duration_s`` of audio already sent in the previous chunk
    followed by ``min(processing_interval_s, chunk_duration_s - overlap_duration_s)``
    seconds of new audio; so every chunk is at most ``chunk_duration_s`` long and
    consecutive chunks overlap by exactly ``overlap_duration_s``.

    The defaults are the low-latency mode: a chunk every 1.5 s holding the last 10 s of
    audio (8.5 s repeated). Each chunk's words are published at once as interim words and
    become final when the next chunk's decode agrees on them, so every final word was
    decoded twice with seconds of audio around it (see docs/orchestrator.md for the
    measured WER and latency, and the presets for other trade-offs).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, field_title_generator=_title)

    chunk_duration_s: float = Field(
        default=10.0,
        gt=0,
        le=30.0,
        description="Longest chunk sent to the STT worker, in seconds (overlap included).",
    )
    overlap_duration_s: float = Field(
        default=8.5,
        gt=0,
        description="Audio repeated at the start of each chunk from the end of the previous "
        "one, in seconds. Words in this region are heard by both chunks: they become final "
        "when both decodes agree.",
    )
    processing_interval_s: float = Field(
        default=1.5,
        gt=0,
        description="New audio that triggers the next chunk, in seconds (capped at chunk "
        "minus overlap). Shorter means lower latency and more chunks.",
    )
    buffer_duration_s: float = Field(
        default=20.0,
        gt=0,
        description="Upper bound on the audio a session keeps in memory, in seconds. Must "
        "hold a chunk plus its overlap.",
    )
    sample_rate: int = Field(
        default=16000,
        gt=0,
        description="Sample rate of the PCM sent to the STT worker, in Hz. Input at another "
        "rate is refused.",
    )
    boundary_search_s: float = Field(
        default=0.0,
        ge=0,
        description="Each chunk ends at the quietest 10 ms within this many seconds before "
        "its latest possible end (capped at half the new audio per chunk), so that chunk "
        "edges fall between words rather than inside them. 0 cuts at fixed times.",
    )
    session_idle_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A session with no audio for this long is flushed and closed.",
    )
    max_chunks_in_flight: int = Field(
        default=1,
        ge=0,
        le=100,
        description="Chunks of a session sent to the STT worker and not answered yet, at "
        "most (0 = no limit). When the STT worker falls behind real time, the chunks cut "
        "meanwhile are coalesced: the newest that still overlaps the last one sent by half "
        "the overlap is sent and the older ones are dropped unsent, so latency stays about "
        "one decode instead of growing with a queue.",
    )
    final_after_pause_s: float = Field(
        default=0.0,
        ge=0,
        le=5.0,
        description="A word followed by at least this much silence in a chunk's reading "
        "(before the next word, or before the chunk's end) becomes final at once, with "
        "every word before it, instead of waiting for the next chunk's decode to agree. "
        "0 = off: words become final only when two successive decodes agree.",
    )
    preset: str | None = Field(
        default=None,
        description="Name of the preset this config came from (informational only).",
    )

    @model_validator(mode="after")
    def _check_durations(self) -> Self:
        if self.overlap_duration_s >= self.chunk_duration_s:
            raise ValueError(
                "overlap_duration_s must be shorter than chunk_duration_s "
                f"({self.overlap_duration_s} >= {self.chunk_duration_s})"
            )
        if self.processing_interval_s > self.chunk_duration_s:
            raise ValueError(
                "processing_interval_s must not be longer than chunk_duration_s "
                f"({self.processing_interval_s} > {self.chunk_duration_s})"
            )
        if self.buffer_duration_s < self.chunk_duration_s + self.overlap_duration_s:
            raise ValueError(
                "buffer_duration_s must hold a chunk plus its overlap "
                f"({self.buffer_duration_s} < {self.chunk_duration_s} + "
                f"{self.overlap_duration_s})"
            )
        return self

    @property
    def hop_duration_s(self) -> float:
        """New audio per chunk: the processing interval, capped at chunk minus overlap."""
        return min(self.processing_interval_s, self.chunk_duration_s - self.overlap_duration_s)
