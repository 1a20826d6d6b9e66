"""How a worker process reaches the broker for its work topics: the fields both workers share.

Each worker subclasses :class:`WorkerMqttSettings` with its own env prefix (``STT_``,
``ORCHESTRATOR_``) and adds its own limits. Unset ``mqtt_url`` means: the same broker and
credentials as the worker's ConfigLibrary (``CONFIG_LIB_*``).
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from config_lib import MqttEndpoint, validate_name

__all__ = ["WorkerMqttSettings"]


class WorkerMqttSettings(BaseSettings):
    """Broker, identity and reconnect settings of a worker's work connection."""

    mqtt_url: str | None = Field(
        None,
        description="Broker URL for the work topics, mqtt://[user[:password]@]host[:port]; "
        "unset: the same broker and credentials as config_lib (CONFIG_LIB_MQTT_URL...).",
    )
    mqtt_username: str | None = Field(None, description="Overrides the URL's user name.")
    mqtt_password: SecretStr | None = Field(None, description="Overrides the URL's password.")
    mqtt_ca_file: str | None = Field(None, description="CA bundle for mqtts:// URLs.")
    instance_id: str | None = Field(
        None,
        description="Id of this worker instance (MQTT client id and topic level): 1-64 of "
        "A-Z a-z 0-9 _ -, starting with a letter or digit; unset: config_lib's.",
    )
    persistent_session: bool = Field(
        True,
        description="Keep the MQTT session across reconnects so QoS 1 messages sent "
        "meanwhile are queued by the broker.",
    )
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keep-alive interval (s).")
    reconnect_initial_s: float = Field(0.5, gt=0, description="First reconnect delay (s).")
    reconnect_max_s: float = Field(30.0, gt=0, description="Cap of the reconnect delay (s).")
    log_level: str = Field("INFO", description="Python logging level.")

    @field_validator("instance_id")
    @classmethod
    def _portable_instance_id(cls, value: str | None) -> str | None:
        # The project's one name rule (config_lib.validate_name), with its error text.
        return None if value is None else validate_name(value, "instance")

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
