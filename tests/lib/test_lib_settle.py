"""Deferred, coalesced settling (config_lib/_settle.py): with several libraries in one
process, the LKG file and the applied report are written after the callbacks, once the
process is quiet. Real mosquitto; every wait is on an event with a timeout.

* rapid updates to three libraries: each ends with the newest version in its LKG file
  and its report, every report names a version that was applied, and
  ``wait_for_version`` returns only once both are done;
* close with the work still due (the settler's quiet period made long): nothing is lost,
  the LKG file and the applied report name the version applied, before ``offline``.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from lib_support import (
    DemoConfig,
    ReportWatcher,
    demo_library,
    publish_config,
    read_bytes,
    signed,
)

import config_lib._settle
from config_lib import (
    AppliedReport,
    ConfigChange,
    ConfigLibrary,
    LibrarySettings,
    applied_wildcard,
)


def _library(
    keys: Any, service: str, base: LibrarySettings, broker: Any, instance: str, tmp_path: Path
) -> ConfigLibrary[DemoConfig]:
    settings = base.model_copy(update={"instance_id": instance, "lkg_dir": tmp_path / instance})
    return demo_library(keys, service, settings, broker.endpoint(service))


async def test_rapid_updates_settle_at_the_newest_version_in_every_library(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
    tmp_path: Path,
) -> None:
    raw = {v: signed(keys, service_name, v, beam_size=v) for v in range(1, 6)}
    await publish_config(manager_client, service_name, raw[1])
    names = ["s1", "s2", "s3"]
    await debug_client.subscribe(applied_wildcard(service_name), qos=1)
    reports: dict[str, list[AppliedReport]] = {n: [] for n in names}

    async def collect() -> None:
        """Every report of the three instances, until each has reported version 5."""
        async for message in debug_client.messages:
            assert isinstance(message.payload, bytes)
            report = AppliedReport.from_bytes(message.payload)
            if report.instance in reports:
                reports[report.instance].append(report)
            if all(any(r.version == 5 for r in reports[n]) for n in names):
                return

    applied: dict[str, list[int | None]] = {n: [] for n in names}
    async with contextlib.AsyncExitStack() as stack:
        libs = {
            n: await stack.enter_async_context(
                _library(keys, service_name, lib_settings, broker, n, tmp_path)
            )
            for n in names
        }
        for name, lib in libs.items():

            async def record(change: ConfigChange[DemoConfig], name: str = name) -> None:
                applied[name].append(change.version)

            lib.on_change(record)
        for version in (2, 3, 4, 5):
            await publish_config(manager_client, service_name, raw[version])
        for name, lib in libs.items():
            await lib.wait_for_version(5, timeout=10)
            # wait_for_version returns once the LKG file and the report are settled.
            lkg = Path(lib.settings.lkg_path(service_name) or "")
            assert read_bytes(lkg) == raw[5]
            report = lib.last_report
            assert report is not None
            assert (report.status, report.version, report.attempted_version) == ("applied", 5, 5)
            assert applied[name][-1] == 5
        await asyncio.wait_for(collect(), 10)
    for name in names:
        versions = [r.version for r in reports[name] if r.status == "applied"]
        # Coalesced or not, a report only ever names a version that was applied (None:
        # the defaults the library started on, before the retained version 1).
        assert set(versions) <= {None, 1, *applied[name]}, (name, versions, applied[name])
        assert versions[-1] == 5


async def test_close_settles_the_lkg_file_and_report_still_due(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v1 = signed(keys, service_name, 1, beam_size=1)
    v2 = signed(keys, service_name, 2, beam_size=2)
    await publish_config(manager_client, service_name, v1)
    watcher = ReportWatcher(debug_client, service_name, "c1")
    await watcher.start()
    a = _library(keys, service_name, lib_settings, broker, "c1", tmp_path)
    b = _library(keys, service_name, lib_settings, broker, "c2", tmp_path)
    async with a, b:
        await a.wait_for_version(1)
        await b.wait_for_version(1)
        await watcher.next_matching(status="applied", version=1)
        # From here the settler of this loop waits long: only close() settles.
        monkeypatch.setattr(config_lib._settle, "QUIET", 60.0)
        monkeypatch.setattr(config_lib._settle, "MAX_DELAY", 60.0)
        await publish_config(manager_client, service_name, v2)
        for lib in (a, b):
            # Applied (callbacks ran); the LKG file and the report are owed.
            await lib._wait(lambda lib=lib: lib.version == 2 and lib._unsettled(), 5)
            with pytest.raises(TimeoutError):
                await lib.wait_for_version(2, timeout=0.05)  # not settled yet
    for name, lib in (("c1", a), ("c2", b)):
        assert not lib._unsettled()
        assert read_bytes(Path(lib.settings.lkg_path(service_name) or "")) == v2, name
    applied = await watcher.next_matching(status="applied", version=2)
    assert applied.attempted_version == 2
    offline = await watcher.next_matching(status="offline")
    assert offline.version == 2
