"""Runtime settings of the library itself (not of the service's config).

Read from environment variables with the prefix ``CONFIG_LIB_`` (``CONFIG_LIB_MQTT_URL``,
``CONFIG_LIB_LKG_DIR``...), or passed in code. Built when a :class:`ConfigLibrary` is
created, never at import time. Every path left unset defaults to the project's data
directory layout under ``data_dir`` (``CONFIG_LIB_DATA_DIR``, default ``./data``).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._envelope import DEFAULT_MAX_BYTES, Limits
from ._exceptions import KeyFileError
from ._keys import DataKey, TrustStore, load_data_key
from ._mqtt import MqttEndpoint
from ._topics import sanitize_name, validate_name

__all__ = ["LibrarySettings", "default_instance_id"]


def _program_name() -> str:
    """The running program: the module for ``python -m pkg.mod``, else the script's name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return str(spec.name).removesuffix(".__main__").rsplit(".", 1)[-1]
    return Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "python"


def default_instance_id() -> str:
    """``<hostname>-<program>``: stable for one program on one host, safe as a topic level.

    Only the host's first label is used (``web1`` of ``web1.example.com``); whatever is
    left outside the name alphabet becomes ``-`` (see :func:`config_lib.sanitize_name`).
    """
    host = platform.node().split(".")[0] or "host"
    return sanitize_name(f"{host}-{_program_name()}", "instance")


class LibrarySettings(BaseSettings):
    """How a service reaches the broker, where its keys and LKG file live, and limits."""

    model_config = SettingsConfigDict(env_prefix="CONFIG_LIB_", extra="ignore", frozen=True)

    data_dir: Path = Path("data")
    mqtt_url: str | None = Field(
        default="mqtt://127.0.0.1:1883",
        description="Broker URL; empty/None runs without a broker (LKG, env and defaults only).",
    )
    mqtt_username: str | None = Field(
        default=None, description="Defaults to the user in the URL, else the service name."
    )
    mqtt_password: SecretStr | None = None
    mqtt_password_file: Path | None = Field(
        default=None, description="Defaults to <data_dir>/secrets/mqtt/<user>.password if present."
    )
    mqtt_ca_file: Path | None = None
    trust_store: Path | None = Field(
        default=None, description="PEM public keys; defaults to <data_dir>/keys/trust.pem."
    )
    root_key: Path | None = Field(
        default=None,
        description="The root public key(s) (PEM) that sign keysets; defaults to "
        "<data_dir>/keys/root-public.pem if present. With a root key the signing keys "
        "trusted are exactly those of the keyset in force (the trust store is not read).",
    )
    data_key: Path | None = Field(
        default=None,
        description="The service's data key; defaults to <data_dir>/keys/services/<service>.key.",
    )
    lkg_dir: Path | None = Field(default=None, description="Defaults to <data_dir>/lkg.")
    lkg_enabled: bool = True
    instance_id: str | None = Field(
        default=None, description="Defaults to <hostname>-<program name>."
    )
    max_payload_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024)
    initial_wait: float = Field(
        default=1.5, ge=0, description="Seconds startup waits for the broker's retained config."
    )
    reconnect_min_delay: float = Field(default=0.2, gt=0)
    reconnect_max_delay: float = Field(default=10.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    keepalive: int = Field(default=30, ge=5)
    fresh_wait: float = Field(
        default=40.0,
        ge=0,
        description="Seconds startup without a signed config (or with require_fresh) waits "
        "for a config matching a signed freshness record; longer than the manager's "
        "freshness interval so that a replaced retained message is healed in time.",
    )
    require_fresh: bool = Field(
        default=False,
        description="Refuse to start (NoConfig) unless the config is fresh when the wait ends.",
    )
    freshness_skew: float = Field(
        default=30.0,
        ge=0,
        description="Allowed clock difference (s): records and envelopes dated later than "
        "now + skew are refused; an envelope named by a record may be dated up to skew "
        "after the record.",
    )
    env_fallback: bool = Field(
        default=True, description="Read CONFIG_<SERVICE>_* variables when no signed config exists."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must be >= reconnect_min_delay")
        if self.instance_id is not None:
            validate_name(self.instance_id, "instance")
        return self

    @field_validator("mqtt_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        return None if value == "" else value

    # -- derived values -------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        return Limits(max_bytes=self.max_payload_bytes)

    def resolved_instance_id(self) -> str:
        return self.instance_id or default_instance_id()

    def lkg_path(self, service: str) -> Path | None:
        if not self.lkg_enabled:
            return None
        folder = self.lkg_dir if self.lkg_dir is not None else self.data_dir / "lkg"
        return folder / f"{validate_name(service)}.json"

    def report_key_path(self, service: str, instance: str) -> Path | None:
        """The instance's report-signing key, beside the LKG file (None: LKG disabled)."""
        lkg = self.lkg_path(service)
        if lkg is None:
            return None
        return lkg.with_name(f"{validate_name(service)}.{validate_name(instance, 'instance')}.key")

    def trust_path(self) -> Path:
        return self.trust_store or self.data_dir / "keys" / "trust.pem"

    def load_trust(self) -> TrustStore:
        return TrustStore.load(self.trust_path())

    def root_path(self) -> Path | None:
        """The root public key file, or None (no keyset: the trust store file is used)."""
        if self.root_key is not None:
            return self.root_key
        default = self.data_dir / "keys" / "root-public.pem"
        return default if default.exists() else None

    def keyset_path(self, service: str) -> Path | None:
        """Where the keyset in force is kept: beside the LKG file (None without LKG)."""
        lkg = self.lkg_path(service)
        return None if lkg is None else lkg.with_name(f"{validate_name(service)}.keyset.json")

    def data_key_path(self, service: str) -> Path:
        return (
            self.data_key or self.data_dir / "keys" / "services" / f"{validate_name(service)}.key"
        )

    def load_data_keys(self, service: str) -> list[DataKey]:
        """The service's data key, or none if no file is configured and the default is absent.

        After a master-key rotation the previous key sits beside it as
        ``<name>.previous.key`` (the LKG file may still hold secrets encrypted with it);
        it is loaded too.
        """
        path = self.data_key_path(service)
        if self.data_key is None and not path.exists():
            return []
        keys = [load_data_key(path, service)]
        previous = path.with_name(f"{path.stem}.previous.key")
        if previous.exists():
            keys.append(load_data_key(previous, service))
        return keys

    def endpoint(self, service: str) -> MqttEndpoint | None:
        """Broker endpoint; the user name defaults to the service name. None: no broker."""
        if not self.mqtt_url:
            return None
        ca = str(self.mqtt_ca_file) if self.mqtt_ca_file else None
        ep = MqttEndpoint.from_url(self.mqtt_url, username=self.mqtt_username, ca_file=ca)
        user = ep.username or service
        password = self.mqtt_password.get_secret_value() if self.mqtt_password else ep.password
        if password is None:
            default_file = self.data_dir / "secrets" / "mqtt" / f"{user}.password"
            file = self.mqtt_password_file or default_file
            if self.mqtt_password_file is not None or file.exists():
                try:
                    password = file.read_text().strip()
                except OSError as exc:
                    raise KeyFileError(
                        f"cannot read MQTT password file {file}: {exc.strerror}"
                    ) from None
        return ep.with_credentials(user, password)
