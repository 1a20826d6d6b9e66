"""The speech pipeline's named presets (pure data, pydantic only).

Registered with the config manager through the ``config_manager.presets`` entry-point
group (``pyproject.toml``), one entry point per preset. Each preset is a JSON Merge
Patch per service that sets **every field the preset owns** (:data:`ORCHESTRATOR_FIELDS`,
:data:`STT_FIELDS`): applying a preset gives the same owned values whatever was current
before (real_time_optimized then exact_whisper_match equals exact_whisper_match alone),
so its measured figures are reproducible. Fields a preset does not own are deployment
choices it leaves alone: the orchestrator's ``sample_rate`` and
``session_idle_timeout_s``; the STT worker's model, device, compute type, threads,
language and chunk limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from workers.orchestrator.config import OrchestratorConfig
from workers.stt.config import SttConfig

__all__ = [
    "EXACT_WHISPER_MATCH",
    "HIGH_ACCURACY",
    "OPTIMIZED_PERFORMANCE",
    "ORCHESTRATOR_FIELDS",
    "PRESETS",
    "REAL_TIME_OPTIMIZED",
    "STT_FIELDS",
]

ORCHESTRATOR_FIELDS: Final = frozenset(OrchestratorConfig.model_fields) - {
    "sample_rate",
    "session_idle_timeout_s",
}
"""Orchestrator fields every preset sets."""

STT_FIELDS: Final = frozenset(
    {
        "beam_size",
        "temperature",
        "temperature_increment_on_fallback",
        "compression_ratio_threshold",
        "log_prob_threshold",
        "repetition_penalty",
        "no_repeat_ngram_size",
        "vad_filter",
        "vad",
        "word_timestamps",
        "condition_on_previous_text",
        "no_speech_threshold",
    }
)
"""STT decoding fields every preset sets (the model and its limits are not a preset's)."""


def _document(model: type[Any], owned: frozenset[str], values: Mapping[str, Any]) -> Any:
    """The owned fields: the model's defaults overridden by ``values`` (all of them set)."""
    unknown = set(values) - owned
    if unknown:
        raise ValueError(f"preset sets fields it does not own: {sorted(unknown)}")
    defaults = model().model_dump(mode="json")
    document = {name: values.get(name, defaults[name]) for name in sorted(owned)}
    model.model_validate({**defaults, **document})  # a preset is always a valid config
    return MappingProxyType(document)


def _preset(
    name: str, description: str, orchestrator: Mapping[str, Any], stt: Mapping[str, Any]
) -> Mapping[str, Any]:
    return MappingProxyType(
        {
            "description": description,
            "patches": MappingProxyType(
                {
                    "orchestrator": _document(
                        OrchestratorConfig, ORCHESTRATOR_FIELDS, {**orchestrator, "preset": name}
                    ),
                    "stt": _document(SttConfig, STT_FIELDS, stt),
                }
            ),
        }
    )


def _chunking(chunk: float, overlap: float, interval: float, buffer: float) -> dict[str, float]:
    return {
        "chunk_duration_s": chunk,
        "overlap_duration_s": overlap,
        "processing_interval_s": interval,
        "buffer_duration_s": buffer,
    }


EXACT_WHISPER_MATCH: Final = _preset(
    "exact_whisper_match",
    "Whisper's own 30 s window: 30 s chunks, 15 s overlap, a chunk every 15 s, beam 5. "
    "Every final word was decoded twice with at least 7 s of audio on each side: the "
    "closest to decoding the whole file, at the highest latency.",
    _chunking(30.0, 15.0, 15.0, 45.0),
    {"beam_size": 5},
)
OPTIMIZED_PERFORMANCE: Final = _preset(
    "optimized_performance",
    "12 s chunks, 8 s overlap, a chunk every 4 s, beam 5: about a third of the default's "
    "decoding work for a few seconds more latency.",
    _chunking(12.0, 8.0, 4.0, 20.0),
    {"beam_size": 5},
)
HIGH_ACCURACY: Final = _preset(
    "high_accuracy",
    "20 s chunks, 12 s overlap, a chunk every 8 s, beam 5: long context on both sides of "
    "every word.",
    _chunking(20.0, 12.0, 8.0, 32.0),
    {"beam_size": 5},
)
REAL_TIME_OPTIMIZED: Final = _preset(
    "real_time_optimized",
    "8 s chunks, 7 s overlap, a chunk every second, greedy decoding (beam 1): the lowest "
    "latency, interim words about a second after they are spoken.",
    _chunking(8.0, 7.0, 1.0, 15.0),
    {"beam_size": 1},
)

PRESETS: Final[Mapping[str, Mapping[str, Any]]] = MappingProxyType(
    {
        "exact_whisper_match": EXACT_WHISPER_MATCH,
        "optimized_performance": OPTIMIZED_PERFORMANCE,
        "high_accuracy": HIGH_ACCURACY,
        "real_time_optimized": REAL_TIME_OPTIMIZED,
    }
)
"""Every preset of the speech pipeline by name (what the entry points point at)."""
