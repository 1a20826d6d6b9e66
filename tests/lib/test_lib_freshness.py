"""Signed freshness against a real mosquitto: replays at startup, expiry, require_fresh."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import pytest
from lib_support import ReportWatcher, demo_library, mqtt_client, publish_config, signed

from config_lib import (
    LibrarySettings,
    NoConfig,
    envelope_digest,
    freshness_topic,
    sign_freshness,
)


@pytest.fixture
async def debug_client(broker: Any) -> AsyncIterator[aiomqtt.Client]:
    async with mqtt_client(broker.endpoint("debug")) as client:
        yield client


def _record(keys: Any, service: str, version: int, raw: bytes | None, **kw: Any) -> bytes:
    return sign_freshness(
        service=service,
        epoch=1,
        version=version,
        envelope_sha256=envelope_digest(raw) if raw is not None else None,
        key=keys.signing,
        expires_in=kw.pop("expires_in", timedelta(seconds=120)),
        **kw,
    )


async def publish_record(client: aiomqtt.Client, service: str, raw: bytes) -> None:
    await client.publish(freshness_topic(service), raw, qos=1, retain=True)


async def test_fresh_instance_never_applies_a_replayed_older_genuine_envelope(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
) -> None:
    """The broker serves a genuine v2 (replayed) while the record names v23: refused."""
    old = signed(keys, service_name, 2, beam_size=2)
    current = signed(keys, service_name, 23, beam_size=7)
    await publish_config(manager_client, service_name, old)
    await publish_record(manager_client, service_name, _record(keys, service_name, 23, current))
    settings = lib_settings.model_copy(update={"fresh_wait": 1.0})
    started = time.monotonic()
    async with demo_library(keys, service_name, settings, broker.endpoint(service_name)) as cfg:
        waited = time.monotonic() - started
        assert cfg.version is None, "the replayed v2 must not be applied"
        assert cfg.source == "defaults"
        assert cfg.freshness == "stale"
        assert cfg.metrics.rejected["stale"] == 1
        assert waited >= 1.0  # it waited for a config matching the record
        # The manager heals the retained message: v23 is applied and fresh.
        await publish_config(manager_client, service_name, current)
        await cfg.wait_for_version(23, timeout=5)
        await cfg.wait_for_freshness("fresh", timeout=5)
        assert cfg.current.beam_size == 7
        assert cfg.last_report is not None
        assert cfg.last_report.freshness == "fresh"
    lkg = (settings.lkg_path(service_name) or pytest.fail("no LKG path")).read_bytes()
    assert lkg == current


async def test_fresh_instance_waits_for_the_current_config_then_is_fresh(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
) -> None:
    """Record first, the retained config later (within the wait): startup ends fresh."""
    current = signed(keys, service_name, 4, beam_size=4)
    stale = signed(keys, service_name, 3, beam_size=3)
    await publish_config(manager_client, service_name, stale)
    await publish_record(manager_client, service_name, _record(keys, service_name, 4, current))
    settings = lib_settings.model_copy(update={"fresh_wait": 10.0})
    library = demo_library(keys, service_name, settings, broker.endpoint(service_name))

    async def heal_when_waiting() -> None:
        # The library is subscribed once it counted the stale v3 as refused.
        while library.metrics.rejected["stale"] == 0:  # noqa: ASYNC110 - bounded by wait_for
            await asyncio.sleep(0.01)
        await publish_config(manager_client, service_name, current)

    healer = asyncio.create_task(heal_when_waiting())
    async with library as cfg:
        await asyncio.wait_for(healer, 5)
        assert cfg.version == 4
        assert cfg.freshness == "fresh"
        assert cfg.source == "broker"


async def test_tampered_retained_config_keeps_waiting_not_on_defaults_while_record_is_fresh(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
) -> None:
    current = signed(keys, service_name, 5)
    doc = json.loads(current)
    doc["config"]["beam_size"] = 19
    await publish_config(manager_client, service_name, json.dumps(doc).encode())
    await publish_record(manager_client, service_name, _record(keys, service_name, 5, current))
    settings = lib_settings.model_copy(update={"fresh_wait": 0.5, "require_fresh": True})
    with pytest.raises(NoConfig, match="require_fresh"):
        async with demo_library(keys, service_name, settings, broker.endpoint(service_name)):
            pytest.fail("started without a fresh config")


async def test_version_zero_record_makes_defaults_fresh_at_once(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
) -> None:
    await publish_record(manager_client, service_name, _record(keys, service_name, 0, None))
    settings = lib_settings.model_copy(update={"fresh_wait": 30.0, "require_fresh": True})
    started = time.monotonic()
    async with demo_library(keys, service_name, settings, broker.endpoint(service_name)) as cfg:
        assert time.monotonic() - started < 10  # did not sit out the 30 s wait
        assert cfg.source == "defaults"
        assert cfg.freshness == "fresh"


async def test_expired_record_reports_stale_once_and_keeps_the_config(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="config_lib")
    current = signed(keys, service_name, 6, beam_size=6)
    await publish_config(manager_client, service_name, current)
    record = _record(keys, service_name, 6, current, expires_in=timedelta(seconds=4))
    await publish_record(manager_client, service_name, record)
    settings = lib_settings.model_copy(update={"fresh_wait": 5.0})
    async with demo_library(keys, service_name, settings, broker.endpoint(service_name)) as cfg:
        assert cfg.freshness == "fresh"
        reports = ReportWatcher(debug_client, service_name, cfg.instance_id)
        await reports.start()
        kept = cfg.freshness_record
        assert kept is not None
        await cfg.wait_for_freshness("stale", timeout=6)
        late = datetime.now(UTC) - kept.expires_at
        assert timedelta(0) <= late < timedelta(seconds=1)  # at the record's expiry
        assert cfg.version == 6
        assert cfg.current.beam_size == 6
        report = await reports.next_matching(freshness="stale")
        assert report.status == "applied"
        assert report.version == 6
        # Messages while stale do not log again: a duplicate of the config in force.
        before = cfg.metrics.received
        await publish_config(manager_client, service_name, current)
        await cfg.wait_for_received(before + 1, timeout=5)
        assert cfg.metrics.duplicate == 1
    stale_lines = [r for r in caplog.records if "config is stale" in r.getMessage()]
    assert len(stale_lines) == 1


async def test_forged_or_replayed_records_are_counted_and_refused(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
) -> None:
    from config_lib import SigningKey

    current = signed(keys, service_name, 9)
    await publish_config(manager_client, service_name, current)
    await publish_record(manager_client, service_name, _record(keys, service_name, 9, current))
    settings = lib_settings.model_copy(update={"fresh_wait": 5.0})
    async with demo_library(keys, service_name, settings, broker.endpoint(service_name)) as cfg:
        assert cfg.freshness == "fresh"
        forged = sign_freshness(
            service=service_name, epoch=1, version=50, envelope_sha256="a" * 64,
            key=SigningKey.generate(), expires_in=timedelta(seconds=60),
        )  # fmt: skip
        await publish_record(manager_client, service_name, forged)
        await publish_record(manager_client, service_name, b"{not json")
        await publish_record(manager_client, service_name, _record(keys, service_name, 9, current))

        async with asyncio.timeout(5):
            while cfg.metrics.records_received < 4:  # noqa: ASYNC110 - bounded wait
                await asyncio.sleep(0.01)
        assert cfg.metrics.records_rejected["unknown_key"] == 1
        assert cfg.metrics.records_rejected["malformed"] == 1
        assert cfg.freshness == "fresh"
        assert cfg.freshness_record is not None
        assert cfg.freshness_record.version == 9
