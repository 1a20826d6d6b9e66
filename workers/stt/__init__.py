"""STT worker: faster-whisper transcription of audio chunks with hot-applied config.

``workers.stt.config`` (``SttConfig``) is imported eagerly and needs neither numpy nor
faster-whisper, so the config manager can load the schema anywhere. The worker and
engine names are imported on first access (PEP 562), which is what keeps that true.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workers.stt.config import MODEL_FIELDS, PACKAGED_MODELS, SttConfig, VadParameters

if TYPE_CHECKING:
    from workers.stt.engine import ModelLoadError, ModelSpec, WhisperEngine, load_engine
    from workers.stt.settings import SttWorkerSettings
    from workers.stt.worker import SttConfigChange, SttWorker, WorkerStats

__all__ = [
    "MODEL_FIELDS",
    "PACKAGED_MODELS",
    "ModelLoadError",
    "ModelSpec",
    "SttConfig",
    "SttConfigChange",
    "SttWorker",
    "SttWorkerSettings",
    "VadParameters",
    "WhisperEngine",
    "WorkerStats",
    "load_engine",
]

_LAZY = {
    "ModelLoadError": "workers.stt.engine",
    "ModelSpec": "workers.stt.engine",
    "WhisperEngine": "workers.stt.engine",
    "load_engine": "workers.stt.engine",
    "SttWorkerSettings": "workers.stt.settings",
    "SttConfigChange": "workers.stt.worker",
    "SttWorker": "workers.stt.worker",
    "WorkerStats": "workers.stt.worker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
