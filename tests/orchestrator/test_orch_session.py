"""Pure tests of a session: input offsets, transcripts in any order, the document."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from workers.orchestrator.config import OrchestratorConfig
from workers.orchestrator.session import Session, TranscriptError

CFG = OrchestratorConfig(
    chunk_duration_s=2.0,
    overlap_duration_s=0.5,
    processing_interval_s=1.5,
    buffer_duration_s=3.0,
    session_idle_timeout_s=5.0,
    max_chunks_in_flight=0,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pcm(seconds: float) -> bytes:
    return np.ones(round(seconds * 16000), dtype="<i2").tobytes()


def _body(chunk_id: int, *words: tuple[str, float, float]) -> dict[str, Any]:
    return {
        "session": "s",
        "chunk_id": chunk_id,
        "segments": [
            {
                "words": [
                    {"word": f" {w}", "start": a, "end": b, "probability": 0.9} for w, a, b in words
                ]
            }
        ],
    }


def test_feed_end_and_transcripts_make_a_final_document() -> None:
    clock = Clock()
    session = Session("s", CFG, 3, clock=clock)
    chunks = session.feed(_pcm(2.5), offset_s=0.0)
    assert [(c.start_s, c.end_s) for c in chunks] == [(0.0, 1.5)]
    clock.now += 1
    tail = session.end()
    assert [(c.start_s, c.end_s, c.final) for c in tail] == [(1.0, 2.5, True)]
    assert not session.complete
    assert session.on_transcript(_body(1, ("world", 1.9, 2.3))) is False  # waits for 0
    assert session.on_transcript(_body(0, ("hello", 0.2, 0.6))) is True
    assert session.on_transcript(_body(0, ("hello", 0.2, 0.6))) is False  # duplicate
    assert session.complete
    doc = session.document()
    assert doc["final"] is True
    assert doc["text"] == "hello world"
    assert doc["config_versions"] == [3]
    assert [c["seam"] for c in doc["chunks"]] == ["first", "midpoint"]
    assert doc["words"][1] == {
        "start": 1.9,
        "end": 2.3,
        "word": " world",
        "probability": 0.9,
        "chunk_id": 1,
        "final": True,
    }
    assert doc["duration_s"] == 2.5


def test_redelivered_audio_is_trimmed_and_gaps_are_filled() -> None:
    session = Session("s", CFG, 1)
    session.feed(_pcm(1.0), offset_s=0.0)
    session.feed(_pcm(1.0), offset_s=0.5)  # half of it repeats what we have
    assert session.duplicate_samples_dropped == 8000
    assert session.received_samples == 24000
    session.feed(_pcm(0.5), offset_s=2.0)  # 0.5 s missing before it
    assert session.gaps_filled_samples == 8000
    assert session.received_samples == 40000


def test_stt_error_still_lets_the_session_finish() -> None:
    session = Session("s", CFG, 1)
    session.feed(_pcm(1.0))
    session.end()
    assert session.outstanding == 1
    assert session.on_error(0, "too_long: chunk too long") is True
    assert session.complete
    assert session.document()["chunks"][0]["error"] == "too_long: chunk too long"


def test_bad_transcript_body_is_refused() -> None:
    session = Session("s", CFG, 1)
    session.feed(_pcm(2.0))
    with pytest.raises(TranscriptError):
        session.on_transcript({"session": "s"})
    with pytest.raises(TranscriptError):
        session.on_transcript({"chunk_id": 0, "segments": [{"words": [{"word": "x"}]}]})


def test_idle_time_and_no_feed_after_end() -> None:
    clock = Clock()
    session = Session("s", CFG, 1, clock=clock)
    session.feed(_pcm(0.1))
    clock.now += 4.0
    assert session.idle_for() == pytest.approx(4.0)
    session.end()
    assert session.end() == []
    with pytest.raises(RuntimeError):
        session.feed(_pcm(0.1))


def test_a_slow_stt_worker_gets_coalesced_chunks_not_a_queue() -> None:
    """One chunk in flight: while it is decoded the chunks cut meanwhile wait; then only
    the newest that still overlaps the last one sent by half the overlap goes out."""
    cfg = OrchestratorConfig(
        chunk_duration_s=10.0,
        overlap_duration_s=8.0,
        processing_interval_s=1.0,
        buffer_duration_s=20.0,
    )
    assert cfg.max_chunks_in_flight == 1
    session = Session("s", cfg, 1)
    first = session.feed(_pcm(1.0), 0.0)
    assert [(c.index, c.start_s, c.end_s) for c in first] == [(0, 0.0, 1.0)]
    assert session.feed(_pcm(11.0), 1.0) == []  # 11 more chunks cut, all held
    assert session.outstanding == 1
    assert session.on_transcript(_body(0, ("hello", 0.2, 0.6))) is True
    sent = session.release()
    # held: chunks ending at 2, 3, ..., 12 s, each starting 8 s before the previous end;
    # one must start by max(0, 1 - 8/2) = 0 s: the newest such is [0, 9)
    assert [(c.index, c.start_s, c.end_s, c.overlap_s) for c in sent] == [(1, 0.0, 9.0, 1.0)]
    assert session.chunks_coalesced == 7
    assert session.release() == []  # one in flight again
    session.on_transcript(_body(1, ("hello", 0.2, 0.6), ("world", 7.0, 7.4)))
    sent = session.release()
    # last sent ends at 9 s: the newest starting by 9 - 4 = 5 s is [3, 12), the last one
    assert [(c.index, c.start_s, c.end_s, c.overlap_s) for c in sent] == [(2, 3.0, 12.0, 6.0)]
    assert session.chunks_coalesced == 9
    tail = session.end()
    assert tail == []  # held until chunk 2 is answered
    assert not session.complete
    session.on_transcript(_body(2, ("world", 7.0, 7.4), ("again", 11.0, 11.5)))
    assert session.release() == []  # the stream ended exactly at 12 s: no tail
    assert session.complete
    doc = session.document()
    assert doc["text"] == "hello world again"
    assert [c["chunk_id"] for c in doc["chunks"]] == [0, 1, 2]


def test_without_a_limit_every_chunk_is_sent() -> None:
    cfg = CFG.model_copy(update={"max_chunks_in_flight": 0})
    session = Session("s", cfg, 1)
    chunks = session.feed(_pcm(6.0), 0.0)
    assert [c.index for c in chunks] == [0, 1, 2, 3]
    assert session.outstanding == 4


def test_cli_refuses_a_dotted_session_with_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from workers.orchestrator.__main__ import _parser

    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["transcribe", "x.flac", "--session", "meet.1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid session name 'meet.1'" in err
    assert "Traceback" not in err
    args = _parser().parse_args(["transcribe", "x.flac", "--session", "meet-1"])
    assert args.session == "meet-1"


def test_worker_settings_refuse_a_dotted_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from workers.orchestrator.settings import OrchestratorSettings

    with pytest.raises(ValidationError, match=r"invalid instance name 'web1\.example'"):
        OrchestratorSettings(instance_id="web1.example")
    monkeypatch.setenv("ORCHESTRATOR_INSTANCE_ID", "orch-1")
    assert OrchestratorSettings().resolved_instance_id() == "orch-1"
