"""Runtime settings of the orchestrator process (environment prefix ``ORCHESTRATOR_``).

These say *how the process runs* (broker, identity, timeouts). What it *does* (chunking)
is the signed, hot-applied :class:`~workers.orchestrator.config.OrchestratorConfig`.
"""

from __future__ import annotations

import socket

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from config_lib import MqttEndpoint

__all__ = ["OrchestratorSettings", "default_instance_id"]


def default_instance_id() -> str:
    """``<hostname>-orchestrator``, made safe for a topic level."""
    host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())
    return f"{host[:48] or 'host'}-orchestrator"


class OrchestratorSettings(BaseSettings):
    """Process settings from ``ORCHESTRATOR_*`` variables (e.g. ``ORCHESTRATOR_MQTT_URL``)."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="forbid")

    mqtt_url: str | None = Field(
        None,
        description="Broker URL, mqtt://[user[:password]@]host[:port]. Unset: the same broker "
        "and credentials as the ConfigLibrary (CONFIG_LIB_MQTT_URL, user 'orchestrator', "
        "password file under CONFIG_LIB_DATA_DIR).",
    )
    mqtt_username: str | None = Field(None, description="Overrides the URL's user name.")
    mqtt_password: SecretStr | None = Field(None, description="Overrides the URL's password.")
    mqtt_ca_file: str | None = Field(None, description="CA bundle for mqtts:// URLs.")
    instance_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Stable id of this instance (MQTT client id, applied reports). Unset: "
        "the ConfigLibrary's (CONFIG_LIB_INSTANCE_ID, else <host>-orchestrator).",
    )
    persistent_session: bool = Field(
        True, description="Keep the MQTT session across reconnects (QoS 1 messages queued)."
    )
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keep-alive interval (s).")
    reconnect_initial_s: float = Field(0.5, gt=0, description="First reconnect delay (s).")
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap of the reconnect delay (s).")
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
    log_level: str = Field("INFO", description="Python logging level.")

    def resolved_instance_id(self) -> str:
        return self.instance_id or default_instance_id()

    def endpoint(self) -> MqttEndpoint | None:
        """The broker endpoint, credentials from the URL unless overridden; None if unset."""
        if not self.mqtt_url:
            return None
        password = self.mqtt_password.get_secret_value() if self.mqtt_password else None
        return MqttEndpoint.from_url(
            self.mqtt_url,
            username=self.mqtt_username,
            password=password,
            ca_file=self.mqtt_ca_file,
        )
