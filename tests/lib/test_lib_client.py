"""ConfigLibrary against a real mosquitto: apply, callbacks, rollback, reports, secrets."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from lib_support import (
    SECRET,
    DemoConfig,
    ReportWatcher,
    demo_library,
    envelope,
    file_mode,
    publish_config,
    read_bytes,
    signed,
)

from config_lib import (
    ConfigChange,
    ConfigLibrary,
    LibrarySettings,
    LibraryStateError,
    SigningKey,
    encrypt_secrets,
    sign_envelope,
    write_atomic,
)


async def test_valid_update_is_applied_and_callback_sees_old_and_new(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
) -> None:
    await publish_config(manager_client, service_name, signed(keys, service_name, 1))
    async with demo_library(keys, service_name, lib_settings, broker.endpoint(service_name)) as cfg:
        assert cfg.source == "broker"
        assert cfg.version == 1
        seen: list[ConfigChange[DemoConfig]] = []
        cfg.on_change(seen.append)
        raw = signed(
            keys,
            service_name,
            2,
            beam_size=7,
            vad={"threshold": 0.25},
            api_key=SECRET,
        )
        await publish_config(manager_client, service_name, raw)
        new = await cfg.wait_for_version(2, timeout=5)
        assert new.beam_size == 7
        assert len(seen) == 1
        change = seen[0]
        assert change.old.beam_size == 5
        assert change.new.beam_size == 7
        assert change.changed == frozenset({"beam_size", "vad.threshold", "api_key"})
        assert (change.version, change.epoch, change.source) == (2, 1, "broker")
        assert change.restore is False
        assert cfg.metrics.applied == 2
        lkg = Path(lib_settings.lkg_path(service_name) or "")
        assert read_bytes(lkg) == raw
        assert file_mode(lkg) == 0o600


async def test_async_callbacks_run_in_registration_order_and_unsubscribe(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
) -> None:
    order: list[str] = []

    async def first(change: ConfigChange[DemoConfig]) -> None:
        order.append(f"first:{change.version}")

    def second(change: ConfigChange[DemoConfig]) -> None:
        order.append(f"second:{change.version}")

    cfg = demo_library(keys, service_name, lib_settings, broker.endpoint(service_name))
    cfg.on_change(first)  # registering before `async with` is allowed
    async with cfg:
        assert cfg.source == "defaults"
        stop_second = cfg.on_change(second)
        await publish_config(
            manager_client,
            service_name,
            signed(keys, service_name, 1, beam_size=2),
        )
        await cfg.wait_for_version(1, timeout=5)
        stop_second()
        await publish_config(
            manager_client,
            service_name,
            signed(keys, service_name, 2, beam_size=3),
        )
        await cfg.wait_for_version(2, timeout=5)
    assert order == ["first:1", "second:1", "first:2"]
    with pytest.raises(LibraryStateError):
        await cfg.__aenter__()


async def test_duplicate_is_ignored_quietly(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
) -> None:
    raw = signed(keys, service_name, 4, beam_size=4)
    await publish_config(manager_client, service_name, raw)
    async with demo_library(keys, service_name, lib_settings, broker.endpoint(service_name)) as cfg:
        calls: list[object] = []
        cfg.on_change(calls.append)
        reports = ReportWatcher(debug_client, service_name, cfg.instance_id)
        await reports.start()
        await reports.next_matching(status="applied", version=4)
        await publish_config(manager_client, service_name, raw)
        await cfg.wait_for_received(2, timeout=5)
        assert cfg.metrics.duplicate == 1
        assert cfg.metrics.rejected_total == 0
        assert calls == []
        assert cfg.version == 4


async def test_raising_callback_reports_failed_and_keeps_previous_config(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
) -> None:
    await publish_config(
        manager_client,
        service_name,
        signed(keys, service_name, 1, beam_size=2),
    )
    async with demo_library(keys, service_name, lib_settings, broker.endpoint(service_name)) as cfg:
        reports = ReportWatcher(debug_client, service_name, cfg.instance_id)
        await reports.start()
        await reports.next_matching(status="applied", version=1)
        in_force = {
            "a": cfg.current.beam_size,
            "b": cfg.current.beam_size,
            "c": cfg.current.beam_size,
        }

        def a(change: ConfigChange[DemoConfig]) -> None:
            in_force["a"] = change.new.beam_size

        def b(change: ConfigChange[DemoConfig]) -> None:
            in_force["b"] = change.new.beam_size
            if change.new.beam_size == 13:
                raise ValueError("13 is unlucky")

        def c(change: ConfigChange[DemoConfig]) -> None:
            in_force["c"] = change.new.beam_size

        for callback in (a, b, c):
            cfg.on_change(callback)
        await publish_config(
            manager_client,
            service_name,
            signed(keys, service_name, 2, beam_size=13),
        )
        report = await reports.next_matching(status="failed")
        assert report.reason == "callback_failed"
        assert (report.version, report.attempted_version) == (1, 2)
        assert cfg.current.beam_size == 2
        assert cfg.version == 1
        assert in_force == {"a": 2, "b": 2, "c": 2}
        assert cfg.metrics.failed == 1
        lkg = read_bytes(Path(lib_settings.lkg_path(service_name) or ""))
        assert b'"version": 1' in lkg

        # The subscription survives: the next good version is applied everywhere.
        await publish_config(
            manager_client,
            service_name,
            signed(keys, service_name, 3, beam_size=4),
        )
        await cfg.wait_for_version(3, timeout=5)
        assert in_force == {"a": 4, "b": 4, "c": 4}
        await reports.next_matching(status="applied", version=3)


async def test_secrets_are_decrypted_in_memory_only(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    dk = keys.data_key(service_name)
    async with demo_library(keys, service_name, lib_settings, broker.endpoint(service_name)) as cfg:
        reports = ReportWatcher(debug_client, service_name, cfg.instance_id)
        await reports.start()
        raw = signed(keys, service_name, 1, api_key=SECRET)
        await publish_config(manager_client, service_name, raw)
        await cfg.wait_for_version(1, timeout=5)
        assert cfg.current.api_key.get_secret_value() == SECRET
        await reports.next_matching(status="applied", version=1)

        # A signed config that fails validation while carrying the secret.
        values = encrypt_secrets(DemoConfig(api_key=SECRET), service=service_name, key=dk)
        values["beam_size"] = -1
        bad = sign_envelope(
            service=service_name, version=2, epoch=1, config=values, key=keys.signing
        )
        await publish_config(manager_client, service_name, bad)
        await reports.next_matching(status="rejected", reason="invalid_config")

        lkg = read_bytes(Path(lib_settings.lkg_path(service_name) or ""))
        assert lkg == raw
        assert SECRET.encode() not in lkg
        assert b'"encrypted": "AES-256-GCM"' in lkg
        assert reports.raw
        for report in reports.raw:
            assert SECRET.encode() not in report
        assert caplog.records
        for record in caplog.records:
            assert SECRET not in record.getMessage()
            assert SECRET not in repr(record.__dict__)
        assert SECRET not in repr(cfg.current)


async def test_clean_shutdown_reports_offline(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
) -> None:
    await publish_config(
        manager_client,
        service_name,
        signed(keys, service_name, 3, beam_size=3),
    )
    reports = ReportWatcher(debug_client, service_name, lib_settings.resolved_instance_id())
    await reports.start()
    async with demo_library(keys, service_name, lib_settings, broker.endpoint(service_name)) as cfg:
        assert cfg.connected
        online = await reports.next_matching(status="applied", version=3)
        assert online.source == "broker"
    offline = await reports.next_matching(status="offline")
    assert (offline.version, offline.reason, offline.instance) == (3, "stopped", "test-1")


_CHILD = """
import sys
from pydantic import BaseModel
from config_lib import initialize_and_subscribe

