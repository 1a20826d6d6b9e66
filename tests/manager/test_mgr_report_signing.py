"""Signed applied reports (issue 11 part 4) over the real broker and the real manager (HTTP).

Each ConfigLibrary instance signs its reports with its own key; the manager pins the first
key per instance and shows everything else as forged without touching the genuine state.
The attacker here holds the service's own broker user (what the ACL cannot stop: it may
write ``config/applied/<service>/#``) but not the instance's key file.
"""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
from mgr_harness import RunningManager, eventually, put
from mgr_models import DemoConfig

from config_lib import ConfigLibrary, LibrarySettings, SigningKey, applied_topic, sign_report
from config_manager.instances import InstanceTracker


def _library(broker: Any, keys: Any, service: str, folder: Path) -> ConfigLibrary[Any]:
    return ConfigLibrary(
        service=service,
        model=DemoConfig,
        settings=LibrarySettings(data_dir=folder, initial_wait=5.0, env_fallback=False),
        trust=keys.trust,
        data_keys=[keys.data_key(service)],
        endpoint=broker.endpoint(service),
        instance_id="genuine-1",
    )


async def _instance(http: httpx.AsyncClient, service: str) -> dict[str, Any]:
    [found] = (await http.get(f"/api/v1/services/{service}/instances")).json()
    assert found["instance"] == "genuine-1"
    return dict(found)


