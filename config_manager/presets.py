"""Named presets: one change that may touch several services (pure data, no IO).

Each preset is a JSON Merge Patch (RFC 7396) per service. The manager applies every
service's patch to that service's current config, checks the cross-service rules of
:mod:`config_manager.compatibility` on the result, and commits all services' new
versions in one transaction (both are published, or neither).

The chunking figures are the LiveTranslate design's presets (chunk / overlap /
processing interval / buffer, in seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["PRESETS", "Preset", "get_preset", "preset_names"]

JsonPatch = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Preset:
    """A named change: a description and one JSON Merge Patch per service it touches."""

    name: str
    description: str
    patches: Mapping[str, JsonPatch]

    @property
    def services(self) -> tuple[str, ...]:
        """Services this preset changes, sorted."""
        return tuple(sorted(self.patches))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``GET /api/v1/presets``)."""
        return {
            "name": self.name,
            "description": self.description,
            "patches": {svc: dict(patch) for svc, patch in self.patches.items()},
        }


def _chunking(
    name: str, chunk: float, overlap: float, interval: float, buffer: float
) -> dict[str, Any]:
    return {
        "chunk_duration_s": chunk,
        "overlap_duration_s": overlap,
        "processing_interval_s": interval,
        "buffer_duration_s": buffer,
        "preset": name,
    }


def _preset(name: str, description: str, patches: Mapping[str, JsonPatch]) -> tuple[str, Preset]:
    frozen = MappingProxyType({k: MappingProxyType(dict(v)) for k, v in patches.items()})
    return name, Preset(name=name, description=description, patches=frozen)


PRESETS: Mapping[str, Preset] = MappingProxyType(
    dict(
        (
            _preset(
                "exact_whisper_match",
                "3 s chunks with a 0.2 s overlap, one chunk every 3 s: the window Whisper "
                "models see in the LiveTranslate design.",
                {"orchestrator": _chunking("exact_whisper_match", 3.0, 0.2, 3.0, 4.0)},
            ),
            _preset(
                "optimized_performance",
                "2.5 s chunks, 0.3 s overlap, a chunk every 2.2 s: fewer, cheaper chunks.",
                {"orchestrator": _chunking("optimized_performance", 2.5, 0.3, 2.2, 6.0)},
            ),
            _preset(
                "high_accuracy",
                "4 s chunks, 0.8 s overlap, a chunk every 3.2 s, and a wider beam in the "
                "STT worker: more context per chunk and a longer seam to merge on.",
                {
                    "orchestrator": _chunking("high_accuracy", 4.0, 0.8, 3.2, 8.0),
                    "stt": {"beam_size": 5},
                },
            ),
            _preset(
                "real_time_optimized",
                "2 s chunks, 0.2 s overlap, a chunk every 1.8 s, greedy decoding in the STT "
                "worker: the lowest latency.",
                {
                    "orchestrator": _chunking("real_time_optimized", 2.0, 0.2, 1.8, 4.0),
                    "stt": {"beam_size": 1},
                },
            ),
        )
    )
)
"""Every preset by name (read-only)."""


def preset_names() -> list[str]:
    """Names of all presets, sorted."""
    return sorted(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called ``name``; raises ``KeyError`` naming the known presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(preset_names())}") from None
