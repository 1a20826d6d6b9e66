"""Audio chunk framing and topic names (pure, no broker)."""

from __future__ import annotations

import json
import struct

import pytest

import workers.common as common
from workers.common import (
    MAGIC,
    AudioChunk,
    ChunkDecodeError,
    InvalidNameError,
    audio_chunks_topic,
    audio_input_topic,
    decode_chunk,
    encode_chunk,
    final_transcripts_topic,
    session_from_topic,
    stt_errors_topic,
    stt_transcripts_topic,
    wildcard,
)


def _chunk(**overrides: object) -> AudioChunk:
    fields: dict[str, object] = {
        "session": "meet-1_a-b",
        "chunk_id": 7,
        "offset_s": 12.5,
        "sample_rate": 16000,
        "pcm": struct.pack("<4h", 0, 1, -1, 32767),
        "overlap_s": 0.5,
        "config_version": 3,
        "extra": {"final": True},
    }
    fields.update(overrides)
    return AudioChunk(**fields)  # type: ignore[arg-type]


def _raw(header: object, pcm: bytes = b"\x00\x00") -> bytes:
    body = json.dumps(header).encode()
    return MAGIC + struct.pack(">I", len(body)) + body + pcm


def _header(**overrides: object) -> dict[str, object]:
    header: dict[str, object] = {
        "session": "s1",
        "chunk_id": 0,
        "offset_s": 0.0,
        "sample_rate": 16000,
    }
    header.update(overrides)
    return header


def test_round_trip_keeps_every_field() -> None:
    chunk = _chunk()
    payload = encode_chunk(chunk)
    assert payload.startswith(MAGIC)
    decoded = decode_chunk(payload)
    assert decoded == chunk
    assert decoded.num_samples == 4
    assert decoded.duration_s == pytest.approx(4 / 16000)


def test_round_trip_minimal_chunk_defaults() -> None:
    chunk = AudioChunk(session="s", chunk_id=0, offset_s=0, sample_rate=8000, pcm=b"")
    decoded = decode_chunk(bytearray(encode_chunk(chunk)))
    assert decoded.overlap_s == 0.0
    assert decoded.config_version is None
    assert dict(decoded.extra) == {}
    assert decoded.pcm == b""


def test_pcm_is_raw_after_header() -> None:
    pcm = bytes(range(200))
    payload = encode_chunk(_chunk(pcm=pcm))
    assert payload.endswith(pcm)
    (length,) = struct.unpack(">I", payload[4:8])
    assert len(payload) == 8 + length + len(pcm)


@pytest.mark.parametrize(
    ("payload", "code", "words"),
    [
        (b"PCM", "truncated", "shorter"),
        (b"WAV\x01" + struct.pack(">I", 2) + b"{}", "bad_magic", "expected"),
        (b"PCM\x02" + struct.pack(">I", 2) + b"{}", "bad_magic", "expected"),
        (MAGIC + struct.pack(">I", 100) + b"{}", "truncated", "header says 100"),
        (MAGIC + struct.pack(">I", 1 << 20) + b"{}", "header_too_large", "limit"),
        (MAGIC + struct.pack(">I", 3) + b"{x}", "bad_header_json", "JSON"),
        (MAGIC + struct.pack(">I", 2) + b"\xff\xfe", "bad_header_json", "UTF-8"),
        (_raw([1, 2]), "bad_header_field", "JSON object"),
        (_raw({"session": "s"}), "bad_header_field", "chunk_id"),
        (_raw(_header(colour="red")), "bad_header_field", r"unknown key\(s\): colour"),
        (_raw(_header(session="a/b")), "bad_header_field", "invalid session"),
        (_raw(_header(session="#")), "bad_header_field", "invalid session"),
        (_raw(_header(session="x" * 65)), "bad_header_field", "invalid session"),
        (_raw(_header(session=5)), "bad_header_field", "session must be a string"),
        (_raw(_header(chunk_id=-1)), "bad_header_field", "chunk_id"),
        (_raw(_header(chunk_id=1.5)), "bad_header_field", "chunk_id"),
        (_raw(_header(chunk_id=True)), "bad_header_field", "chunk_id"),
        (_raw(_header(offset_s=-0.1)), "bad_header_field", "offset_s"),
        (_raw(_header(offset_s="1")), "bad_header_field", "offset_s"),
        (_raw(_header(overlap_s=-1)), "bad_header_field", "overlap_s"),
        (_raw(_header(sample_rate=0)), "bad_header_field", "sample_rate"),
        (_raw(_header(sample_rate=16000.0)), "bad_header_field", "sample_rate"),
        (_raw(_header(config_version=-2)), "bad_header_field", "config_version"),
        (_raw(_header(extra=[1])), "bad_header_field", "extra"),
        (_raw(_header(), pcm=b"\x00\x00\x00"), "odd_pcm_length", "whole number"),
    ],
)
def test_malformed_payload_is_refused_with_reason(payload: bytes, code: str, words: str) -> None:
    with pytest.raises(ChunkDecodeError, match=words) as info:
        decode_chunk(payload)
    assert info.value.code == code


