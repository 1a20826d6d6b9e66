"""The manager's freshness records against a real broker and real ConfigLibrary instances.

Done-when items of issue 11 (freshness): a fresh instance never applies a replayed older
genuine envelope; a tampered or empty retained message with the manager up does not leave
a fresh instance on defaults; a frozen broker is reported ``stale`` within the expiry.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
from mgr_harness import RunningManager, put, watch
from mgr_models import DemoConfig

from config_lib import (
    ConfigChange,
    ConfigLibrary,
    LibrarySettings,
    envelope_digest,
    freshness_topic,
    updated_topic,
    verify_freshness,
)

FAST = {"freshness_interval_s": 0.5, "freshness_expiry_s": 2.0}


def _library(
    broker: Any, keys: Any, service: str, folder: Path, instance: str, **settings: Any
) -> ConfigLibrary[DemoConfig]:
    return ConfigLibrary(
        service=service,
        model=DemoConfig,
        settings=LibrarySettings(
            data_dir=folder,
            initial_wait=3.0,
            fresh_wait=settings.pop("fresh_wait", 10.0),
            reconnect_min_delay=0.05,
            reconnect_max_delay=0.5,
            **settings,
        ),
        trust=keys.trust,
        data_keys=[keys.data_key(service)],
        endpoint=broker.endpoint(service),
        instance_id=instance,
    )


async def _write_two_versions(
    manager: RunningManager, service: str, broker: Any, keys: Any
) -> bytes:
    """PUT v1 and v2; returns the exact bytes of v1 as the broker delivered them."""
    async with watch(broker, keys.trust, service) as watcher, manager.client("editor") as http:
        assert (await put(http, service, {"rate": 22050}, 0)).status_code == 200
        v1 = (await watcher.until_version(1))[-1].raw
        assert (await put(http, service, {"rate": 44100}, 1)).status_code == 200
        await watcher.until_version(2)
    return v1


async def test_manager_publishes_a_signed_record_naming_the_published_bytes(
    manager_factory: Callable[..., RunningManager], broker: Any, keys: Any, service_name: str
) -> None:
    manager = manager_factory(
        mqtt_url=broker.url("manager"), models={service_name: DemoConfig}, **FAST
    )
    await _write_two_versions(manager, service_name, broker, keys)
    async with aiomqtt.Client(**broker.endpoint("debug").client_kwargs()) as client:
        await client.subscribe(freshness_topic(service_name), qos=1)
        await client.subscribe(updated_topic(service_name), qos=1)
        envelopes: list[bytes] = []
        records = []
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                if message.topic.matches(updated_topic(service_name)):
                    envelopes.append(message.payload)
                else:
                    records.append(
                        verify_freshness(message.payload, trust=keys.trust, service=service_name)
                    )
                if len(records) >= 3 and len(envelopes) >= 3:
                    break
    # Every interval: the same envelope bytes again, and a newer record naming them.
    assert len(set(envelopes)) == 1
    assert all(r.version == 2 for r in records)
    assert all(r.envelope_sha256 == envelope_digest(envelopes[0]) for r in records)
    assert records[-1].issued_at > records[0].issued_at
    assert (records[0].expires_at - records[0].issued_at).total_seconds() == 2.0


async def test_fresh_instance_never_applies_a_replayed_older_genuine_envelope(
    manager_factory: Callable[..., RunningManager],
    broker: Any,
    keys: Any,
    service_name: str,
    tmp_path: Path,
) -> None:
    manager = manager_factory(
        mqtt_url=broker.url("manager"), models={service_name: DemoConfig}, **FAST
    )
    v1 = await _write_two_versions(manager, service_name, broker, keys)
    # Someone with broker access (not the key) replays the genuine v1 as the retained config.
    async with aiomqtt.Client(**broker.endpoint("manager").client_kwargs()) as attacker:
        await attacker.publish(updated_topic(service_name), v1, qos=1, retain=True)
    seen: list[int | None] = []
    library = _library(broker, keys, service_name, tmp_path / "a", "fresh-a")
    library.on_change(lambda change: seen.append(change.version))
    async with library as cfg:
        assert cfg.version == 2
        assert cfg.freshness == "fresh"
        assert cfg.current.rate == 44100
    assert 1 not in seen
    lkg = tmp_path / "a" / "lkg" / f"{service_name}.json"
    assert json.loads(lkg.read_bytes())["version"] == 2


async def test_tampered_or_empty_retained_config_does_not_leave_a_fresh_instance_on_defaults(
    manager_factory: Callable[..., RunningManager],
    broker: Any,
    keys: Any,
    service_name: str,
    tmp_path: Path,
) -> None:
    manager = manager_factory(
        mqtt_url=broker.url("manager"), models={service_name: DemoConfig}, **FAST
    )
    v1 = await _write_two_versions(manager, service_name, broker, keys)
    tampered = json.loads(v1)
    tampered["version"] = 99
    for n, payload in enumerate((json.dumps(tampered).encode(), b"")):
        async with aiomqtt.Client(**broker.endpoint("manager").client_kwargs()) as attacker:
            await attacker.publish(updated_topic(service_name), payload, qos=1, retain=True)
        async with _library(broker, keys, service_name, tmp_path / str(n), f"fresh-{n}") as cfg:
            assert cfg.source == "broker"
            assert cfg.version == 2
            assert cfg.freshness == "fresh"


async def test_frozen_broker_is_reported_stale_within_the_expiry(
    manager_factory: Callable[..., RunningManager],
    own_broker: Any,
    keys: Any,
    service_name: str,
    tmp_path: Path,
) -> None:
    manager = manager_factory(
        mqtt_url=own_broker.url("manager"), models={service_name: DemoConfig}, **FAST
    )
    await _write_two_versions(manager, service_name, own_broker, keys)
    library = _library(own_broker, keys, service_name, tmp_path / "lib", "frozen-1", keepalive=30)
    async with library as cfg:
        assert cfg.freshness == "fresh"
        record = cfg.freshness_record
        assert record is not None
        pid = own_broker.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # the broker is frozen: it neither closes nor delivers
        frozen_at = time.monotonic()
        try:
            await cfg.wait_for_freshness("stale", timeout=FAST["freshness_expiry_s"] + 2)
            took = time.monotonic() - frozen_at
        finally:
            os.kill(pid, signal.SIGCONT)
        assert took <= FAST["freshness_expiry_s"] + 0.5
        assert cfg.version == 2  # keeps running on its last good config
        # The broker thaws: the next record makes it fresh again without a restart.
        await cfg.wait_for_freshness("fresh", timeout=10)


async def test_instances_view_shows_freshness(
    manager_factory: Callable[..., RunningManager],
    broker: Any,
    keys: Any,
    service_name: str,
    tmp_path: Path,
) -> None:
    from mgr_harness import eventually

    manager = manager_factory(
        mqtt_url=broker.url("manager"), models={service_name: DemoConfig}, **FAST
    )
    await _write_two_versions(manager, service_name, broker, keys)
    changes: list[ConfigChange[DemoConfig]] = []
    library = _library(broker, keys, service_name, tmp_path / "v", "view-1")
    library.on_change(changes.append)
    async with library as cfg, manager.client("viewer") as http:
        assert cfg.freshness == "fresh"

        async def shown() -> bool:
            got = (await http.get(f"/api/v1/services/{service_name}/instances")).json()
            return any(i["instance"] == "view-1" and i["freshness"] == "fresh" for i in got)

        await eventually(shown)
