"""Silence produces no words: the Silero VAD (faster-whisper's ``vad_filter``) is on by default."""

from __future__ import annotations

import numpy as np
from stt_support import DATA

from workers.stt.config import SttConfig
from workers.stt.engine import WhisperEngine, decode_options

RATE = 16000


def test_vad_is_on_by_default() -> None:
    assert SttConfig().vad_filter is True
    assert decode_options(SttConfig())["vad_filter"] is True


def test_silence_and_room_noise_give_no_words(engine: WhisperEngine) -> None:
    rng = np.random.default_rng(7)
    silence = np.zeros(5 * RATE, dtype=np.float32)
    hiss = (rng.standard_normal(5 * RATE) * 0.003).astype(np.float32)  # about -50 dBFS
    hum = (0.01 * np.sin(2 * np.pi * 50 * np.arange(5 * RATE) / RATE)).astype(np.float32)
    for name, audio in (("silence", silence), ("hiss", hiss), ("hum", hum)):
        result = engine.transcribe(audio, SttConfig())
        words = [w for seg in result.segments for w in seg.words]
        assert (result.text, words) == ("", []), name


def test_speech_after_silence_is_still_transcribed(engine: WhisperEngine) -> None:
    """The guard drops the silence, not the speech next to it (times stay session-true)."""
    from workers.orchestrator.audio import load_audio
    from workers.orchestrator.textnorm import normalize_text

    speech = load_audio(DATA / "derived" / "jfk_16k.wav")
    padded = np.concatenate((np.zeros(3 * RATE, dtype=np.float32), speech))
    alone = engine.transcribe(speech, SttConfig())
    after = engine.transcribe(padded, SttConfig())
    assert normalize_text(after.text) == normalize_text(alone.text) != ""
    first = after.segments[0].words[0]
    assert first.start >= 3.0 - 0.5  # the word is placed after the silence
