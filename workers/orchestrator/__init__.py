"""Orchestrator: cuts live audio into overlapping chunks, merges STT transcripts.

``workers.orchestrator.config`` (``OrchestratorConfig``) is imported eagerly and needs
only pydantic, so the config manager can read the schema anywhere. Everything else
(numpy, aiomqtt) is imported on first access (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workers.orchestrator.config import OrchestratorConfig

if TYPE_CHECKING:
    from workers.orchestrator.chunker import Chunk, Chunker
    from workers.orchestrator.merge import ChunkWords, TranscriptMerger, Word, join_words
    from workers.orchestrator.service import (
        Orchestrator,
        OrchestratorConfigChange,
        OrchestratorStats,
    )
    from workers.orchestrator.session import ChunkRecord, Session, TranscriptError
    from workers.orchestrator.settings import OrchestratorSettings
    from workers.orchestrator.textnorm import normalize_text, word_error_rate

__all__ = [
    "Chunk",
    "ChunkRecord",
    "ChunkWords",
    "Chunker",
    "Orchestrator",
    "OrchestratorConfig",
    "OrchestratorConfigChange",
    "OrchestratorSettings",
    "OrchestratorStats",
    "Session",
    "TranscriptError",
    "TranscriptMerger",
    "Word",
    "join_words",
    "normalize_text",
    "word_error_rate",
]

_LAZY = {
    "Chunk": "workers.orchestrator.chunker",
    "Chunker": "workers.orchestrator.chunker",
    "ChunkWords": "workers.orchestrator.merge",
    "TranscriptMerger": "workers.orchestrator.merge",
    "Word": "workers.orchestrator.merge",
    "join_words": "workers.orchestrator.merge",
    "Orchestrator": "workers.orchestrator.service",
    "OrchestratorConfigChange": "workers.orchestrator.service",
    "OrchestratorStats": "workers.orchestrator.service",
    "ChunkRecord": "workers.orchestrator.session",
    "Session": "workers.orchestrator.session",
    "TranscriptError": "workers.orchestrator.session",
    "OrchestratorSettings": "workers.orchestrator.settings",
    "normalize_text": "workers.orchestrator.textnorm",
    "word_error_rate": "workers.orchestrator.textnorm",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
