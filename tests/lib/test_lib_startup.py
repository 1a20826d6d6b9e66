"""Startup sources: LKG, env, defaults, the broker's retained config; replay across restarts."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from lib_support import (
    DemoConfig,
    RequiredConfig,
    demo_library,
    envelope,
    mqtt_client,
    publish_config,
    read_bytes,
    signed,
)

from config_lib import (
    ConfigLibrary,
    LibrarySettings,
    MqttEndpoint,
    NoConfig,
    env_prefix,
    write_atomic,
)


def _lkg(settings: LibrarySettings, service: str) -> Path:
    path = settings.lkg_path(service)
    assert path is not None
    return path


def _corrupt(kind: str, raw: bytes, keys: Any, service: str) -> bytes:
    if kind == "tampered":
        return raw.replace(b'"beam_size": 9', b'"beam_size": 1')
    if kind == "truncated":
        return raw[: len(raw) - 20]
    # foreign: a valid envelope, but signed for another service
    other = service + "-other"
    return envelope(other, 9, signing=keys.signing, data_key=keys.data_key(other), beam_size=9)


@pytest.mark.parametrize("kind", ["tampered", "truncated", "foreign"])
async def test_corrupted_lkg_falls_back_to_env_then_defaults_with_warning(
    kind: str,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = envelope(
        service_name, 9, signing=keys.signing, data_key=keys.data_key(service_name), beam_size=9
    )
    write_atomic(_lkg(lib_settings, service_name), _corrupt(kind, raw, keys, service_name))
    prefix = env_prefix(service_name)
    monkeypatch.setenv(prefix + "BEAM_SIZE", "8")
    monkeypatch.setenv(prefix + "VAD__THRESHOLD", "0.3")
    caplog.set_level(logging.WARNING, logger="config_lib")

    async with demo_library(keys, service_name, lib_settings) as cfg:
        assert cfg.source == "env"
        assert cfg.version is None
        assert cfg.current.beam_size == 8
        assert cfg.current.vad.threshold == 0.3
    warnings = [r for r in caplog.records if "LKG file refused" in r.getMessage()]
    assert len(warnings) == 1
    assert str(_lkg(lib_settings, service_name)) in warnings[0].getMessage()

    caplog.clear()
    monkeypatch.delenv(prefix + "BEAM_SIZE")
    monkeypatch.delenv(prefix + "VAD__THRESHOLD")
    async with demo_library(keys, service_name, lib_settings) as cfg:
        assert cfg.source == "defaults"
        assert cfg.current == DemoConfig()
    assert len([r for r in caplog.records if "LKG file refused" in r.getMessage()]) == 1


async def test_invalid_env_falls_back_to_defaults_with_warning(
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(env_prefix(service_name) + "BEAM_SIZE", "999")
    caplog.set_level(logging.WARNING, logger="config_lib")
    async with demo_library(keys, service_name, lib_settings) as cfg:
        assert cfg.source == "defaults"
        assert cfg.current.beam_size == 5
    assert any("environment config invalid" in r.getMessage() for r in caplog.records)


async def test_no_valid_source_raises_no_config(
    keys: Any, service_name: str, lib_settings: LibrarySettings
) -> None:
    lib = ConfigLibrary(
        service=service_name, model=RequiredConfig, settings=lib_settings, trust=keys.trust
    )
    with pytest.raises(NoConfig):
        async with lib:
            pass  # pragma: no cover


async def test_valid_lkg_is_used_without_broker_and_keeps_secrets_encrypted(
    keys: Any, service_name: str, lib_settings: LibrarySettings
) -> None:
    raw = envelope(
        service_name,
        6,
        epoch=2,
        signing=keys.signing,
        data_key=keys.data_key(service_name),
        beam_size=6,
        api_key="from-lkg",
    )
    write_atomic(_lkg(lib_settings, service_name), raw)
    async with demo_library(keys, service_name, lib_settings) as cfg:
        assert cfg.source == "lkg"
        assert (cfg.epoch, cfg.version) == (2, 6)
        assert cfg.current.api_key.get_secret_value() == "from-lkg"
        assert (await cfg.wait_for_version(6, epoch=2, timeout=1)).beam_size == 6
        with pytest.raises(TimeoutError):
            await cfg.wait_for_version(7, epoch=2, timeout=0.05)


async def test_cold_start_with_broker_down_uses_lkg_then_catches_up(
    own_broker: Any, keys: Any, service_name: str, lib_settings: LibrarySettings
) -> None:
    settings = lib_settings.model_copy(update={"initial_wait": 30.0})
    endpoint = own_broker.endpoint(service_name)

    def lib() -> ConfigLibrary[DemoConfig]:
        return demo_library(keys, service_name, settings, endpoint)

    async with mqtt_client(own_broker.endpoint("manager")) as manager:
        await publish_config(
            manager,
            service_name,
            signed(keys, service_name, 2, beam_size=2),
        )
        async with lib() as first:
            assert (first.source, first.version) == ("broker", 2)
        # The instance is gone; the manager publishes v3, then the broker goes down.
        await publish_config(
            manager,
            service_name,
            signed(keys, service_name, 3, beam_size=3),
        )
    own_broker.stop()

    # initial_wait is 30 s: a refused connection must not make startup wait for it.
    cfg = lib()
    async with asyncio.timeout(10):
        await cfg.__aenter__()
    try:
        assert cfg.source == "lkg"
        assert cfg.version == 2
        assert cfg.current.beam_size == 2
        assert not cfg.connected
        own_broker.start()  # the retained v3 survived the restart (persistence)
        await cfg.wait_for_version(3, timeout=15)
        assert (cfg.source, cfg.current.beam_size) == ("broker", 3)
    finally:
        await cfg.aclose()


async def test_replay_protection_survives_restart_through_lkg(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: Any,
) -> None:
    newer = signed(keys, service_name, 5, beam_size=5)
    older = signed(keys, service_name, 3, beam_size=3)
    write_atomic(_lkg(lib_settings, service_name), newer)
    await publish_config(manager_client, service_name, older)  # a stale retained config
    async with demo_library(keys, service_name, lib_settings, broker.endpoint(service_name)) as cfg:
        await cfg.wait_for_received(1, timeout=5)
        assert cfg.metrics.rejected["rollback"] == 1
        assert (cfg.source, cfg.version) == ("lkg", 5)


async def test_newer_retained_config_wins_over_lkg_at_startup(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: Any,
) -> None:
    write_atomic(
        _lkg(lib_settings, service_name),
        signed(keys, service_name, 2, beam_size=2),
    )
    retained = signed(keys, service_name, 4, beam_size=4)
    await publish_config(manager_client, service_name, retained)
    async with demo_library(keys, service_name, lib_settings, broker.endpoint(service_name)) as cfg:
        # Startup waited for the retained message: it is in force on return.
        assert (cfg.source, cfg.version, cfg.current.beam_size) == ("broker", 4, 4)
    assert json.loads(read_bytes(_lkg(lib_settings, service_name)))["version"] == 4


async def test_silent_broker_does_not_block_startup_beyond_initial_wait(
    keys: Any, service_name: str, lib_settings: LibrarySettings
) -> None:
    """A peer that accepts TCP but never answers CONNACK: startup ends after initial_wait."""
    accepted = asyncio.Event()
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # until the client gives up and closes its socket
        writer.close()
        await writer.wait_closed()
        closed.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = lib_settings.model_copy(update={"initial_wait": 0.3, "connect_timeout": 30.0})
    async with server:
        lib = ConfigLibrary(
            service=service_name,
            model=DemoConfig,
            settings=settings,
            trust=keys.trust,
            endpoint=MqttEndpoint("127.0.0.1", port, service_name, "pw"),
        )
        async with asyncio.timeout(10):
            await lib.__aenter__()
        try:
            assert accepted.is_set()
            assert lib.source == "defaults"
            assert not lib.connected
        finally:
            async with asyncio.timeout(10):
                await lib.aclose()
                await closed.wait()  # the library closed its half-open connection
