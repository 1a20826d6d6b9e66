"""MQTT topic names shared by the orchestrator and the STT worker.

| topic                          | payload                               | publisher    |
|--------------------------------|---------------------------------------|--------------|
| ``audio/input/<session>``      | binary audio chunk (live input)       | audio source |
| ``audio/chunks/<session>``     | binary audio chunk (to transcribe)    | orchestrator |
| ``stt/transcripts/<session>``  | JSON transcript of one chunk          | STT worker   |
| ``stt/errors/<session>``       | JSON error event for a refused chunk  | STT worker   |
| ``transcripts/final/<session>``| JSON merged, growing transcript       | orchestrator |

Every builder validates the session with :func:`validate_session`, so a topic
built here never contains a wildcard or an extra level.
"""

from __future__ import annotations

from typing import Final

from workers.common.names import InvalidNameError, validate_session

AUDIO_INPUT_PREFIX: Final = "audio/input"
AUDIO_CHUNKS_PREFIX: Final = "audio/chunks"
STT_TRANSCRIPTS_PREFIX: Final = "stt/transcripts"
STT_ERRORS_PREFIX: Final = "stt/errors"
FINAL_TRANSCRIPTS_PREFIX: Final = "transcripts/final"

UNKNOWN_SESSION: Final = "_unknown"
"""Session level used for error events when the incoming topic has no valid session."""


def _build(prefix: str, session: str) -> str:
    return f"{prefix}/{validate_session(session)}"


def audio_input_topic(session: str) -> str:
    """Live audio input for a session (same framing as chunks)."""
    return _build(AUDIO_INPUT_PREFIX, session)


def audio_chunks_topic(session: str) -> str:
    """Chunks sent to the STT worker."""
    return _build(AUDIO_CHUNKS_PREFIX, session)


def stt_transcripts_topic(session: str) -> str:
    """Per-chunk transcripts published by the STT worker."""
    return _build(STT_TRANSCRIPTS_PREFIX, session)


def stt_errors_topic(session: str) -> str:
    """Error events published by the STT worker for refused chunks."""
    return _build(STT_ERRORS_PREFIX, session)


def final_transcripts_topic(session: str) -> str:
    """Merged transcript published by the orchestrator."""
    return _build(FINAL_TRANSCRIPTS_PREFIX, session)


def wildcard(prefix: str) -> str:
    """Subscription filter for every session under ``prefix`` (e.g. ``audio/chunks/+``)."""
    return f"{prefix}/+"


def session_from_topic(prefix: str, topic: str) -> str:
    """Extract and validate the session level of ``topic`` under ``prefix``.

    Raises :class:`InvalidNameError` if the topic is not ``<prefix>/<safe name>``.
    """
    head = prefix + "/"
    if not topic.startswith(head):
        raise InvalidNameError(f"topic {topic!r} is not under {prefix!r}")
    return validate_session(topic[len(head) :])
