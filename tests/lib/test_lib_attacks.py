"""One test per attack through the real broker: the service keeps its previous config,
the rejection counter for that reason moves and a `rejected` report is published."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
import pytest
from lib_support import (
    DemoConfig,
    ReportWatcher,
    demo_library,
    envelope,
    mqtt_client,
    publish_config,
    signed,
)

from config_lib import (
    ConfigLibrary,
    LibrarySettings,
    SigningKey,
    encrypt_secrets,
    sign_envelope,
)


@dataclass
class Running:
    cfg: ConfigLibrary[DemoConfig]
    publisher: aiomqtt.Client
    reports: ReportWatcher
    service: str
    keys: Any

    def signed(self, version: int, service: str | None = None, **values: Any) -> bytes:
        svc = service or self.service
        return envelope(
            svc, version, signing=self.keys.signing, data_key=self.keys.data_key(svc), **values
        )

    async def offer(self, raw: bytes, reason: str) -> None:
        """Publish ``raw``; assert it was rejected for ``reason`` and nothing changed."""
        before_config, before_version = self.cfg.current, self.cfg.version
        before_count = self.cfg.metrics.rejected[reason]
        handled = self.cfg.metrics.received
        applied = self.cfg.metrics.applied
        await publish_config(self.publisher, self.service, raw)
        await self.cfg.wait_for_received(handled + 1, timeout=5)
        assert self.cfg.metrics.rejected[reason] == before_count + 1
        assert self.cfg.current is before_config
        assert self.cfg.version == before_version
        assert self.cfg.metrics.applied == applied
        report = await self.reports.next_matching(status="rejected")
        assert report.reason == reason
        assert report.version == before_version
        # The subscription survived the attack: the next genuine update is applied.
        following = (before_version or 0) + 10
        await publish_config(self.publisher, self.service, self.signed(following, beam_size=11))
        assert (await self.cfg.wait_for_version(following, timeout=5)).beam_size == 11


@pytest.fixture
async def running(
    broker: Any, keys: Any, service_name: str, lib_settings: LibrarySettings
) -> AsyncIterator[Running]:
    async with (
        mqtt_client(broker.endpoint("manager")) as publisher,
        mqtt_client(broker.endpoint("debug")) as watcher,
    ):
        v1 = signed(keys, service_name, 1, beam_size=3)
        await publish_config(publisher, service_name, v1)
        reports = ReportWatcher(watcher, service_name, lib_settings.resolved_instance_id())
        await reports.start()
        async with demo_library(
            keys, service_name, lib_settings, broker.endpoint(service_name)
        ) as cfg:
            assert cfg.version == 1
            assert cfg.current.beam_size == 3
            await reports.next_matching(status="applied", version=1)
            yield Running(cfg, publisher, reports, service_name, keys)


async def test_tampered_payload_is_rejected(running: Running) -> None:
    raw = running.signed(2, beam_size=7).replace(b'"beam_size": 7', b'"beam_size": 8')
    await running.offer(raw, "bad_signature")


async def test_unsigned_envelope_is_rejected(running: Running) -> None:
    doc = json.loads(running.signed(2, beam_size=7))
    del doc["signature"]
    await running.offer(json.dumps(doc).encode(), "unsigned")


async def test_envelope_signed_by_unknown_key_is_rejected(running: Running) -> None:
    raw = envelope(
        running.service,
        2,
        signing=SigningKey.generate(),
        data_key=running.keys.data_key(running.service),
        beam_size=7,
    )
    await running.offer(raw, "unknown_key")


async def test_replay_of_older_version_is_rejected(running: Running) -> None:
    old = running.signed(2, beam_size=6)
    newer = running.signed(3, beam_size=9)
    await publish_config(running.publisher, running.service, newer)
    await running.cfg.wait_for_version(3, timeout=5)
    assert running.cfg.current.beam_size == 9
    await running.offer(old, "rollback")


async def test_message_for_another_service_on_this_topic_is_rejected(running: Running) -> None:
    raw = running.signed(2, service=running.service + "-other", beam_size=7)
    await running.offer(raw, "service_mismatch")


async def test_oversized_payload_is_rejected(running: Running) -> None:
    raw = running.signed(2, beam_size=7)
    padded = raw[:-1] + b" " * (running.cfg.settings.max_payload_bytes + 1) + raw[-1:]
    await running.offer(padded, "too_large")


async def test_malformed_json_is_rejected(running: Running) -> None:
    await running.offer(b'{"format": 1, "service": ', "malformed")


async def test_signed_config_failing_validation_is_rejected(running: Running) -> None:
    values = encrypt_secrets(
        DemoConfig(), service=running.service, key=running.keys.data_key(running.service)
    )
    values["beam_size"] = 999
    raw = sign_envelope(
        service=running.service, version=2, epoch=1, config=values, key=running.keys.signing
    )
    await running.offer(raw, "invalid_config")
