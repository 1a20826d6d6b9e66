"""Shared by the workers: audio chunk framing, topic names, the safe-name rule, MQTT settings."""

from workers.common.chunks import (
    BYTES_PER_SAMPLE,
    DEFAULT_MAX_HEADER_BYTES,
    MAGIC,
    AudioChunk,
    ChunkDecodeError,
    decode_chunk,
    encode_chunk,
)
from workers.common.names import InvalidNameError, validate_session
from workers.common.settings import WorkerMqttSettings
from workers.common.topics import (
    AUDIO_CHUNKS_PREFIX,
    AUDIO_INPUT_PREFIX,
    FINAL_TRANSCRIPTS_PREFIX,
    STT_ERRORS_PREFIX,
    STT_TRANSCRIPTS_PREFIX,
    UNKNOWN_SESSION,
    audio_chunks_topic,
    audio_input_topic,
    final_transcripts_topic,
    session_from_topic,
    stt_errors_topic,
    stt_transcripts_topic,
    wildcard,
)

__all__ = [
    "AUDIO_CHUNKS_PREFIX",
    "AUDIO_INPUT_PREFIX",
    "BYTES_PER_SAMPLE",
    "DEFAULT_MAX_HEADER_BYTES",
    "FINAL_TRANSCRIPTS_PREFIX",
    "MAGIC",
    "STT_ERRORS_PREFIX",
    "STT_TRANSCRIPTS_PREFIX",
    "UNKNOWN_SESSION",
    "AudioChunk",
    "ChunkDecodeError",
    "InvalidNameError",
    "WorkerMqttSettings",
    "audio_chunks_topic",
    "audio_input_topic",
    "decode_chunk",
    "encode_chunk",
    "final_transcripts_topic",
    "session_from_topic",
    "stt_errors_topic",
    "stt_transcripts_topic",
    "validate_session",
    "wildcard",
]
