"""Latest wins and callback isolation (issue 14): real mosquitto, no timing assertions.

* A slow callback and rapid updates: the versions that arrive meanwhile are skipped, the
  newest is applied next, reported and saved as the LKG file.
* A blocking plain-function callback in one library does not hold up another library in
  the same process (plain functions run on the library's callback thread; async
  callbacks on the event loop), and callbacks keep their registration order.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import aiomqtt
from lib_support import (
    DemoConfig,
    ReportWatcher,
    demo_library,
    publish_config,
    read_bytes,
    signed,
)

from config_lib import ConfigChange, ConfigLibrary, LibrarySettings


def _settings(base: LibrarySettings, instance: str, tmp_path: Path) -> LibrarySettings:
    return base.model_copy(update={"instance_id": instance, "lkg_dir": tmp_path / instance})


async def test_slow_callback_skips_intermediate_versions_and_applies_the_newest(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    debug_client: aiomqtt.Client,
) -> None:
    envelopes = {v: signed(keys, service_name, v, beam_size=v) for v in range(1, 7)}
    raw = envelopes.__getitem__

    await publish_config(manager_client, service_name, raw(1))
    watcher = ReportWatcher(debug_client, service_name, "test-1")
    await watcher.start()
    async with demo_library(keys, service_name, lib_settings, broker.endpoint(service_name)) as cfg:
        entered, release = asyncio.Event(), asyncio.Event()
        seen: list[int | None] = []

        async def slow(change: ConfigChange[DemoConfig]) -> None:
            seen.append(change.version)
            if change.version == 2:
                entered.set()
                await asyncio.wait_for(release.wait(), 10)

        cfg.on_change(slow)
        await publish_config(manager_client, service_name, raw(2))
        await asyncio.wait_for(entered.wait(), 5)
        for version in (3, 4, 5, 6):
            await publish_config(manager_client, service_name, raw(version))
        # 3 was waiting, then 4, 5 and 6 each replaced the one waiting.
        await cfg._wait(lambda: cfg.metrics.coalesced == 3, 5)
        assert cfg.version == 1  # version 2's callback has not returned yet
        release.set()
        current = await cfg.wait_for_version(6, timeout=5)
        assert seen == [2, 6]
        assert current.beam_size == 6
        assert cfg.metrics.applied == 3  # 1 at startup, 2 and 6
        assert cfg.metrics.rejected_total == 0
        lkg = Path(lib_settings.lkg_path(service_name) or "")
        assert read_bytes(lkg) == raw(6)
        report = await watcher.next_matching(status="applied", version=6)
        assert (report.attempted_version, report.source) == (6, "broker")
        # A late copy of a skipped version is a rollback now, never applied.
        await publish_config(manager_client, service_name, raw(5))
        await cfg._wait(lambda: cfg.metrics.rejected["rollback"] == 1, 5)
        assert cfg.version == 6
        assert seen == [2, 6]


async def test_blocking_sync_callback_does_not_delay_another_library(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    manager_client: aiomqtt.Client,
    tmp_path: Path,
) -> None:
    def raw(version: int) -> bytes:
        return signed(keys, service_name, version, beam_size=version)

    def library(instance: str) -> ConfigLibrary[DemoConfig]:
        return demo_library(
            keys,
            service_name,
            _settings(lib_settings, instance, tmp_path),
            broker.endpoint(service_name),
        )

    await publish_config(manager_client, service_name, raw(1))
    loop_thread = threading.current_thread()
    gate = threading.Event()
    blocked = asyncio.Event()
    loop = asyncio.get_running_loop()
    calls: dict[str, list[tuple[str, int | None, threading.Thread]]] = {"a": [], "b": []}

    def record(lib: str, name: str) -> Any:
        def callback(change: ConfigChange[DemoConfig]) -> None:
            calls[lib].append((name, change.version, threading.current_thread()))

        return callback

    def blocking(change: ConfigChange[DemoConfig]) -> None:
        calls["a"].append(("blocking", change.version, threading.current_thread()))
        loop.call_soon_threadsafe(blocked.set)
        assert gate.wait(10), "never released"

    async def on_loop(change: ConfigChange[DemoConfig]) -> None:
        calls["b"].append(("async", change.version, threading.current_thread()))

    async with library("a") as a, library("b") as b:
        a.on_change(blocking)
        a.on_change(record("a", "after"))
        b.on_change(record("b", "first"))
        b.on_change(on_loop)
        b.on_change(record("b", "third"))
        try:
            await publish_config(manager_client, service_name, raw(2))
            await asyncio.wait_for(blocked.wait(), 5)
            # A's callback blocks its thread; B applies version 2 all the same.
            await b.wait_for_version(2, timeout=5)
            assert a.version == 1
            assert [(n, v) for n, v, _ in calls["b"]] == [("first", 2), ("async", 2), ("third", 2)]
            assert [(n, v) for n, v, _ in calls["a"]] == [("blocking", 2)]
            # Plain functions ran off the loop (B's on its own thread); async ones on it.
            (_, _, b_first), (_, _, b_async), (_, _, b_third) = calls["b"]
            assert b_async is loop_thread
            assert b_first is b_third
            assert b_first is not loop_thread
            await publish_config(manager_client, service_name, raw(3))
            await b.wait_for_version(3, timeout=5)
        finally:
            gate.set()
        await a.wait_for_version(3, timeout=5)
        # A kept its order: version 2 through both callbacks, then version 3.
        assert [(n, v) for n, v, _ in calls["a"]] == [
            ("blocking", 2),
            ("after", 2),
            ("blocking", 3),
            ("after", 3),
        ]
        a_threads = {t for _, _, t in calls["a"]}
        assert len(a_threads) == 1
        assert loop_thread not in a_threads
        assert b_first not in a_threads
