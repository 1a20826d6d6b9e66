"""Binary framing of audio chunks: a small JSON header followed by raw PCM.

Wire layout (all on one MQTT payload)::

    offset  size  content
    0       4     magic + version: b"PCM" followed by the byte 0x01
    4       4     header length N, unsigned big-endian
    8       N     header: compact UTF-8 JSON object (see below)
    8+N     ...   audio: signed 16-bit little-endian mono PCM samples

Header keys: ``session`` (safe name), ``chunk_id`` (int >= 0), ``offset_s``
(float >= 0, start of the chunk within the session, seconds), ``sample_rate``
(int > 0), ``overlap_s`` (float >= 0, how much of the chunk's start repeats the
previous chunk's end), optional ``config_version`` (int >= 0 or null) and
optional ``extra`` (JSON object of free metadata, e.g. ``{"final": true}``).
Unknown header keys are refused so that typos are not silently ignored.

The format is deliberately minimal and pure Python (no numpy): the orchestrator
and the STT worker both use it, and decoding a chunk costs one ``json.loads``
and one copy of the PCM bytes.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from workers.common.names import InvalidNameError, validate_session

MAGIC: Final = b"PCM\x01"
"""Four bytes at the start of every chunk: format tag ``PCM`` and version 1."""

BYTES_PER_SAMPLE: Final = 2
_LENGTH: Final = struct.Struct(">I")
_PREFIX_LEN: Final = len(MAGIC) + _LENGTH.size
_REQUIRED_KEYS: Final = frozenset({"session", "chunk_id", "offset_s", "sample_rate"})
_OPTIONAL_KEYS: Final = frozenset({"overlap_s", "config_version", "extra"})
_ALL_KEYS: Final = _REQUIRED_KEYS | _OPTIONAL_KEYS

DEFAULT_MAX_HEADER_BYTES: Final = 16 * 1024
"""Largest JSON header accepted by :func:`decode_chunk` unless told otherwise."""


class ChunkDecodeError(ValueError):
    """Raised when bytes are not a valid audio chunk (or a chunk cannot be encoded).

    ``code`` is a short stable identifier (``bad_magic``, ``truncated``,
    ``header_too_large``, ``bad_header_json``, ``bad_header_field``,
    ``odd_pcm_length``) that error events carry; the message says what is wrong.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """One chunk of mono 16-bit PCM audio belonging to a session."""

    session: str
    chunk_id: int
    offset_s: float
    sample_rate: int
    pcm: bytes
    overlap_s: float = 0.0
    config_version: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        """Number of PCM samples in the chunk."""
        return len(self.pcm) // BYTES_PER_SAMPLE

    @property
    def duration_s(self) -> float:
        """Duration of the audio in seconds."""
        return self.num_samples / self.sample_rate


def encode_chunk(chunk: AudioChunk) -> bytes:
    """Serialise ``chunk`` to its wire form; raises :class:`ChunkDecodeError` if invalid."""
    header: dict[str, Any] = {
        "session": chunk.session,
        "chunk_id": chunk.chunk_id,
        "offset_s": chunk.offset_s,
        "sample_rate": chunk.sample_rate,
        "overlap_s": chunk.overlap_s,
    }
    if chunk.config_version is not None:
        header["config_version"] = chunk.config_version
    if chunk.extra:
        header["extra"] = dict(chunk.extra)
    _check_header(header)
    if len(chunk.pcm) % BYTES_PER_SAMPLE:
        raise ChunkDecodeError(
            "odd_pcm_length", f"PCM length {len(chunk.pcm)} is not a whole number of samples"
        )
    try:
        raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ChunkDecodeError(
            "bad_header_field", f"header is not JSON-serialisable: {exc}"
        ) from exc
    return b"".join((MAGIC, _LENGTH.pack(len(raw)), raw, chunk.pcm))


def decode_chunk(
    payload: bytes | bytearray | memoryview, *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
) -> AudioChunk:
    """Parse and validate a wire payload; raises :class:`ChunkDecodeError` with a clear reason."""
    view = memoryview(payload)
    if len(view) < _PREFIX_LEN:
        raise ChunkDecodeError(
            "truncated",
            f"payload of {len(view)} bytes is shorter than the {_PREFIX_LEN}-byte prefix",
        )
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise ChunkDecodeError(
            "bad_magic", f"payload starts with {bytes(view[:4])!r}, expected {MAGIC!r}"
        )
    (header_len,) = _LENGTH.unpack_from(view, len(MAGIC))
    if header_len > max_header_bytes:
        raise ChunkDecodeError(
            "header_too_large",
            f"header of {header_len} bytes exceeds the {max_header_bytes}-byte limit",
        )
    end = _PREFIX_LEN + header_len
    if len(view) < end:
        raise ChunkDecodeError(
            "truncated", f"header says {header_len} bytes but only {len(view) - _PREFIX_LEN} follow"
        )
    try:
        header = json.loads(bytes(view[_PREFIX_LEN:end]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChunkDecodeError("bad_header_json", f"header is not valid UTF-8 JSON: {exc}") from exc
    _check_header(header)
    pcm = bytes(view[end:])
    if len(pcm) % BYTES_PER_SAMPLE:
        raise ChunkDecodeError(
            "odd_pcm_length", f"PCM length {len(pcm)} is not a whole number of 16-bit samples"
        )
    return AudioChunk(
        session=header["session"],
        chunk_id=header["chunk_id"],
        offset_s=float(header["offset_s"]),
        sample_rate=header["sample_rate"],
        pcm=pcm,
        overlap_s=float(header.get("overlap_s", 0.0)),
        config_version=header.get("config_version"),
        extra=header.get("extra") or {},
    )


def _bad(message: str) -> ChunkDecodeError:
    return ChunkDecodeError("bad_header_field", message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


def _check_header(header: object) -> None:
    if not isinstance(header, dict):
        raise _bad(f"header must be a JSON object, got {type(header).__name__}")
    missing = _REQUIRED_KEYS - header.keys()
    if missing:
        raise _bad(f"header lacks required key(s): {', '.join(sorted(missing))}")
    unknown = header.keys() - _ALL_KEYS
    if unknown:
        raise _bad(f"header has unknown key(s): {', '.join(sorted(unknown))}")
    session = header["session"]
    if not isinstance(session, str):
        raise _bad("session must be a string")
    try:
        validate_session(session)
    except InvalidNameError as exc:
        raise _bad(str(exc)) from exc
    chunk_id = header["chunk_id"]
    if not _is_int(chunk_id) or chunk_id < 0:
        raise _bad(f"chunk_id must be an integer >= 0, got {chunk_id!r}")
    for key in ("offset_s", "overlap_s"):
        if key in header and (not _is_number(header[key]) or header[key] < 0):
            raise _bad(f"{key} must be a finite number >= 0, got {header[key]!r}")
    rate = header["sample_rate"]
    if not _is_int(rate) or rate <= 0:
        raise _bad(f"sample_rate must be an integer > 0, got {rate!r}")
    version = header.get("config_version")
    if version is not None and (not _is_int(version) or version < 0):
        raise _bad(f"config_version must be an integer >= 0 or null, got {version!r}")
    extra = header.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise _bad(f"extra must be a JSON object, got {type(extra).__name__}")
