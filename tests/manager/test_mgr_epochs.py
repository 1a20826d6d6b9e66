"""Fleet-safe epochs: the epoch never goes backwards from the fleet's point of view.

A manager whose clock ran a year ahead signs configs; its database is then lost and
recreated with the right clock. Every instance (running, and restarted from its LKG file)
still accepts what the new database publishes, without touching any file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mgr_harness import RunningManager, put, watch
from mgr_models import DemoConfig

from config_lib import MAX_POSITION, ConfigLibrary, LibrarySettings, SigningKey
from config_manager.db import migrate
from config_manager.metrics import Metrics
from config_manager.publisher import OutboxPublisher, SigningRefused

YEAR = 365 * 24 * 3600


def _library(broker: Any, keys: Any, service: str, folder: Path) -> ConfigLibrary[DemoConfig]:
    return ConfigLibrary(
        service=service,
        model=DemoConfig,
        settings=LibrarySettings(data_dir=folder, initial_wait=3.0, fresh_wait=10.0),
        trust=keys.trust,
        data_keys=[keys.data_key(service)],
        endpoint=broker.endpoint(service),
        instance_id="fleet-1",
    )


def _set_epoch(db: Path, epoch: int) -> None:
    migrate(db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(epoch),))
    conn.close()


async def test_recreated_database_with_a_clock_that_went_backwards_reaches_every_instance(
    manager_factory: Callable[..., RunningManager],
    broker: Any,
    keys: Any,
    service_name: str,
    tmp_path: Path,
) -> None:
    ahead = int(time.time()) + YEAR  # the first manager's clock ran a year ahead
    old_dir = tmp_path / "old"
    (old_dir / "keys").mkdir(parents=True)
    from mgr_harness import write_keys

    write_keys(old_dir, keys)
    _set_epoch(old_dir / "manager.db", ahead)
    models = {service_name: DemoConfig}
    old = manager_factory(mqtt_url=broker.url("manager"), models=models, data_dir=old_dir)
    async with old.client("editor") as http:
        assert (await put(http, service_name, {"rate": 22050}, 0)).status_code == 200
        assert (await put(http, service_name, {"rate": 32000}, 1)).status_code == 200
    lib_dir = tmp_path / "lib"
    async with _library(broker, keys, service_name, lib_dir) as running:
        await running.wait_for_version(2, epoch=ahead, timeout=10)
        old.stop()

        # The database is lost; a new one starts with the (now right) clock: lower epoch.
        new = manager_factory(
            mqtt_url=broker.url("manager"), models=models, data_dir=tmp_path / "new"
        )
        async with watch(broker, keys.trust, service_name) as watcher, new.client("editor") as h:
            resp = await put(h, service_name, {"rate": 44100}, 0)
            assert resp.status_code == 200, resp.text
            assert resp.json()["epoch"] > ahead  # moved above what the fleet has seen
            envelope = (await watcher.until_version(1))[-1]
            assert envelope.epoch > ahead
        current = await running.wait_for_version(1, epoch=envelope.epoch, timeout=10)
        assert current.rate == 44100
        assert running.metrics.rejected["rollback"] == 0

    # An instance restarted from its LKG file (never touched) takes it too.
    async with _library(broker, keys, service_name, lib_dir) as restarted:
        assert restarted.position == (envelope.epoch, 1)
        assert restarted.freshness == "fresh"


async def test_normal_restart_does_not_bump_the_epoch(
    manager_factory: Callable[..., RunningManager],
    broker: Any,
    keys: Any,
    service_name: str,
    tmp_path: Path,
) -> None:
    models = {service_name: DemoConfig}
    first = manager_factory(mqtt_url=broker.url("manager"), models=models)
    async with first.client("editor") as http:
        resp = await put(http, service_name, {"rate": 22050}, 0)
        epoch = resp.json()["epoch"]
    first.stop()
    again = manager_factory(mqtt_url=broker.url("manager"), models=models, tokens=first.tokens)
    async with again.client("viewer") as http:
        got = await http.get(f"/api/v1/configs/{service_name}")
        assert got.json()["epoch"] == epoch


def test_publisher_refuses_to_sign_a_version_skipping_ahead() -> None:
    key = SigningKey.generate()
    metrics = Metrics()
    publisher = OutboxPublisher(
        store=None,  # type: ignore[arg-type]  # signing needs no database
        endpoint=None,  # type: ignore[arg-type]
        signing_key=key,
        metrics=metrics,
        tracker=None,  # type: ignore[arg-type]
    )
    publisher._sign("stt", 1, 100, {})
    publisher._sign("stt", 2, 100, {})
    publisher._sign("stt", 2, 100, {})  # the same version again: a republication
    publisher._sign("stt", 1, 101, {})  # a new epoch starts anywhere
    with pytest.raises(SigningRefused, match="versions must follow"):
        publisher._sign("stt", 3, 101, {})
    assert metrics.sign_refused._value.get() == 1
    with pytest.raises(ValueError, match="2\\^48"):
        publisher._sign("other", MAX_POSITION + 1, 100, {})