async def _until(http: httpx.AsyncClient, service: str, **wanted: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal seen
        seen = await _instance(http, service)
        return all(seen.get(k) == v for k, v in wanted.items())

    try:
        await eventually(check)
    except TimeoutError:
        raise AssertionError(f"instance never showed {wanted}; last: {seen}") from None
    return seen


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def test_forged_reports_are_shown_and_a_rekey_is_approved(
    manager: RunningManager, broker: Any, keys: Any, service_name: str, tmp_path: Path
) -> None:
    service = service_name
    folder = tmp_path / "lib"
    key_file = folder / "lkg" / f"{service}.genuine-1.key"
    topic = applied_topic(service, "genuine-1")
    async with manager.client("admin") as http, manager.client("editor") as editor:
        assert (await put(http, service, {"rate": 8000}, 0)).status_code == 200
        async with _library(broker, keys, service, folder) as cfg:
            await cfg.wait_for_version(1, timeout=10)
            first_key = cfg.report_key_id
            genuine = await _until(http, service, version=1, key_id=first_key)
        assert genuine["forged"] is False
        assert genuine["forged_reason"] is None
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

        # The key survives a restart: the same key, so its reports stay genuine.
        async with _library(broker, keys, service, folder) as cfg:
            assert cfg.report_key_id == first_key
            await _until(http, service, status="applied", forged=False)
        await _until(http, service, status="offline", forged=False)

        # The service's broker user publishes for another instance's id, with its own key.
        attacker = SigningKey.generate()
        claim = {"instance": "genuine-1", "service": service, "status": "applied",
                 "version": 99, "epoch": genuine["epoch"], "time": _now()}  # fmt: skip
        async with aiomqtt.Client(**broker.endpoint(service).client_kwargs()) as svc:
            await svc.publish(topic, sign_report(claim, attacker), qos=1, retain=True)
            forged = await _until(http, service, forged_reason="key_mismatch")
            assert forged["forged"] is True
            assert (forged["status"], forged["version"]) == ("offline", 1)  # genuine state
            assert forged["pending_key_id"] == attacker.key_id
            sync = (await http.get("/api/v1/sync")).json()
            assert sync["summary"]["forged"] >= 1
            [entry] = [s for s in sync["services"] if s["service"] == service]
            assert [
                (i["forged"], i["forged_reason"], i["version"]) for i in entry["instances"]
            ] == [(True, "key_mismatch", 1)]
            # Unsigned, and a genuine-looking report altered after signing.
            unsigned = json.dumps(claim).encode()
            await svc.publish(topic, unsigned, qos=1, retain=True)
            await _until(http, service, forged_reason="unsigned", version=1)
            tampered = sign_report(claim, attacker).replace(b'"version": 99', b'"version": 1')
            await svc.publish(topic, tampered, qos=1, retain=True)
            await _until(http, service, forged_reason="bad_signature", version=1)
        metrics = (await http.get("/metrics")).text
        for reason in ("key_mismatch", "unsigned", "bad_signature"):
            assert f'config_manager_forged_reports_total{{reason="{reason}"}}' in metrics

        # Bad input to the approval API: problem+json 4xx, never a change.
        url = f"/api/v1/services/{service}/instances/genuine-1/key"
        for client, body, status in (
            (editor, {"key_id": attacker.key_id}, 403),  # admin only
            (http, {"key_id": "not-hex"}, 422),
            (http, {"key_id": attacker.key_id, "extra": 1}, 422),
            (http, {}, 422),
            (http, {"key_id": first_key}, 409),  # not the unapproved key seen
        ):
            resp = await client.post(url, json=body)
            assert resp.status_code == status, resp.text
            assert resp.headers["content-type"].startswith("application/problem+json")
        for bad_url, status in (
            (f"/api/v1/services/{service}/instances/nobody-1/key", 404),
            ("/api/v1/services/no-such-service/instances/genuine-1/key", 404),
        ):
            resp = await http.post(bad_url, json={"key_id": attacker.key_id})
            assert resp.status_code == status, resp.text
        broken = await http.post(url, content=b"{", headers={"content-type": "application/json"})
        assert broken.status_code == 400, broken.text
        assert (await _instance(http, service))["key_id"] == first_key

        # A real re-key: the instance lost its key file and made a new one at start.
        key_file.unlink()
        async with _library(broker, keys, service, folder) as cfg:
            second_key = cfg.report_key_id
            assert second_key != first_key
            seen = await _until(http, service, pending_key_id=second_key)
            assert (seen["forged"], seen["forged_reason"]) == (True, "key_mismatch")
            resp = await http.post(url, json={"key_id": second_key})
            assert resp.status_code == 200, resp.text
            assert resp.json()["previous_key_id"] == first_key
            admin = (await http.get("/api/v1/whoami")).json()["name"]
            assert resp.json()["pinned_by"] == admin
            approved = await _until(http, service, key_id=second_key, forged=False)
            assert (approved["status"], approved["version"]) == ("applied", 1)
            assert approved["pending_key_id"] is None
        audit = (await http.get("/api/v1/audit", params={"action": "instance.key.approve"})).json()
        assert [(a["actor"], a["detail"]["key_id"]) for a in audit] == [(admin, second_key)]


def _report(instance: str, key: SigningKey, time: str, **doc: Any) -> bytes:
    body = {"instance": instance, "service": "svc", "status": "applied", "time": time}
    return sign_report({**body, **doc}, key)


def test_tracker_verdicts_identity_replay_and_offline_will() -> None:
    """Pure checks of the manager's rules (no broker): identity, replay, the will's age."""
    tracker = InstanceTracker()
    key = SigningKey.generate()
    topic = "config/applied/svc/a"
    t1, t2, t3 = (f"2026-11-30T00:00:0{n}.000000Z" for n in (1, 2, 3))
    shown = tracker.handle(topic, _report("a", key, t2, version=2), 1.0)
    assert shown is not None
    assert (shown.forged, shown.version) == (False, 2)
    # Another instance's genuine report, moved to this instance's topic.
    moved = tracker.handle(topic, _report("b", key, t3, version=5), 2.0)
    assert moved is not None
    assert (moved.forged_reason, moved.version) == ("identity_mismatch", 2)
    # An older genuine report published again: replayed, the state stays.
    old = tracker.handle(topic, _report("a", key, t1, version=1), 3.0)
    assert old is not None
    assert (old.forged_reason, old.version) == ("replayed", 2)
    # The MQTT will is signed when the connection opens: older, yet genuine.
    will = tracker.handle(topic, _report("a", key, t1, status="offline", version=2), 4.0)
    assert will is not None
    assert (will.forged, will.status) == (False, "offline")
    # ...and it does not lower the replay floor.
    again = tracker.handle(topic, _report("a", key, t1, version=1), 5.0)
    assert again is not None
    assert again.forged_reason == "replayed"
    newer = tracker.handle(topic, _report("a", key, t3, version=3), 6.0)
    assert newer is not None
    assert (newer.forged, newer.version) == (False, 3)
