"""Reading audio files: any common format (WAV, FLAC, MP3, OGG, WebM, ...) as mono PCM.

Decoding is PyAV's (FFmpeg, the decoder faster-whisper itself uses) and resampling
FFmpeg's (libswresample, through :class:`av.audio.resampler.AudioResampler`). Every
failure to read a file is an :class:`AudioLoadError` with a one-line message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["AudioLoadError", "load_audio", "load_pcm16"]


class AudioLoadError(ValueError):
    """A file could not be read as audio; the message is one line naming the file."""


def load_audio(path: Path | str, rate: int = 16000) -> npt.NDArray[np.float32]:
    """Decode ``path``'s first audio stream as mono float32 in [-1, 1] at ``rate`` Hz."""
    import av  # local import: only the command line, tests and bench read files

    name = str(path)
    if not Path(name).is_file():
        raise AudioLoadError(f"{name}: no such file")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    pieces: list[npt.NDArray[Any]] = []
    try:
        with av.open(name, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioLoadError(f"{name}: no audio stream")
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler follow the samples, not the timestamps
                pieces.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(frame))
            pieces.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(None))
    except AudioLoadError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise AudioLoadError(f"{name}: not a readable audio file ({reason})") from None
    if not pieces:
        raise AudioLoadError(f"{name}: no audio samples")
    pcm = np.concatenate(pieces).astype(np.float32)
    return np.asarray(pcm / np.float32(32768.0), dtype=np.float32)


def load_pcm16(path: Path | str, rate: int = 16000) -> npt.NDArray[np.int16]:
    """Read an audio file (any format, rate and channels) as mono int16 PCM at ``rate``."""
    audio = load_audio(path, rate)
    return np.asarray(np.clip(np.round(audio * 32768.0), -32768, 32767), dtype=np.int16)
