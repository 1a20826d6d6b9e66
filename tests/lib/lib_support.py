"""Helpers shared by the config_lib tests: a demo model, envelope builders, MQTT helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from config_lib import (
    AppliedReport,
    ConfigLibrary,
    DataKey,
    LibrarySettings,
    MqttEndpoint,
    SigningKey,
    applied_topic,
    encrypt_secrets,
    sign_envelope,
    updated_topic,
)

SECRET = "s3cr3t-Plaintext-Zebra"  # a value that must never appear outside cfg.current


class Vad(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    min_silence_ms: int = Field(default=300, ge=0)


class DemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    beam_size: int = Field(default=5, ge=1, le=20)
    language: str = "en"
    vad: Vad = Vad()
    api_key: SecretStr = SecretStr("default-key")


class RequiredConfig(BaseModel):
    """A model with a required field: defaults alone do not validate."""

    endpoint: str
    retries: int = 3


def demo_library(
    keys: Any,
    service: str,
    settings: LibrarySettings,
    endpoint: MqttEndpoint | None = None,
) -> ConfigLibrary[DemoConfig]:
    """The library under test: DemoConfig, the test keys, and ``endpoint`` (None: no broker)."""
    return ConfigLibrary(
        service=service,
        model=DemoConfig,
        settings=settings,
        trust=keys.trust,
        data_keys=[keys.data_key(service)],
        endpoint=endpoint,
    )


def envelope(
    service: str,
    version: int,
    *,
    signing: SigningKey,
    data_key: DataKey,
    epoch: int = 1,
    config: BaseModel | None = None,
    **values: Any,
) -> bytes:
    """A signed envelope for ``service`` whose secrets are encrypted with ``data_key``."""
    model = config if config is not None else DemoConfig(**values)
    payload = encrypt_secrets(model, service=service, key=data_key)
    return sign_envelope(service=service, version=version, epoch=epoch, config=payload, key=signing)


@asynccontextmanager
async def mqtt_client(endpoint: MqttEndpoint) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(**endpoint.client_kwargs()) as client:
        yield client


async def publish_config(client: aiomqtt.Client, service: str, raw: bytes) -> None:
    await client.publish(updated_topic(service), raw, qos=1, retain=True)


class ReportWatcher:
    """Collects applied reports of one instance from a subscribed client."""

    def __init__(self, client: aiomqtt.Client, service: str, instance: str) -> None:
        self.client = client
        self.topic = applied_topic(service, instance)
        self.raw: list[bytes] = []

    async def start(self) -> None:
        await self.client.subscribe(self.topic, qos=1)

    async def next_matching(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - a bounded wait for the next report
        **expected: Any,
    ) -> AppliedReport:
        """The next report whose fields equal ``expected`` (earlier ones are skipped)."""

        async def find() -> AppliedReport:
            async for message in self.client.messages:
                if not message.topic.matches(self.topic):
                    continue
                data = message.payload
                assert isinstance(data, bytes)
                self.raw.append(data)
                report = AppliedReport.from_bytes(data)
                if all(getattr(report, k) == v for k, v in expected.items()):
                    return report
            raise AssertionError("message stream ended")  # pragma: no cover

        return await asyncio.wait_for(find(), timeout)


def signed(keys: Any, service: str, version: int, **values: Any) -> bytes:
    """:func:`envelope` signed with the test keys and ``service``'s own data key."""
    return envelope(
        service, version, signing=keys.signing, data_key=keys.data_key(service), **values
    )


def report_json(data: bytes) -> dict[str, Any]:
    doc = json.loads(data)
    assert isinstance(doc, dict)
    return doc


def read_bytes(path: Path) -> bytes:
    """Blocking read kept out of async test bodies' sight (files are tiny)."""
    return path.read_bytes()


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
