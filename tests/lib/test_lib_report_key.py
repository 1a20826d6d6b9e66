"""Each instance's report key (issue 11 part 4): created on first start beside the LKG
file with mode 0600, the same key after a restart, every published report signed with it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from lib_support import ReportWatcher, demo_library, envelope, file_mode, publish_config

from config_lib import LibrarySettings, ReportError, verify_report


async def test_key_is_created_0600_kept_across_restarts_and_signs_every_report(
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    broker: Any,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
) -> None:
    key_file = lib_settings.report_key_path(service_name, "test-1")
    assert key_file is not None
    assert key_file.parent == lib_settings.lkg_dir
    watcher = ReportWatcher(debug_client, service_name, "test-1")
    await watcher.start()
    raw = envelope(service_name, 1, signing=keys.signing, data_key=keys.data_key(service_name))
    await publish_config(manager_client, service_name, raw)
    endpoint = broker.endpoint(service_name)
    async with demo_library(keys, service_name, lib_settings, endpoint) as cfg:
        first = cfg.report_key_id
        await cfg.wait_for_version(1)
        await watcher.next_matching(status="applied", version=1)
    await watcher.next_matching(status="offline")
    assert file_mode(key_file) == 0o600
    pem = key_file.read_bytes()
    async with demo_library(keys, service_name, lib_settings, endpoint) as cfg:
        assert cfg.report_key_id == first  # survives a restart
        await watcher.next_matching(status="applied", version=1)
    await watcher.next_matching(status="offline")
    assert key_file.read_bytes() == pem
    assert len(watcher.raw) >= 4
    for raw in watcher.raw:  # every report, the offline ones included, verifies
        verified = verify_report(raw, service=service_name, instance="test-1")
        assert verified.key_id == first
    with pytest.raises(ReportError) as info:
        verify_report(watcher.raw[0], service=service_name, instance="other-1")
    assert info.value.reason == "identity_mismatch"


async def test_an_unusable_key_file_is_logged_and_never_overwritten(
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key_file = lib_settings.report_key_path(service_name, "test-1")
    assert key_file is not None
    key_file.parent.mkdir(parents=True)
    key_file.write_bytes(b"not a key")
    with caplog.at_level(logging.ERROR, "config_lib.report"):
        async with demo_library(keys, service_name, lib_settings) as cfg:
            assert cfg.report_key_id is not None  # signs with a key held in memory
    assert key_file.read_bytes() == b"not a key"
    assert [r.message for r in caplog.records if "report key unusable" in r.message]
    no_lkg = lib_settings.model_copy(update={"lkg_enabled": False})
    assert no_lkg.report_key_path(service_name, "test-1") is None
    async with demo_library(keys, service_name, no_lkg) as cfg:
        assert cfg.report_key_id is not None
    assert not (Path(lib_settings.data_dir) / "lkg").exists()
