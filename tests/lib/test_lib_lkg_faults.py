"""The LKG folder on a real, size-limited file system (tmpfs) that fills up or turns read-only.

The library must keep running on the config it received and applied, say so in its applied
report (``reason: lkg_not_saved``) and in one log line, count it, keep the previous LKG file
intact, and write the file again at the next message once the folder accepts it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from lib_support import ReportWatcher, demo_library, publish_config, read_bytes, signed

from config_lib import LibrarySettings


def _settings(lib_settings: LibrarySettings, lkg_dir: Path) -> LibrarySettings:
    return lib_settings.model_copy(update={"lkg_dir": lkg_dir})


def _lkg_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_a_full_lkg_folder_keeps_the_library_running_and_reporting(
    small_fs: Any,
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="config_lib")
    settings = _settings(lib_settings, small_fs.path / "lkg")
    raws = {v: signed(keys, service_name, v, beam_size=v) for v in (1, 2, 3, 4)}
    await publish_config(manager_client, service_name, raws[1])
    async with demo_library(keys, service_name, settings, broker.endpoint(service_name)) as cfg:
        lkg = Path(settings.lkg_path(service_name) or "")
        reports = ReportWatcher(debug_client, service_name, cfg.instance_id)
        await reports.start()
        await reports.next_matching(status="applied", version=1)
        assert read_bytes(lkg) == raws[1]

        small_fs.fill()
        for version in (2, 3):
            await publish_config(manager_client, service_name, raws[version])
            assert (await cfg.wait_for_version(version, timeout=5)).beam_size == version
            report = await reports.next_matching(status="applied", version=version)
            assert report.reason == "lkg_not_saved"
            assert report.detail is not None
            assert "No space left on device" in report.detail
        assert cfg.metrics.lkg_save_failed == 2
        assert cfg.metrics.snapshot()["lkg_save_failed"] == 2
        assert cfg.connected
        assert read_bytes(lkg) == raws[1]  # the previous file is intact, not truncated
        key = Path(settings.report_key_path(service_name, cfg.instance_id) or "")
        # No temp files: the LKG file and the instance's report key (written at start).
        assert sorted(p.name for p in lkg.parent.iterdir()) == sorted([lkg.name, key.name])

        small_fs.free()
        await publish_config(manager_client, service_name, raws[4])
        await cfg.wait_for_version(4, timeout=5)
        report = await reports.next_matching(status="applied", version=4)
        assert report.reason is None
        assert read_bytes(lkg) == raws[4]
        assert cfg.metrics.lkg_save_failed == 2

    assert len(_lkg_lines(caplog, "LKG file not written")) == 1  # once, not per message
    assert len(_lkg_lines(caplog, "LKG file written again")) == 1


async def test_a_read_only_lkg_folder_is_retried_at_the_next_message(
    small_fs: Any,
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
) -> None:
    settings = _settings(lib_settings, small_fs.path / "lkg")
    v1 = signed(keys, service_name, 1, beam_size=1)
    v2 = signed(keys, service_name, 2, beam_size=2)
    await publish_config(manager_client, service_name, v1)
    async with demo_library(keys, service_name, settings, broker.endpoint(service_name)) as cfg:
        lkg = Path(settings.lkg_path(service_name) or "")
        reports = ReportWatcher(debug_client, service_name, cfg.instance_id)
        await reports.start()
        await reports.next_matching(status="applied", version=1)

        small_fs.remount("ro")
        try:
            await publish_config(manager_client, service_name, v2)
            assert (await cfg.wait_for_version(2, timeout=5)).beam_size == 2
            report = await reports.next_matching(status="applied", version=2)
            assert report.reason == "lkg_not_saved"
            assert "Read-only file system" in (report.detail or "")
            assert cfg.metrics.lkg_save_failed == 1
        finally:
            small_fs.remount("rw")
        assert read_bytes(lkg) == v1

        # The same envelope again (as after a reconnect) is a duplicate: nothing is applied
        # again, but the LKG file the library owes is written and the report cleared.
        await publish_config(manager_client, service_name, v2)
        await cfg.wait_for_received(3, timeout=5)
        report = await reports.next_matching(status="applied", version=2, reason=None)
        assert read_bytes(lkg) == v2
        assert cfg.metrics.duplicate == 1
        assert cfg.metrics.lkg_save_failed == 1