class Plain(BaseModel):
    x: int = 1

handle = initialize_and_subscribe(sys.argv[1], Plain)
print("ready", handle.source, flush=True)
sys.stdin.read()  # until the test kills this process
"""


async def test_killed_process_is_marked_offline_by_its_will(
    broker: Any,
    keys: Any,
    service_name: str,
    tmp_path: Path,
    debug_client: aiomqtt.Client,
) -> None:
    trust = tmp_path / "trust.pem"
    write_atomic(trust, keys.trust.to_pem())
    env = {
        **os.environ,
        "CONFIG_LIB_MQTT_URL": broker.url(service_name),
        "CONFIG_LIB_TRUST_STORE": str(trust),
        "CONFIG_LIB_LKG_DIR": str(tmp_path / "lkg"),
        "CONFIG_LIB_INSTANCE_ID": "doomed-1",
        "CONFIG_LIB_DATA_DIR": str(tmp_path / "data"),
        "CONFIG_LIB_FRESH_WAIT": "0",  # no manager here: no freshness record will come
    }
    reports = ReportWatcher(debug_client, service_name, "doomed-1")
    await reports.start()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, service_name,
        env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        assert line.split() == [b"ready", b"defaults"]
        online = await reports.next_matching(status="applied")
        assert online.instance == "doomed-1"
    finally:
        child.kill()
        await child.wait()
    offline = await reports.next_matching(status="offline", timeout=10)
    assert offline.reason == "connection_lost"


async def test_trust_store_file_is_reloaded_for_key_rotation(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    tmp_path: Path,
) -> None:
    dk = keys.data_key(service_name)
    trust_file = tmp_path / "trust.pem"
    write_atomic(trust_file, keys.trust.to_pem())
    settings = lib_settings.model_copy(update={"trust_store": trust_file})
    new_key = SigningKey.generate()
    async with ConfigLibrary(
        service=service_name,
        model=DemoConfig,
        settings=settings,
        data_keys=[dk],
        endpoint=broker.endpoint(service_name),
    ) as cfg:
        rotated = envelope(service_name, 2, signing=new_key, data_key=dk, beam_size=2)
        await publish_config(manager_client, service_name, rotated)
        await cfg.wait_for_received(1, timeout=5)
        assert cfg.metrics.rejected["unknown_key"] == 1
        assert cfg.source == "defaults"

        # The operator adds the new public key next to the old one; no restart.
        write_atomic(trust_file, keys.trust.to_pem() + new_key.public_pem())
        rotated = envelope(service_name, 3, signing=new_key, data_key=dk, beam_size=3)
        await publish_config(manager_client, service_name, rotated)
        assert (await cfg.wait_for_version(3, timeout=5)).beam_size == 3
        old_key = signed(keys, service_name, 4, beam_size=4)
        await publish_config(manager_client, service_name, old_key)
        assert (await cfg.wait_for_version(4, timeout=5)).beam_size == 4
