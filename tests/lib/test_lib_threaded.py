"""The threaded adapter, used from a program that never touches asyncio."""

from __future__ import annotations

import subprocess
import threading
import types
from typing import Any

import pytest
from lib_support import DemoConfig, RequiredConfig, signed
from pydantic import SecretStr

from config_lib import (
    ConfigChange,
    LibrarySettings,
    NoConfig,
    initialize_and_subscribe,
    updated_topic,
)


def _mosquitto_pub(broker: Any, user: str, topic: str, payload: bytes) -> None:
    """Publish retained, QoS 1, with the broker's own command-line client."""
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-u",
            user,
            "-P",
            broker.password(user),
            "-t",
            topic,
            "-r",
            "-q",
            "1",
            "-s",
        ],
        input=payload,
        check=True,
        timeout=10,
    )


def test_threaded_adapter_receives_update_without_asyncio(
    broker: Any, keys: Any, service_name: str, lib_settings: LibrarySettings
) -> None:
    dk = keys.data_key(service_name)
    topic = updated_topic(service_name)
    _mosquitto_pub(
        broker,
        "manager",
        topic,
        signed(keys, service_name, 1, beam_size=2),
    )
    legacy = types.ModuleType("legacy_settings")
    legacy.__dict__.update(BEAM_SIZE=0, VAD_THRESHOLD=0.0, API_KEY="", UNRELATED="kept")
    constants = vars(legacy)  # the module's live namespace

    handle = initialize_and_subscribe(
        service_name,
        DemoConfig,
        mqtt_url=broker.url(service_name),
        settings=lib_settings,
        trust=keys.trust,
        data_keys=[dk],
    )
    with handle:
        assert handle.running
        assert handle.get_config().beam_size == 2
        assert handle.source == "broker"
        stop_sync = handle.sync_module_constants(legacy, reveal_secrets=True)
        assert constants["BEAM_SIZE"] == 2

        got = threading.Event()
        changes: list[ConfigChange[DemoConfig]] = []
        threads: list[str] = []

        def on_change(change: ConfigChange[DemoConfig]) -> None:
            changes.append(change)
            threads.append(threading.current_thread().name)
            got.set()

        handle.register_callback(on_change)
        _mosquitto_pub(
            broker,
            "manager",
            topic,
            signed(
                keys,
                service_name,
                2,
                beam_size=9,
                vad={"threshold": 0.7},
                api_key=SecretStr("legacy-secret"),
            ),
        )
        assert got.wait(10)
        assert handle.wait_for_version(2, timeout=5).beam_size == 9
        assert changes[0].old.beam_size == 2
        assert changes[0].new.beam_size == 9
        # Plain callbacks run on the library's callback thread (not the caller's).
        assert len(threads) == 1
        assert threads[0].startswith("config_lib-")
        assert constants["BEAM_SIZE"] == 9
        assert constants["VAD_THRESHOLD"] == 0.7
        assert constants["API_KEY"] == "legacy-secret"
        assert constants["UNRELATED"] == "kept"
        stop_sync()
    assert not handle.running


def test_explicit_constant_mapping_without_broker(
    keys: Any, service_name: str, lib_settings: LibrarySettings
) -> None:
    legacy = types.ModuleType("legacy_mapping")
    handle = initialize_and_subscribe(
        service_name, DemoConfig, settings=lib_settings, trust=keys.trust
    )
    try:
        assert handle.source == "defaults"
        handle.sync_module_constants(legacy, {"VAD_T": "vad.threshold", "KEY": "api_key"})
        assert vars(legacy)["VAD_T"] == 0.5
        assert isinstance(vars(legacy)["KEY"], SecretStr)
    finally:
        handle.close()


def test_startup_error_is_raised_in_the_calling_thread(
    keys: Any, service_name: str, lib_settings: LibrarySettings
) -> None:
    with pytest.raises(NoConfig):
        initialize_and_subscribe(
            service_name, RequiredConfig, settings=lib_settings, trust=keys.trust
        )
