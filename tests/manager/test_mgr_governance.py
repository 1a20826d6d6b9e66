"""Governance over real HTTP and the real broker: versions, diff, rollback, no-op writes,
Idempotency-Key, audit, hash-chained export and import."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import httpx
from mgr_harness import RunningManager, put, watch
from mgr_models import DemoConfig, StricterDemo

from config_lib import MASK
from config_manager.history import verify_export


async def _write_versions(http: httpx.AsyncClient, service: str, rates: list[int]) -> str:
    etag = (await http.get(f"/api/v1/configs/{service}")).headers["etag"]
    for rate in rates:
        got = await http.patch(
            f"/api/v1/configs/{service}", json={"rate": rate}, headers={"If-Match": etag}
        )
        assert got.status_code == 200, got.text
        etag = got.headers["etag"]
    return etag


async def test_versions_are_paged_newest_first(manager: RunningManager, service_name: str) -> None:
    async with manager.client("editor") as http:
        await _write_versions(http, service_name, [8000 + i for i in range(5)])
        page = await http.get(f"/api/v1/configs/{service_name}/versions", params={"limit": 2})
        assert [v["version"] for v in page.json()] == [5, 4]
        page2 = await http.get(
            f"/api/v1/configs/{service_name}/versions", params={"limit": 2, "before": 4}
        )
        assert [v["version"] for v in page2.json()] == [3, 2]
        one = await http.get(f"/api/v1/configs/{service_name}/versions/2")
        assert one.status_code == 200
        assert one.json()["values"]["rate"] == 8001
        assert one.json()["values"]["api_key"] == MASK
        missing = await http.get(f"/api/v1/configs/{service_name}/versions/99")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        unknown = await http.get("/api/v1/configs/no-such-service/versions")
        assert unknown.status_code == 404


async def test_diff_is_json_patch_with_secrets_only_changed_or_not(
    manager: RunningManager, service_name: str
) -> None:
    async with manager.client("editor") as http:
        url = f"/api/v1/configs/{service_name}"
        etag = (await http.get(url)).headers["etag"]
        one = await http.patch(
            url, json={"api_key": "first-secret-1111"}, headers={"If-Match": etag}
        )
        # v2: rate changes, the secret is sent back masked (unchanged)
        two = await http.patch(
            url, json={"rate": 32000, "api_key": MASK}, headers={"If-Match": one.headers["etag"]}
        )
        three = await http.patch(
            url, json={"api_key": "second-secret-2222"}, headers={"If-Match": two.headers["etag"]}
        )
        assert three.status_code == 200
        d12 = (await http.get(f"{url}/diff", params={"from": 1, "to": 2})).json()
        assert d12["patch"] == [{"op": "replace", "path": "/rate", "value": 32000}]
        d23 = (await http.get(f"{url}/diff", params={"from": 2, "to": 3})).json()
        assert d23["patch"] == [
            {"op": "replace", "path": "/api_key", "value": MASK, "secret": "changed"}
        ]
        text = json.dumps((await http.get(f"{url}/diff", params={"from": 0})).json())
        assert "second-secret" not in text
        assert "first-secret" not in text
        bad = await http.get(f"{url}/diff", params={"from": 1, "to": 42})
        assert bad.status_code == 404


async def test_rollback_makes_a_new_version_with_the_old_document(
    manager: RunningManager, broker: Any, keys: Any, service_name: str
) -> None:
    async with watch(broker, keys.trust, service_name) as watcher, manager.client("editor") as http:
        etag = await _write_versions(http, service_name, [11025, 22050, 44100])
        url = f"/api/v1/configs/{service_name}/rollback"
        no_match = await http.post(url, json={"to_version": 1})
        assert no_match.status_code == 428
        stale = await http.post(url, json={"to_version": 1}, headers={"If-Match": "1"})
        assert stale.status_code == 412
        bad = await http.post(url, json={"to_version": "one"}, headers={"If-Match": etag})
        assert bad.status_code == 422
        # beyond the protocol's versions (2^48-1): a 422 naming the member, as documented
        beyond = await http.post(url, json={"to_version": 2**48}, headers={"If-Match": etag})
        assert beyond.status_code == 422, beyond.text
        assert [e["loc"] for e in beyond.json()["errors"]] == [["body", "to_version"]]
        paths = (await http.get("/openapi.json")).json()["paths"]
        body = next(p for name, p in paths.items() if name.endswith("/rollback"))["post"]
        schema = body["requestBody"]["content"]["application/json"]["schema"]
        assert schema["properties"]["to_version"]["maximum"] == 2**48 - 1
        got = await http.post(url, json={"to_version": 1}, headers={"If-Match": etag})
        assert got.status_code == 200, got.text
        assert got.json()["version"] == 4
        assert got.json()["values"]["rate"] == 11025
        envelopes = await watcher.until_version(4)
        assert envelopes[-1].config["rate"] == 11025
        missing = await http.post(
            url, json={"to_version": 77}, headers={"If-Match": got.headers["etag"]}
        )
        assert missing.status_code == 404
        audit = (await http.get("/api/v1/audit", params={"service": service_name})).json()
        rollback = next(e for e in audit if e["action"] == "rollback" and e["outcome"] == "ok")
        assert rollback["detail"]["to_version"] == 1
        assert rollback["version"] == 4
        assert rollback["detail"]["diff"] == [{"op": "replace", "path": "/rate", "value": 11025}]


async def test_rollback_to_a_version_that_no_longer_validates_is_a_clear_422(
    manager_factory: Any, broker: Any, service_name: str, tmp_path: Any
) -> None:
    first = manager_factory(mqtt_url=broker.url("manager"), models={service_name: DemoConfig})
    async with first.client("editor") as http:
        await _write_versions(http, service_name, [48000, 16000])
    first.stop()
    second = manager_factory(
        mqtt_url=broker.url("manager"),
        models={service_name: StricterDemo},
        data_dir=first.data_dir,
        tokens=first.tokens,
    )
    async with second.client("editor") as http:
        etag = (await http.get(f"/api/v1/configs/{service_name}")).headers["etag"]
        got = await http.post(
            f"/api/v1/configs/{service_name}/rollback",
            json={"to_version": 1},
            headers={"If-Match": etag},
        )
        assert got.status_code == 422
        body = got.json()
        assert got.headers["content-type"] == "application/problem+json"
        assert body["type"].endswith("/rollback-invalid")
        assert body["to_version"] == 1
        assert [e["loc"] for e in body["errors"]] == [["rate"]]
        assert (await http.get(f"/api/v1/configs/{service_name}")).json()["version"] == 2
        audit = (
            await http.get("/api/v1/audit", params={"service": service_name, "action": "rollback"})
        ).json()
        assert audit[0]["outcome"] == "refused"
        assert "rate" in json.dumps(audit[0]["detail"]["errors"])


async def test_a_write_that_changes_nothing_creates_no_version(
    manager: RunningManager, service_name: str
) -> None:
    async with manager.client("editor") as http:
        etag = await _write_versions(http, service_name, [12000])
        url = f"/api/v1/configs/{service_name}"
        same = await http.patch(url, json={"rate": 12000}, headers={"If-Match": etag})
        assert same.status_code == 200
        assert same.headers["etag"] == etag
        assert same.headers["config-changed"] == "false"
        assert same.json()["changed"] is False
        assert same.json()["publication"] == "unchanged"
        empty = await http.patch(url, json={}, headers={"If-Match": etag})
        assert empty.json()["version"] == 1
        assert empty.json()["changed"] is False
        values = (await http.get(url)).json()["values"]  # secret comes back masked
        put_same = await put(http, service_name, values, etag)
        assert put_same.json()["changed"] is False
        versions = (await http.get(f"{url}/versions")).json()
        assert [v["version"] for v in versions] == [1]


async def test_idempotency_key_replays_the_first_outcome(
    manager: RunningManager, service_name: str
) -> None:
    url = f"/api/v1/configs/{service_name}"
    async with manager.client("editor") as http:
        etag = (await http.get(url)).headers["etag"]
        headers = {"If-Match": etag, "Idempotency-Key": "retry-me-1"}
        first = await http.patch(url, json={"rate": 24000}, headers=headers)
        assert first.status_code == 200
        assert first.json()["version"] == 1
        # the same request again (as a client would after losing the response): the same
        # outcome, not a 412, and no second version
        again = await http.patch(url, json={"rate": 24000}, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["version"] == 1
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["etag"] == first.headers["etag"]
        other = await http.patch(url, json={"rate": 8000}, headers=headers)
        assert other.status_code == 422
        assert other.json()["type"].endswith("/idempotency-key-reused")
        assert (await http.get(url)).json()["version"] == 1
    # another token's key is its own
    async with manager.client("admin") as admin:
        mine = await admin.patch(
            url,
            json={"rate": 8000},
            headers={"If-Match": first.headers["etag"], "Idempotency-Key": "retry-me-1"},
        )
        assert mine.status_code == 200
        assert mine.json()["version"] == 2


async def test_idempotent_retry_after_a_dropped_connection(
    manager: RunningManager, service_name: str
) -> None:
    """The client gives up before the answer (its connection is dropped); the retry with the
    same Idempotency-Key learns the first outcome instead of a 412."""
    url = f"/api/v1/configs/{service_name}"
    async with manager.client("editor") as http:
        etag = (await http.get(url)).headers["etag"]
    headers = {"If-Match": etag, "Idempotency-Key": "dropped-1", "Content-Type": "application/json"}
    body = json.dumps({"label": "after-a-drop"}).encode()
    host, port = manager.base_url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"PATCH {url} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        f"Authorization: Bearer {manager.tokens['editor']}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    writer.close()  # hang up without reading the answer
    await writer.wait_closed()
    async with manager.client("editor") as http:
        for _ in range(200):  # the write finishes server-side; the retry must not see a 412
            retry = await http.patch(url, json={"label": "after-a-drop"}, headers=headers)
            assert retry.status_code in (200, 412), retry.text
            if retry.status_code == 200:
                break
            await asyncio.sleep(0.02)  # the dropped request may still be in flight
        assert retry.status_code == 200
        assert retry.json()["version"] == 1
        assert retry.json()["values"]["label"] == "after-a-drop"
        versions = (await http.get(f"{url}/versions")).json()
        assert [v["version"] for v in versions] == [1]


async def test_audit_records_writes_refusals_and_token_events(
    manager: RunningManager, service_name: str
) -> None:
    url = f"/api/v1/configs/{service_name}"
    async with manager.client("editor") as http:
        etag = (await http.get(url)).headers["etag"]
        ok = await http.patch(
            url,
            json={"rate": 9000, "api_key": "audit-secret-123"},
            headers={"If-Match": etag, "X-Request-Id": "req-audit-1"},
        )
        assert ok.headers["x-request-id"] == "req-audit-1"
        refused = await http.patch(url, json={"rate": 5}, headers={"If-Match": ok.headers["etag"]})
        assert refused.status_code == 422
    async with manager.client("admin") as admin:
        created = await admin.post(
            "/api/v1/tokens", json={"name": f"t-{service_name}", "role": "viewer"}
        )
        assert created.status_code == 201
        assert (await admin.delete(f"/api/v1/tokens/t-{service_name}")).status_code == 204
        entries = (await admin.get("/api/v1/audit", params={"service": service_name})).json()
        assert [(e["action"], e["outcome"]) for e in entries] == [
            ("write", "refused"),
            ("write", "ok"),
        ]
        refusal, write = entries
        assert refusal["actor"] == "editor-token"
        assert refusal["reason"].startswith("422 Invalid configuration")
        assert write["request_id"] == "req-audit-1"
        assert write["version"] == 1
        ops = {op["path"]: op for op in write["detail"]["diff"]}
        assert ops["/rate"]["value"] == 9000
        assert ops["/api_key"] == {
            "op": "replace",
            "path": "/api_key",
            "value": MASK,
            "secret": "changed",
        }
        assert "audit-secret" not in json.dumps(entries)
        tokens = (await admin.get("/api/v1/audit", params={"actor": "admin-token"})).json()
        assert {"token.create", "token.revoke"} <= {e["action"] for e in tokens}
        since = (await admin.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00Z"})).json()
        assert since == []
        bad = await admin.get("/api/v1/audit", params={"since": "yesterday"})
        assert bad.status_code == 400


async def test_presets_applied_twice_create_no_second_version(
    manager_factory: Any, broker: Any
) -> None:
    from config_manager.presets import preset_names
    from workers.orchestrator.config import OrchestratorConfig
    from workers.stt.config import SttConfig

    running = manager_factory(
        mqtt_url=broker.url("manager"),
        models={"stt": SttConfig, "orchestrator": OrchestratorConfig},
    )
    name = preset_names()[0]
    async with running.client("editor") as http:
        first = await http.post(f"/api/v1/presets/{name}/apply")
        assert first.status_code == 200, first.text
        assert first.json()["changed"] is True
        second = await http.post(f"/api/v1/presets/{name}/apply")
        assert second.status_code == 200
        assert second.json()["changed"] is False
        assert second.json()["versions"] == []
        audit = (await http.get("/api/v1/audit", params={"action": "preset"})).json()
        assert [e["reason"] for e in audit][:1] == ["unchanged"]
        assert all(e["detail"]["preset"] == name for e in audit)


async def test_export_verifies_and_tampering_is_detected(
    manager: RunningManager, keys: Any, service_name: str
) -> None:
    async with manager.client("admin") as http:
        await _write_versions(http, service_name, [8000, 9000, 10000])
        export = (await http.get("/api/v1/export")).json()
        current = (await http.get("/api/v1/export", params={"history": "current"})).json()
    assert verify_export(export, keys.trust).ok, verify_export(export, keys.trust).problems
    assert verify_export(current, keys.trust).ok
    assert [r["version"] for r in current["versions"]] == [3]
    assert "default-api-key" not in json.dumps(export)  # secrets as ciphertext only

    changed = copy.deepcopy(export)
    changed["versions"][1]["values"]["rate"] = 9001
    removed = copy.deepcopy(export)
    del removed["versions"][1]
    reordered = copy.deepcopy(export)
    reordered["versions"][0], reordered["versions"][1] = (
        reordered["versions"][1],
        reordered["versions"][0],
    )
    truncated = copy.deepcopy(export)
    del truncated["versions"][-1]
    resigned_head = copy.deepcopy(export)
    resigned_head["head"]["count"] = 2
    for doc in (changed, removed, reordered, truncated, resigned_head):
        assert not verify_export(doc, keys.trust).ok


async def test_import_is_all_or_nothing_and_bumps_the_epoch(
    manager_factory: Any, broker: Any, keys: Any, service_name: str, tmp_path: Any
) -> None:
    other = f"{service_name}-b"
    models = {service_name: DemoConfig, other: DemoConfig}
    source = manager_factory(
        mqtt_url=broker.url("manager"), models=models, data_dir=tmp_path / "source"
    )
    async with source.client("admin") as http:
        await _write_versions(http, service_name, [20000])
        await _write_versions(http, other, [30000])
        export = (await http.get("/api/v1/export")).json()
    source.stop()
    target = manager_factory(
        mqtt_url=broker.url("manager"), models=models, data_dir=tmp_path / "target"
    )
    async with target.client("admin") as http, watch(broker, keys.trust, other) as watcher:
        await _write_versions(http, service_name, [8000, 8001])
        before = (await http.get(f"/api/v1/configs/{service_name}")).json()

        tampered = copy.deepcopy(export)
        tampered["versions"][-1]["values"]["rate"] = 31000
        bad = await http.post("/api/v1/import", json=tampered)
        assert bad.status_code == 422
        assert bad.json()["type"].endswith("/invalid-export")
        assert (await http.get(f"/api/v1/configs/{service_name}")).json() == before
        async with target.client("editor") as editor:
            assert (await editor.post("/api/v1/import", json=export)).status_code == 403

        ok = await http.post("/api/v1/import", json=export)
        assert ok.status_code == 200, ok.text
        assert ok.json()["epoch"] > before["epoch"]
        after = (await http.get(f"/api/v1/configs/{service_name}")).json()
        assert after["values"]["rate"] == 20000
        assert after["version"] == 3
        async with asyncio.timeout(20):
            while (envelope := await watcher.next()).epoch != ok.json()["epoch"]:
                pass  # the source manager's retained envelope (older epoch) comes first
        assert envelope.version == 1
        assert envelope.config["rate"] == 30000
        audit = (await http.get("/api/v1/audit", params={"action": "import"})).json()
        assert [e["outcome"] for e in audit] == ["ok", "ok", "refused"]


async def test_import_with_an_invalid_service_changes_nothing(
    manager_factory: Any, broker: Any, service_name: str, tmp_path: Any
) -> None:
    other = f"{service_name}-b"
    source = manager_factory(
        mqtt_url=broker.url("manager"),
        models={service_name: DemoConfig, other: DemoConfig},
        data_dir=tmp_path / "source",
    )
    async with source.client("admin") as http:
        await _write_versions(http, service_name, [20000])
        await _write_versions(http, other, [40000])
        export = (await http.get("/api/v1/export")).json()
    source.stop()
    target = manager_factory(
        mqtt_url=broker.url("manager"),
        models={service_name: DemoConfig, other: StricterDemo},
        data_dir=tmp_path / "target",
    )
    async with target.client("admin") as http:
        epoch = (await http.get("/readyz")).json()["epoch"]
        got = await http.post("/api/v1/import", json=export)
        assert got.status_code == 422
        assert got.json()["errors"][0]["loc"] == ["rate"]
        assert (await http.get(f"/api/v1/configs/{service_name}")).json()["version"] == 0
        assert (await http.get("/readyz")).json()["epoch"] == epoch


async def test_get_all_configs_masks_secrets(manager: RunningManager, service_name: str) -> None:
    async with manager.client("viewer") as http:
        got = await http.get("/api/v1/configs")
        assert got.status_code == 200
        config = got.json()["configs"][service_name]
        assert config["values"]["api_key"] == MASK
        assert config["version"] == 0


async def test_a_scoped_token_reaches_only_its_services(
    manager_factory: Any, broker: Any, service_name: str
) -> None:
    other = f"{service_name}-other"
    running = manager_factory(
        mqtt_url=broker.url("manager"), models={service_name: DemoConfig, other: DemoConfig}
    )
    async with running.client("admin") as admin:
        made = await admin.post(
            "/api/v1/tokens",
            json={"name": "scoped-editor", "role": "editor", "services": [service_name]},
        )
        assert made.status_code == 201, made.text
        assert made.json()["services"] == [service_name]
        listed = {t["name"]: t for t in (await admin.get("/api/v1/tokens")).json()}
        assert listed["scoped-editor"]["services"] == [service_name]
        assert listed["admin-token"]["services"] is None
        await _write_versions(admin, other, [9000])
    headers = {"Authorization": f"Bearer {made.json()['token']}"}
    async with httpx.AsyncClient(base_url=running.base_url, headers=headers) as http:
        mine = await http.patch(
            f"/api/v1/configs/{service_name}", json={"rate": 8000}, headers={"If-Match": "0"}
        )
        assert mine.status_code == 200, mine.text
        for method, path in (
            ("GET", f"/api/v1/configs/{other}"),
            ("GET", f"/api/v1/configs/{other}/versions"),
            ("GET", f"/api/v1/configs/{other}/diff?from=0"),
            ("GET", f"/api/v1/services/{other}/instances"),
            ("PATCH", f"/api/v1/configs/{other}"),
            ("POST", f"/api/v1/configs/{other}/rollback"),
            ("GET", "/api/v1/export"),
        ):
            got = await http.request(method, path, json={"rate": 8000}, headers={"If-Match": "1"})
            assert got.status_code == 403, (method, path, got.text)
        assert list((await http.get("/api/v1/configs")).json()["configs"]) == [service_name]
        synced = (await http.get("/api/v1/sync")).json()["services"]
        assert [s["service"] for s in synced] == [service_name]
        assert [s["name"] for s in (await http.get("/api/v1/services")).json()] == [service_name]
        audit = (await http.get("/api/v1/audit")).json()
        assert {e["service"] for e in audit} == {service_name}


async def test_rate_limits_answer_429_without_locking_out_a_valid_token(
    manager_factory: Any, broker: Any, service_name: str
) -> None:
    running = manager_factory(
        mqtt_url=broker.url("manager"),
        models={service_name: DemoConfig},
        rate_limit_auth_failures="5/minute",
        rate_limit_writes="8/minute",
    )
    url = f"/api/v1/configs/{service_name}"
    async with running.client(None) as anonymous, running.client("admin") as admin:
        statuses = [
            (
                await anonymous.get(url, headers={"Authorization": f"Bearer scm_guess{i}"})
            ).status_code
            for i in range(8)
        ]
        assert statuses[:5] == [401] * 5
        assert statuses[5:] == [429] * 3
        limited = await anonymous.get(url)
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["type"].endswith("/rate-limited")
        # same address, valid token: never refused by the failed-authentication limiter
        assert (await admin.get(url)).status_code == 200

        # a burst of writes by one token: the ninth in the minute is refused
        etag = (await admin.get(url)).headers["etag"]
        answers = []
        for i in range(10):
            got = await admin.patch(url, json={"rate": 8000 + i}, headers={"If-Match": etag})
            answers.append(got.status_code)
            if got.status_code == 200:
                etag = got.headers["etag"]
        assert answers == [200] * 8 + [429] * 2
        assert (await admin.get(url)).json()["version"] == 8
    async with running.client("editor") as editor:  # the limit is per token
        ok = await editor.patch(url, json={"rate": 9999}, headers={"If-Match": etag})
        assert ok.status_code == 200