def test_non_finite_offset_is_refused() -> None:
    body = b'{"session":"s","chunk_id":0,"offset_s":NaN,"sample_rate":16000}'
    with pytest.raises(ChunkDecodeError, match="offset_s"):
        decode_chunk(MAGIC + struct.pack(">I", len(body)) + body)


def test_encode_refuses_invalid_chunk() -> None:
    with pytest.raises(ChunkDecodeError, match="whole number"):
        encode_chunk(_chunk(pcm=b"\x00"))
    with pytest.raises(ChunkDecodeError, match="invalid session"):
        encode_chunk(_chunk(session="a+b"))
    with pytest.raises(ChunkDecodeError, match="JSON-serialisable"):
        encode_chunk(_chunk(extra={"x": object()}))


def test_max_header_bytes_is_configurable() -> None:
    payload = encode_chunk(_chunk())
    with pytest.raises(ChunkDecodeError) as info:
        decode_chunk(payload, max_header_bytes=10)
    assert info.value.code == "header_too_large"


def test_topic_builders() -> None:
    assert audio_chunks_topic("s-1") == "audio/chunks/s-1"
    assert audio_input_topic("s-1") == "audio/input/s-1"
    assert stt_transcripts_topic("s-1") == "stt/transcripts/s-1"
    assert stt_errors_topic("s-1") == "stt/errors/s-1"
    assert final_transcripts_topic("s-1") == "transcripts/final/s-1"
    assert wildcard(common.AUDIO_CHUNKS_PREFIX) == "audio/chunks/+"


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "a b", "x" * 65, "é", "meet.1", "a*"])
def test_topic_builders_refuse_unsafe_sessions(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        audio_chunks_topic(bad)


def test_session_from_topic() -> None:
    assert session_from_topic("audio/chunks", "audio/chunks/abc") == "abc"
    with pytest.raises(InvalidNameError):
        session_from_topic("audio/chunks", "audio/chunks/a/b")
    with pytest.raises(InvalidNameError):
        session_from_topic("audio/chunks", "audio/input/abc")


def test_public_api_is_exactly_all() -> None:
    public = {name for name in dir(common) if not name.startswith("_")}
    modules = {"chunks", "names", "settings", "topics"}
    assert public - modules == set(common.__all__)


def test_redelivery_filter_drops_copies_only() -> None:
    from workers.stt.worker import RedeliveryFilter

    seen = RedeliveryFilter(window=2)
    assert not seen.seen(1, 10, b"chunk-a")
    assert seen.seen(1, 10, b"chunk-a"), "same packet id and bytes: a redelivery"
    assert not seen.seen(1, 10, b"chunk-b"), "packet id reused for other bytes"
    assert not seen.seen(1, 11, b"chunk-a"), "same bytes sent again as a new message"
    assert not seen.seen(0, 12, b"x")
    assert not seen.seen(0, 12, b"x"), "QoS 0 is never redelivered"
    assert not seen.seen(1, 10, b"chunk-a"), "forgotten once out of the window"
