"""Bad input never writes: 4xx problem+json with pydantic's location and message."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from mgr_harness import RunningManager, put
from mgr_models import StricterDemo

from config_lib import MASK, decrypt_secrets

PROBLEM = "application/problem+json"


async def _version(http: Any, service: str) -> int:
    got = await http.get(f"/api/v1/configs/{service}")
    assert got.status_code == 200
    return int(got.json()["version"])


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"rate": "fast"}, ["rate"]),
        ({"rate": 100}, ["rate"]),
        ({"rate": 16000.5}, ["rate"]),
        ({"nested": {"threshold": 3}}, ["nested", "threshold"]),
        ({"surprise": 1}, ["surprise"]),
        ({"tags": "not-a-list"}, ["tags"]),
        ({"label": None}, ["label"]),
    ],
)
async def test_invalid_values_are_refused_with_the_field(
    manager: RunningManager, service_name: str, body: dict[str, Any], loc: list[str]
) -> None:
    async with manager.client("editor") as http:
        resp = await put(http, service_name, body, 0)
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith(PROBLEM)
        problem = resp.json()
        assert problem["status"] == 422
        assert problem["errors"][0]["loc"] == loc
        assert problem["errors"][0]["msg"]
        assert "input" not in problem["errors"][0]  # values may be secrets: never echoed
        assert await _version(http, service_name) == 0


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (b'{"rate": 16000', "application/json", 400),
        (b'{"rate": NaN}', "application/json", 400),
        (b'{"rate": 1, "rate": 2}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b'"text"', "application/json", 422),
        (b"rate=1", "application/x-www-form-urlencoded", 415),
        (b'{"label": "' + b"x" * 300_000 + b'"}', "application/json", 413),
    ],
)
async def test_malformed_bodies_are_refused(
    manager: RunningManager, service_name: str, raw: bytes, content_type: str, status: int
) -> None:
    async with manager.client("editor") as http:
        resp = await http.put(
            f"/api/v1/configs/{service_name}",
            content=raw,
            headers={"If-Match": "0", "Content-Type": content_type},
        )
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"].startswith(PROBLEM)
        assert resp.json()["status"] == status
        assert await _version(http, service_name) == 0


async def test_huge_chunked_body_is_refused_without_content_length(
    manager: RunningManager, service_name: str
) -> None:
    async def chunks() -> Any:
        yield b'{"label": "'
        for _ in range(100):
            yield b"y" * 10_000
        yield b'"}'

    async with manager.client("editor") as http:
        resp = await http.put(
            f"/api/v1/configs/{service_name}",
            content=chunks(),
            headers={"If-Match": "0", "Content-Type": "application/json"},
        )
        assert resp.status_code == 413
        assert await _version(http, service_name) == 0


async def test_preconditions(manager: RunningManager, service_name: str) -> None:
    async with manager.client("editor") as http:
        url = f"/api/v1/configs/{service_name}"
        missing = await http.put(url, json={"rate": 22050})
        assert missing.status_code == 428
        assert missing.headers["content-type"].startswith(PROBLEM)
        bad = await put(http, service_name, {"rate": 22050}, "yesterday")
        assert bad.status_code == 400

        first = await put(http, service_name, {"rate": 22050}, '"0"')
        assert first.status_code == 200, first.text
        etag = first.headers["etag"]
        assert first.json()["etag"] == etag

        stale = await put(http, service_name, {"rate": 44100}, 0)
        assert stale.status_code == 412
        assert stale.json()["current_version"] == 1
        assert stale.json()["etag"] == etag
        other_epoch = await put(http, service_name, {"rate": 44100}, '"1.1"')
        assert other_epoch.status_code == 412

        ok = await put(http, service_name, {"rate": 44100}, etag)
        assert ok.status_code == 200
        assert ok.json()["version"] == 2
        assert (await http.get(url)).json()["values"]["rate"] == 44100


async def test_unknown_service_is_404(manager: RunningManager) -> None:
    async with manager.client("editor") as http:
        for resp in (
            await http.get("/api/v1/configs/no-such-service"),
            await put(http, "no-such-service", {}, 0),
            await http.get("/api/v1/services/no-such-service/schema"),
        ):
            assert resp.status_code == 404
            assert resp.headers["content-type"].startswith(PROBLEM)


async def test_patch_is_a_json_merge_patch(manager: RunningManager, service_name: str) -> None:
    async with manager.client("editor") as http:
        url = f"/api/v1/configs/{service_name}"
        await put(http, service_name, {"label": "a", "tags": ["x", "y"]}, 0)
        resp = await http.patch(
            url,
            content=json.dumps({"nested": {"threshold": 0.9}, "tags": None}),
            headers={"If-Match": "1", "Content-Type": "application/merge-patch+json"},
        )
        assert resp.status_code == 200, resp.text
        values = resp.json()["values"]
        assert values["nested"] == {"threshold": 0.9}
        assert values["tags"] == []  # removed by the patch: back to the default
        assert values["label"] == "a"
        refused = await http.patch(url, json={"rate": 1}, headers={"If-Match": "2"})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["loc"] == ["rate"]
        assert (await http.get(url)).json()["version"] == 2


async def test_validate_is_a_dry_run(manager: RunningManager, service_name: str) -> None:
    async with manager.client("editor") as http:
        url = f"/api/v1/configs/{service_name}/validate"
        ok = await http.post(url, json={"rate": 32000, "api_key": "dry-run-secret-1"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["would_be_version"] == 1
        assert ok.json()["values"]["api_key"] == MASK
        bad = await http.post(url, json={"rate": 5})
        assert bad.status_code == 422
        stale = await http.post(url, json={"rate": 32000}, headers={"If-Match": "4"})
        assert stale.status_code == 412
        assert await _version(http, service_name) == 0


async def test_defaults_are_version_zero(manager: RunningManager, service_name: str) -> None:
    async with manager.client("viewer") as http:
        got = await http.get(f"/api/v1/configs/{service_name}")
        assert got.json()["version"] == 0
        assert got.json()["values"]["rate"] == 16000
        assert got.json()["values"]["api_key"] == MASK
        assert got.json()["updated_by"] is None
        schema = await http.get(f"/api/v1/services/{service_name}/schema")
        assert schema.json()["properties"]["api_key"]["x-secret"] is True
        services = await http.get("/api/v1/services")
        assert {"name": service_name, "version": 0}.items() <= services.json()[0].items()


async def test_secrets_are_kept_on_mask_and_never_stored_in_plaintext(
    manager: RunningManager, service_name: str, keys: Any
) -> None:
    secret = "plaintext-secret-" + service_name
    async with manager.client("editor") as http:
        first = await put(http, service_name, {"api_key": secret, "label": "one"}, 0)
        assert first.status_code == 200
        assert first.json()["values"]["api_key"] == MASK
        second = await put(http, service_name, {**first.json()["values"], "label": "two"}, 1)
        assert second.status_code == 200, second.text
        history = await http.get(f"/api/v1/services/{service_name}/versions")
        assert [v["version"] for v in history.json()] == [2, 1]
        assert all(v["values"]["api_key"] == MASK for v in history.json())

    db = manager.settings.db_file
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT version, values_json FROM versions WHERE service = ? ORDER BY version",
            (service_name,),
        ).fetchall()
    finally:
        conn.close()
    for _, values_json in rows:
        plain = decrypt_secrets(
            json.loads(values_json), service=service_name, keys=[keys.data_key(service_name)]
        )
        assert plain["api_key"] == secret  # the mask kept the stored secret
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert secret.encode() not in raw
    assert b"default-api-key-0000" not in raw


async def test_a_model_without_defaults_starts_empty(
    manager_factory: Any, broker: Any, service_name: str
) -> None:
    from pydantic import BaseModel, ConfigDict

    class Required(BaseModel):
        model_config = ConfigDict(extra="forbid")
        endpoint: str

    manager = manager_factory(mqtt_url=broker.url("manager"), models={service_name: Required})
    async with manager.client("editor") as http:
        missing = await http.get(f"/api/v1/configs/{service_name}")
        assert missing.status_code == 404
        assert missing.json()["version"] == 0
        incomplete = await put(http, service_name, {}, 0)
        assert incomplete.status_code == 422
        assert incomplete.json()["errors"][0]["loc"] == ["endpoint"]
        first = await put(http, service_name, {"endpoint": "https://example.test"}, 0)
        assert first.status_code == 200, first.text
        assert first.json()["version"] == 1


async def test_every_route_bounds_its_body(manager: RunningManager) -> None:
    async with manager.client("admin") as http:
        big = b'{"name": "x", "role": "viewer", "pad": "' + b"z" * 400_000 + b'"}'
        resp = await http.post(
            "/api/v1/tokens", content=big, headers={"Content-Type": "application/json"}
        )
        assert resp.status_code == 413
        assert resp.headers["content-type"].startswith(PROBLEM)

        async def chunks() -> Any:
            yield b'{"name": "y", "role": "viewer", "pad": "'
            for _ in range(50):
                yield b"z" * 10_000
            yield b'"}'

        streamed = await http.post(
            "/api/v1/tokens", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        names = {t["name"] for t in (await http.get("/api/v1/tokens")).json()}
        assert not {"x", "y"} & names


async def test_a_plain_member_named_encrypted_is_refused_not_signed(
    manager_factory: Any, broker: Any, service_name: str
) -> None:
    """Receivers take any object with an ``encrypted`` member as a secret's ciphertext and
    refuse other shapes (docs/protocol.md, "Secret fields"): the manager never signs one."""
    running = manager_factory(mqtt_url=broker.url("manager"), models={service_name: StricterDemo})
    async with running.client("editor") as http:
        resp = await put(http, service_name, {"nested": {"encrypted": 1.0}}, 0)
        assert resp.status_code == 422, resp.text
        problem = resp.json()
        assert problem["type"].endswith("/invalid-config")
        assert "'encrypted' is reserved" in problem["detail"]
        assert await _version(http, service_name) == 0
        ok = await put(http, service_name, {"nested": {"threshold": 0.7}}, 0)
        assert ok.status_code == 200, ok.text
