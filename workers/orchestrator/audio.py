"""Reading audio files for the ``transcribe`` command: mono 16-bit PCM at a given rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["load_pcm16", "resample"]


def resample(audio: npt.NDArray[np.float32], rate: int, target: int) -> npt.NDArray[np.float32]:
    """Band-limited resampling by FFT (exact for a whole file; no scipy needed)."""
    if rate == target or len(audio) == 0:
        return audio
    n_out = round(len(audio) * target / rate)
    spectrum = np.fft.rfft(audio.astype(np.float64))
    bins = n_out // 2 + 1
    if bins <= len(spectrum):
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate((spectrum, np.zeros(bins - len(spectrum), complex)))
    out = np.fft.irfft(spectrum, n_out) * (n_out / len(audio))
    return out.astype(np.float32)


def load_pcm16(path: Path, rate: int = 16000) -> npt.NDArray[np.int16]:
    """Read a WAV/FLAC file (any rate, any channels) as mono int16 PCM at ``rate``."""
    import soundfile  # local import: only the command line reads files

    data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = np.asarray(data.mean(axis=1), dtype=np.float32)
    mono = resample(mono, int(file_rate), rate)
    return np.asarray(np.clip(mono * 32768.0, -32768, 32767), dtype=np.int16)
