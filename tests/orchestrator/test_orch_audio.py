"""Input audio in any common format (PyAV decoding, libswresample resampling).

The files are made in the test from a real recording (JFK, 16 kHz mono WAV) with PyAV's
encoders, at other rates and channel counts; each is read back, its length checked and
its transcript compared with the original's (same model, same run: no fixed WER bound).
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import jiwer
import numpy as np
import pytest

from workers.orchestrator.audio import AudioLoadError, load_audio, load_pcm16
from workers.orchestrator.textnorm import normalize_text
from workers.stt.config import SttConfig
from workers.stt.engine import WhisperEngine

REPO = Path(__file__).resolve().parents[2]
JFK = REPO.parent / "shared" / "data" / "derived" / "jfk_16k.wav"
RATE = 16000

# suffix: (container format, codec, sample rate, channels, sample format)
FORMATS = {
    "wav": ("wav", "pcm_s16le", 44100, 2, "s16"),
    "flac": ("flac", "flac", 22050, 1, "s16"),
    "mp3": ("mp3", "libmp3lame", 44100, 2, "fltp"),
    "ogg": ("ogg", "vorbis", 48000, 2, "fltp"),
    "webm": ("webm", "libopus", 48000, 1, "flt"),
}


def _encode(audio: np.ndarray, path: Path, spec: tuple[str, str, int, int, str]) -> None:
    """Write ``audio`` (16 kHz mono float32) to ``path`` with PyAV, resampled by FFmpeg."""
    container_format, codec, rate, channels, sample_format = spec
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        stream.format = sample_format
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate)
        pcm = (audio * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.time_base = Fraction(1, RATE)
        frame.pts = 0
        for out in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.fixture(scope="module")
def original() -> np.ndarray:
    return load_audio(JFK)


@pytest.fixture(scope="module")
def original_words(original: np.ndarray, engine: WhisperEngine) -> list[str]:
    """The original's transcript, decoded once for all formats."""
    return normalize_text(engine.transcribe(original, SttConfig()).text).split()


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_each_format_decodes_to_the_same_speech(
    suffix: str,
    original: np.ndarray,
    original_words: list[str],
    engine: WhisperEngine,
    tmp_path: Path,
) -> None:
    path = tmp_path / f"jfk.{suffix}"
    _encode(original, path, FORMATS[suffix])
    pcm = load_pcm16(path)
    assert pcm.dtype == np.int16
    # same length within codec padding (encoder delay, last frame)
    assert abs(len(pcm) - len(original)) / RATE < 0.1, len(pcm) / RATE
    audio = pcm.astype(np.float32) / 32768.0
    expected = original_words
    assert expected, "the original recording transcribes to words"
    got = normalize_text(engine.transcribe(audio, SttConfig()).text).split()
    errors = jiwer.process_words(" ".join(expected), " ".join(got))
    changed = errors.substitutions + errors.deletions + errors.insertions
    assert changed <= max(2, len(expected) // 10), (suffix, " ".join(got))


def test_unreadable_input_is_one_clear_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n" * 20)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.flac"
    truncated.write_bytes(JFK.read_bytes()[:30])
    for path, fragment in (
        (tmp_path / "missing.wav", "no such file"),
        (tmp_path, "no such file"),
        (text, "not a readable audio file"),
        (empty, "not a readable audio file"),
        (truncated, ""),
    ):
        with pytest.raises(AudioLoadError) as caught:
            load_pcm16(path)
        message = str(caught.value)
        assert "\n" not in message
        assert str(path) in message
        assert fragment in message


def test_transcribe_command_reports_unreadable_input_in_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not audio\n")
    done = subprocess.run(
        [sys.executable, "-m", "workers.orchestrator", "transcribe", str(text)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert str(text) in lines[0]
