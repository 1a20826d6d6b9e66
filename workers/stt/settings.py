"""Runtime settings of the STT worker process (environment prefix ``STT_``).

These say *how the process runs* (broker, identity, limits). What it *does*
(model, decoding, chunk limits) is the signed, hot-applied :class:`SttConfig`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from workers.common.settings import WorkerMqttSettings

__all__ = ["SttWorkerSettings"]


class SttWorkerSettings(WorkerMqttSettings):
    """Process settings, read from ``STT_*`` environment variables (e.g. ``STT_MQTT_URL``)."""

    model_config = SettingsConfigDict(env_prefix="STT_", extra="forbid")

    max_pending_chunks: int = Field(
        256, ge=1, description="Chunks received but not yet transcribed before receiving waits."
    )
    max_payload_bytes: int = Field(
        1_048_576, ge=1024, description="Largest chunk payload accepted (bytes)."
    )
    max_header_bytes: int = Field(16_384, ge=64, description="Largest chunk JSON header (bytes).")
