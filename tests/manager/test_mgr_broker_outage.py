"""Broker down during a burst of writes: writes succeed, everything is published in order."""

from __future__ import annotations

import shutil
from typing import Any

from mgr_harness import RunningManager, collect_until, eventually, persistent_watch, put, watch
from mgr_models import DemoConfig


async def test_writes_during_an_outage_are_published_in_order(
    manager_factory: Any, own_broker: Any, keys: Any, service_name: str
) -> None:
    manager: RunningManager = manager_factory(
        mqtt_url=own_broker.url("manager"),
        models={service_name: DemoConfig},
    )
    total, outage_at = 24, 8
    async with (
        persistent_watch(own_broker, keys.trust, service_name) as queue,
        manager.client("editor") as http,
    ):
        etag: str = "0"
        acknowledged: list[int] = []
        for i in range(total):
            if i == outage_at:
                own_broker.stop()
            resp = await put(http, service_name, {"label": f"burst-{i}"}, etag)
            assert resp.status_code == 200, resp.text
            etag = resp.headers["etag"]
            acknowledged.append(resp.json()["version"])
            if i < outage_at:
                assert resp.json()["publication"] == "published"
            if i == outage_at + 1:
                ready = await http.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["broker"] == "disconnected"
                assert ready.json()["outbox_depth"] >= 1
        assert resp.json()["publication"] == "pending"
        own_broker.start()

        seen = await collect_until(queue, total)
        assert seen == sorted(seen), f"published out of order: {seen}"
        assert set(seen) == set(acknowledged)

        async def drained() -> bool:
            body = (await http.get("/readyz")).json()
            return bool(body["outbox_depth"] == 0 and body["broker"] == "connected")

        await eventually(drained)

    async with watch(own_broker, keys.trust, service_name) as fresh:
        retained = await fresh.next()
        assert retained.version == total
        assert retained.config["label"] == f"burst-{total - 1}"


async def test_a_broker_that_lost_its_store_is_healed_at_reconnect(
    manager_factory: Any, own_broker: Any, keys: Any, service_name: str
) -> None:
    manager: RunningManager = manager_factory(
        mqtt_url=own_broker.url("manager"), models={service_name: DemoConfig}
    )
    async with manager.client("editor") as http:
        resp = await put(http, service_name, {"label": "keep-me"}, 0)
        assert resp.json()["publication"] == "published"
    own_broker.kill()
    shutil.rmtree(own_broker.files.persistence_dir)
    own_broker.files.persistence_dir.mkdir()
    own_broker.start()
    async with watch(own_broker, keys.trust, service_name) as fresh:
        retained = await fresh.next(wait_s=15)  # the manager republishes when it reconnects
        assert retained.version == 1
        assert retained.config["label"] == "keep-me"
