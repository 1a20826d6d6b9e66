"""Runtime settings of the STT worker process (environment prefix ``STT_``).

These say *how the process runs* (broker, identity, limits). What it *does*
(model, decoding, chunk limits) is the signed, hot-applied :class:`SttConfig`.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from config_lib import MqttEndpoint

__all__ = ["SttWorkerSettings"]


class SttWorkerSettings(BaseSettings):
    """Process settings, read from ``STT_*`` environment variables (e.g. ``STT_MQTT_URL``)."""

    model_config = SettingsConfigDict(env_prefix="STT_", extra="forbid")

    mqtt_url: str | None = Field(
        None,
        description=(
            "Broker URL for audio and transcripts, mqtt://[user[:password]@]host[:port]; "
            "unset: the same broker and credentials as config_lib (CONFIG_LIB_MQTT_URL...)."
        ),
    )
    mqtt_username: str | None = Field(None, description="Overrides the URL's user name.")
    mqtt_password: SecretStr | None = Field(None, description="Overrides the URL's password.")
    mqtt_ca_file: str | None = Field(None, description="CA bundle for mqtts:// URLs.")
    instance_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Id of this worker instance; unset: config_lib's instance id.",
    )
    persistent_session: bool = Field(
        True,
        description="Keep the MQTT session across reconnects so chunks sent meanwhile are queued.",
    )
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keep-alive interval (s).")
    reconnect_initial_s: float = Field(0.5, gt=0, description="First reconnect delay (s).")
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap of the reconnect delay (s).")
    max_pending_chunks: int = Field(
        256, ge=1, description="Chunks received but not yet transcribed before receiving waits."
    )
    max_payload_bytes: int = Field(
        1_048_576, ge=1024, description="Largest chunk payload accepted (bytes)."
    )
    max_header_bytes: int = Field(16_384, ge=64, description="Largest chunk JSON header (bytes).")
    log_level: str = Field("INFO", description="Python logging level.")

    def endpoint(self) -> MqttEndpoint | None:
        """The broker endpoint (credentials from the URL unless overridden); None if unset."""
        if not self.mqtt_url:
            return None
        password = self.mqtt_password.get_secret_value() if self.mqtt_password else None
        return MqttEndpoint.from_url(
            self.mqtt_url,
            username=self.mqtt_username,
            password=password,
            ca_file=self.mqtt_ca_file,
        )
