"""A PUT through the HTTP API reaches a subscriber as a verified, signed envelope."""

from __future__ import annotations

from typing import Any

from mgr_harness import RunningManager, watch

from config_lib import MASK, decrypt_secrets


async def test_put_reaches_a_verifying_subscriber(
    manager: RunningManager, broker: Any, keys: Any, service_name: str
) -> None:
    async with watch(broker, keys.trust, service_name) as watcher, manager.client("editor") as http:
        got = await http.get(f"/api/v1/configs/{service_name}")
        assert got.status_code == 200
        assert got.json()["version"] == 0
        assert got.json()["values"]["api_key"] == MASK
        etag = got.headers["etag"]

        body = {**got.json()["values"], "rate": 22050, "api_key": "s3cr3t-value-42"}
        put = await http.put(
            f"/api/v1/configs/{service_name}", json=body, headers={"If-Match": etag}
        )
        assert put.status_code == 200, put.text
        assert put.json()["version"] == 1
        assert put.json()["publication"] == "published"
        assert put.json()["values"]["api_key"] == MASK
        assert put.json()["updated_by"] == "editor-token"

        envelope = await watcher.next()
        assert envelope.version == 1
        assert envelope.service == service_name
        assert envelope.config["rate"] == 22050
        plain = decrypt_secrets(
            envelope.config, service=service_name, keys=[keys.data_key(service_name)]
        )
        assert plain["api_key"] == "s3cr3t-value-42"
        assert envelope.epoch == put.json()["epoch"]


async def test_put_reaches_a_config_library_and_its_applied_report_comes_back(
    manager: RunningManager, broker: Any, keys: Any, service_name: str, tmp_path: Any
) -> None:
    from mgr_harness import eventually
    from mgr_models import DemoConfig

    from config_lib import ConfigLibrary, LibrarySettings

    settings = LibrarySettings(data_dir=tmp_path / "lib", initial_wait=2.0, env_fallback=False)
    library = ConfigLibrary(
        service=service_name,
        model=DemoConfig,
        settings=settings,
        trust=keys.trust,
        data_keys=[keys.data_key(service_name)],
        endpoint=broker.endpoint(service_name),
        instance_id="roundtrip-1",
    )
    async with library as cfg, manager.client("editor") as http:
        resp = await http.put(
            f"/api/v1/configs/{service_name}",
            json={"rate": 44100, "api_key": "lib-secret-123456", "nested": {"threshold": 0.25}},
            headers={"If-Match": "0"},
        )
        assert resp.status_code == 200, resp.text
        current = await cfg.wait_for_version(1, timeout=10)
        assert current.rate == 44100
        assert current.api_key.get_secret_value() == "lib-secret-123456"
        assert current.nested.threshold == 0.25

        async def reported() -> bool:
            got = await http.get(f"/api/v1/services/{service_name}/instances")
            return any(i["version"] == 1 for i in got.json())

        await eventually(reported)
        instances = (await http.get(f"/api/v1/services/{service_name}/instances")).json()
        assert instances[0]["instance"] == "roundtrip-1"
        assert instances[0]["status"] == "applied"
        assert instances[0]["current"] is True
        services = (await http.get("/api/v1/services")).json()
        assert services[0]["instances"] == 1
