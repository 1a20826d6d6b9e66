"""Operations surface: health, readiness, metrics, docs, the package's public names."""

from __future__ import annotations

from typing import Any

import httpx
from mgr_harness import RunningManager, put

import config_manager


async def test_health_ready_metrics_docs(manager: RunningManager, service_name: str) -> None:
    async with manager.client("editor") as http:
        first = await put(http, service_name, {"label": "m"}, 0)
        assert first.status_code == 200
        timing = first.headers["server-timing"]
        for phase in ("validate;dur=", "commit;dur=", "publish;dur=", "app;dur="):
            assert phase in timing
        assert (await put(http, service_name, {"label": "m"}, 0)).status_code == 412
        assert (await put(http, service_name, {"rate": 1}, 1)).status_code == 422
    async with httpx.AsyncClient(base_url=manager.base_url) as anon:
        assert (await anon.get("/healthz")).json() == {"status": "ok"}
        ready = await anon.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["database"] == "open"
        assert body["broker"] == "connected"
        assert body["outbox_depth"] == 0
        assert body["schema_version"] >= 1
        metrics = (await anon.get("/metrics")).text
        assert f'config_manager_writes_total{{result="ok",service="{service_name}"}} 1.0' in metrics
        assert (
            f'config_manager_writes_total{{result="conflict",service="{service_name}"}} 1.0'
            in metrics
        )
        assert (
            f'config_manager_writes_total{{result="rejected",service="{service_name}"}} 1.0'
            in metrics
        )
        assert 'config_manager_rejected_requests_total{status="412"} 1.0' in metrics
        assert "config_manager_publish_latency_seconds_count 1.0" in metrics
        assert "config_manager_outbox_depth 0.0" in metrics
        assert (await anon.get("/docs")).status_code == 200
        editor = await anon.get("/")
        assert editor.status_code == 200
        assert editor.headers["content-type"].startswith("text/html")
        spec = (await anon.get("/openapi.json")).json()
        assert f"/api/v1/configs/{service_name}" in spec["paths"]  # one path per service


def test_public_api_is_exactly_all() -> None:
    assert sorted(config_manager.__all__) == [
        "InitResult",
        "ManagerSettings",
        "SchemaRegistry",
        "StartupError",
        "create_app",
        "init_data_dir",
        "startup_problems",
    ]
    for name in config_manager.__all__:
        assert getattr(config_manager, name) is not None


async def test_epoch_bump_after_a_restore_is_published(
    manager_factory: Any, broker: Any, keys: Any, service_name: str
) -> None:
    from mgr_harness import watch
    from mgr_models import DemoConfig

    from config_manager.db import bump_epoch_sync, connect_sync

    first: RunningManager = manager_factory(
        mqtt_url=broker.url("manager"), models={service_name: DemoConfig}
    )
    async with first.client("editor") as http:
        resp = await put(http, service_name, {"label": "before"}, 0)
        old_epoch = resp.json()["epoch"]
    first.stop()
    conn = connect_sync(first.settings.db_file)  # what `python -m config_manager epoch bump` does
    try:
        new_epoch = bump_epoch_sync(conn)
    finally:
        conn.close()
    assert new_epoch > old_epoch

    async with watch(broker, keys.trust, service_name) as watcher:
        second: RunningManager = manager_factory(
            mqtt_url=broker.url("manager"),
            models={service_name: DemoConfig},
            data_dir=first.data_dir,
            tokens=first.tokens,
        )
        # Retained (old epoch) first, then the restart's republication under the new epoch.
        seen = [await watcher.next(), await watcher.next()]
        assert [e.position for e in seen] == [(old_epoch, 1), (new_epoch, 1)]
        async with second.client("viewer") as http:
            got = await http.get(f"/api/v1/configs/{service_name}")
            assert got.json()["epoch"] == new_epoch
            assert got.headers["etag"] == f'"{new_epoch}.1"'
