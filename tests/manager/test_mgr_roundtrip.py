"""A PUT through the HTTP API reaches a subscriber as a verified, signed envelope."""

from __future__ import annotations

from typing import Any

from conftest import RunningManager, watch

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
