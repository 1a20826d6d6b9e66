"""How to reach the broker: one parser for MQTT URLs, one place that builds client options."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["MqttEndpoint"]

_SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883), "ssl": (True, 8883)}


@dataclass(frozen=True)
class MqttEndpoint:
    """Broker address and credentials. ``str()`` never shows the password."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> MqttEndpoint:
        """Parse ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS).

        Explicit ``username``/``password`` arguments win over those in the URL.
        """
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
        tls, default_port = _SCHEMES[parts.scheme]
        try:
            port = parts.port or default_port
        except ValueError:
            raise ValueError(f"MQTT URL has an invalid port: {url!r}") from None
        if not parts.hostname:
            raise ValueError(f"MQTT URL has no host: {url!r}")
        return cls(
            host=parts.hostname,
            port=port,
            username=username or (unquote(parts.username) if parts.username else None),
            password=password or (unquote(parts.password) if parts.password else None),
            tls=tls,
            ca_file=ca_file,
        )

    def with_credentials(self, username: str | None, password: str | None) -> MqttEndpoint:
        return replace(self, username=username, password=password)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``aiomqtt.Client`` (host, port, credentials, TLS)."""
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
        }
        if self.tls:
            kwargs["tls_context"] = ssl.create_default_context(cafile=self.ca_file)
        return kwargs

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"
