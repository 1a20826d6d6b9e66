"""Runtime settings of the orchestrator process (environment prefix ``ORCHESTRATOR_``).

These say *how the process runs* (broker, identity, timeouts). What it *does* (chunking)
is the signed, hot-applied :class:`~workers.orchestrator.config.OrchestratorConfig`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from config_lib import default_instance_id
from workers.common.settings import WorkerMqttSettings

__all__ = ["OrchestratorSettings"]


class OrchestratorSettings(WorkerMqttSettings):
    """Process settings from ``ORCHESTRATOR_*`` variables (e.g. ``ORCHESTRATOR_MQTT_URL``)."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="forbid")

    transcript_timeout_s: float = Field(
        120.0,
        gt=0,
        description="After a session's input ended, how long to wait for the STT worker's "
        "last transcripts before publishing the final transcript without them (s).",
    )
    sweep_interval_s: float = Field(
        0.5, gt=0, description="How often idle sessions and overdue transcripts are checked."
    )
    max_sessions: int = Field(256, ge=1, description="Concurrent sessions accepted.")
    max_pending_messages: int = Field(
        1024, ge=1, description="Messages received but not processed before reading waits."
    )
    max_input_bytes: int = Field(
        4_194_304, ge=1024, description="Largest input audio frame accepted (bytes)."
    )

    def resolved_instance_id(self) -> str:
        """This instance's id: the setting, else config_lib's ``<host>-<program>``."""
        return self.instance_id or default_instance_id()
