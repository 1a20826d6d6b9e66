"""Retiring a service (DELETE /configs/{service}) over real HTTP, a real broker and a real
ConfigLibrary: a signed tombstone replaces the retained config, instances keep their last
config and report ``retired``, the manager never republishes the old config."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mgr_harness import eventually, watch
from mgr_models import DemoConfig

from config_lib import ConfigLibrary, LibrarySettings


async def test_retire_publishes_a_tombstone_that_survives_a_broker_restart(
    manager_factory: Any, own_broker: Any, keys: Any, service_name: str, tmp_path: Path
) -> None:
    manager = manager_factory(mqtt_url=own_broker.url("manager"), models={service_name: DemoConfig})
    library = ConfigLibrary(
        service=service_name,
        model=DemoConfig,
        settings=LibrarySettings(data_dir=tmp_path / "lib", initial_wait=5.0, env_fallback=False),
        trust=keys.trust,
        data_keys=[keys.data_key(service_name)],
        endpoint=own_broker.endpoint(service_name),
        instance_id="retiree-1",
    )
    url = f"/api/v1/configs/{service_name}"
    async with manager.client("admin") as http, library as cfg:
        got = await http.patch(url, json={"rate": 11025}, headers={"If-Match": "0"})
        assert got.status_code == 200
        await cfg.wait_for_version(1, timeout=10)
        async with manager.client("editor") as editor:
            assert (await editor.delete(url)).status_code == 403
        assert (await http.delete("/api/v1/configs/never-stored")).status_code == 404

        async with watch(own_broker, keys.trust, service_name) as watcher:
            assert (await watcher.next()).version == 1  # the retained config
            retired = await http.delete(url)
            assert retired.status_code == 200, retired.text
            assert retired.json()["tombstone_version"] == 2
            assert retired.json()["publication"] == "published"
            tombstone = await watcher.next()
            assert tombstone.retired is True
            assert tombstone.version == 2
            assert dict(tombstone.config) == {}

        async def reported_retired() -> bool:
            body = (await http.get("/api/v1/sync")).json()
            [entry] = body["services"]
            return [i["state"] for i in entry["instances"]] == ["retired"]

        await eventually(reported_retired)
        assert cfg.current.rate == 11025  # keeps its last config
        assert cfg.version == 1
        refused = await http.patch(url, json={"rate": 8000}, headers={"If-Match": "1"})
        assert refused.status_code == 409
        assert refused.json()["type"].endswith("/service-retired")
        assert (await http.delete(url)).status_code == 409
        audit = (await http.get("/api/v1/audit", params={"action": "retire"})).json()
        assert audit[0]["service"] == service_name
        assert audit[0]["actor"] == "admin-token"

    # The broker restarts having lost its retained store: the manager republishes what is
    # current, which for a retired service is the tombstone, never the old config.
    own_broker.stop()
    shutil.rmtree(own_broker.files.persistence_dir)
    own_broker.files.persistence_dir.mkdir()
    own_broker.start()
    async with manager.client("admin") as http:

        async def reconnected() -> bool:
            return bool((await http.get("/readyz")).json()["broker"] == "connected")

        await eventually(reconnected, wait_s=30)
        async with watch(own_broker, keys.trust, service_name) as watcher:
            first = await watcher.next(wait_s=20)
            assert first.retired is True
            assert first.version == 2
            with_more = await http.post("/api/v1/sync/force")  # republish everything again
            assert with_more.status_code == 200
            again = await watcher.next(wait_s=20)
            assert again.retired is True  # still the tombstone: the old config is gone
