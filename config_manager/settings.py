"""``ManagerSettings``: every knob of the config manager, read once from ``CONFIG_MANAGER_*``.

Precedence (pydantic-settings' own, stated once here): explicit constructor arguments, then
environment variables, then a ``.env`` file is NOT read, then the defaults below. Paths left
unset are derived from ``data_dir`` following the project's data-directory layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config_lib import DEFAULT_MAX_BYTES, MqttEndpoint

if TYPE_CHECKING:
    from .dialects import Target

__all__ = ["ManagerSettings"]


class ManagerSettings(BaseSettings):
    """Settings of the config manager (env prefix ``CONFIG_MANAGER_``)."""

    model_config = SettingsConfigDict(env_prefix="CONFIG_MANAGER_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root of the data directory.")
    db_path: Path | None = Field(None, description="SQLite file (default data_dir/manager.db).")
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL database (postgresql://user:password@host:port/name) instead "
        "of the SQLite file db_path. Unset: SQLite, the embedded default.",
    )
    signing_key: Path | None = Field(None, description="Ed25519 key (data_dir/keys/signing.pem).")
    trust_store: Path | None = Field(None, description="Trusted keys (data_dir/keys/trust.pem).")
    master_key: Path | None = Field(None, description="Master key (data_dir/keys/master.key).")
    root_public_key: Path | None = Field(
        None, description="Root public key checking the keyset (data_dir/keys/root-public.pem)."
    )
    keyset: Path | None = Field(
        None, description="Root-signed keyset published to services (data_dir/keys/keyset.json)."
    )
    keys_poll_s: float = Field(
        2.0,
        gt=0,
        description="How often the signing key and keyset files are checked for a rotation.",
    )

    publisher_lease_s: float = Field(
        10.0,
        gt=0,
        description="PostgreSQL replicas: length of the publisher lease. The publishing "
        "replica renews it every third; when it dies another takes over within about this.",
    )

    mqtt_url: str = Field("mqtt://127.0.0.1:1883", description="Broker URL (mqtt:// or mqtts://).")
    mqtt_username: str | None = Field(
        None, description="MQTT user name (default: the URL's, else 'manager')."
    )
    mqtt_password: SecretStr | None = Field(None, description="MQTT password (or password file).")
    mqtt_password_file: Path | None = Field(
        None, description="File holding the MQTT password (data_dir/secrets/mqtt/<user>.password)."
    )
    mqtt_ca_file: Path | None = Field(None, description="CA bundle for mqtts://.")

    host: str = Field("127.0.0.1", description="HTTP listen address.")
    port: int = Field(8081, ge=0, le=65535, description="HTTP listen port.")
    dev_mode: bool = Field(False, description="Allow missing keys and placeholder secrets.")
    log_level: str = Field("INFO", description="Log level of `serve` (DEBUG, INFO, WARNING...).")

    max_body_bytes: int = Field(
        DEFAULT_MAX_BYTES, gt=0, description="Largest request body accepted (413 above)."
    )
    rate_limit_auth_failures: str = Field(
        "30/minute",
        description="Failed authentications allowed per client address (limits syntax, e.g. "
        "'30/minute' or '5/second;30/minute'; empty: no limit). Valid tokens never count.",
    )
    rate_limit_writes: str = Field(
        "6000/minute",
        description="Writes allowed per token (limits syntax; empty: no limit).",
    )

    @field_validator("rate_limit_auth_failures", "rate_limit_writes")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from limits import parse_many

        if value.strip():
            parse_many(value)  # ValueError: a clear settings error at start
        return value

    publish_wait_s: float = Field(
        2.0,
        ge=0,
        description="How long a write waits for the broker's PUBACK before answering 'pending'.",
    )
    mqtt_timeout_s: float = Field(5.0, gt=0, description="MQTT operation timeout.")
    reconnect_min_s: float = Field(0.2, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(5.0, gt=0, description="Longest reconnect delay.")
    outbox_batch: int = Field(200, ge=1, le=10_000, description="Envelopes published per batch.")
    events_heartbeat_s: float = Field(
        15.0, gt=0, description="Keep-alive comment on an idle /api/v1/events stream."
    )
    events_history: int = Field(
        1000, ge=1, description="Recent events kept for clients resuming with Last-Event-ID."
    )
    shutdown_grace_s: int = Field(
        3,
        ge=1,
        description="On shutdown, how long open requests (event streams never end by "
        "themselves) may run before they are cancelled.",
    )
    freshness_interval_s: float = Field(
        30.0,
        gt=0,
        description="How often the signed freshness records are re-signed and each current "
        "envelope republished (same bytes).",
    )
    freshness_expiry_s: float = Field(
        120.0,
        gt=0,
        description="Validity of a freshness record; services report 'stale' after it.",
    )
    storage_retry_min_s: float = Field(
        0.5, gt=0, description="First retry delay after a storage fault (disk full, I/O error)."
    )
    storage_retry_max_s: float = Field(
        5.0,
        gt=0,
        description="Longest retry delay after a storage fault; also the Retry-After of a 503.",
    )
    storage_min_free_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="Below this much free space on the database's file system /readyz is 503.",
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            from .dialects import PostgresUrl

            PostgresUrl(value.get_secret_value())  # ValueError: a clear settings error
            return value
        return None

    @model_validator(mode="after")
    def _check_freshness(self) -> Self:
        if self.freshness_expiry_s <= self.freshness_interval_s:
            raise ValueError("freshness_expiry_s must be longer than freshness_interval_s")
        return self

    @model_validator(mode="after")
    def _derive_paths(self) -> Self:
        if self.storage_retry_max_s < self.storage_retry_min_s:
            raise ValueError("storage_retry_max_s must be at least storage_retry_min_s")
        d = self.data_dir
        if self.db_path is None:
            self.db_path = d / "manager.db"
        if self.signing_key is None:
            self.signing_key = d / "keys" / "signing.pem"
        if self.trust_store is None:
            self.trust_store = d / "keys" / "trust.pem"
        if self.master_key is None:
            self.master_key = d / "keys" / "master.key"
        if self.root_public_key is None:
            self.root_public_key = d / "keys" / "root-public.pem"
        if self.keyset is None:
            self.keyset = d / "keys" / "keyset.json"
        return self

    # Typed accessors for the derived paths (always set after validation).
    @property
    def db_file(self) -> Path:
        assert self.db_path is not None
        return self.db_path

    @property
    def database(self) -> Target:
        """The manager's database: the PostgreSQL URL if set, else the SQLite file."""
        from .dialects import PostgresUrl

        if self.database_url is not None:
            return PostgresUrl(self.database_url.get_secret_value())
        return self.db_file

    @property
    def signing_key_file(self) -> Path:
        assert self.signing_key is not None
        return self.signing_key

    @property
    def trust_store_file(self) -> Path:
        assert self.trust_store is not None
        return self.trust_store

    @property
    def master_key_file(self) -> Path:
        assert self.master_key is not None
        return self.master_key

    @property
    def root_public_key_file(self) -> Path:
        assert self.root_public_key is not None
        return self.root_public_key

    @property
    def keyset_file(self) -> Path:
        assert self.keyset is not None
        return self.keyset

    def data_key_file(self, service: str) -> Path:
        return self.data_dir / "keys" / "services" / f"{service}.key"

    def mqtt_endpoint(self) -> MqttEndpoint:
        """Broker address and credentials.

        User: ``mqtt_username``, else the URL's, else ``manager``. Password:
        ``mqtt_password``, else ``mqtt_password_file``, else the URL's, else the file
        ``data_dir/secrets/mqtt/<user>.password`` written by ``init``.
        """
        url = MqttEndpoint.from_url(
            self.mqtt_url, ca_file=str(self.mqtt_ca_file) if self.mqtt_ca_file else None
        )
        user = self.mqtt_username or url.username or "manager"
        password: str | None
        if self.mqtt_password is not None:
            password = self.mqtt_password.get_secret_value()
        elif self.mqtt_password_file is not None:
            password = _read(self.mqtt_password_file)
        elif url.password is not None and (url.username in (None, user)):
            password = url.password
        else:
            password = _read(self.data_dir / "secrets" / "mqtt" / f"{user}.password")
        return url.with_credentials(user, password)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
