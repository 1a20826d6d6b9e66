"""Fleet sync and schema evolution over real HTTP, the real broker and real ConfigLibrary
instances: in sync, behind, rejected (with the reason), offline; configs that no longer
pass today's model."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
from mgr_harness import RunningManager, eventually
from mgr_models import DemoConfig, StricterDemo
from pydantic import BaseModel

from config_lib import ConfigLibrary, LibrarySettings, SigningKey, applied_topic, sign_report

# Each hand-made instance signs its reports with its own key, as ConfigLibrary does.
_KEYS: collections.defaultdict[str, SigningKey] = collections.defaultdict(SigningKey.generate)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DemoV2(DemoConfig):
    """DemoConfig as a later release defines it: one added field with a default."""

    mode: str = "fast"


def _library(
    model: type[BaseModel], name: str, broker: Any, keys: Any, service: str, tmp_path: Path
) -> ConfigLibrary[Any]:
    return ConfigLibrary(
        service=service,
        model=model,
        settings=LibrarySettings(data_dir=tmp_path / name, initial_wait=5.0, env_fallback=False),
        trust=keys.trust,
        data_keys=[keys.data_key(service)],
        endpoint=broker.endpoint(service),
        instance_id=name,
    )


async def _states(http: httpx.AsyncClient, service: str) -> dict[str, dict[str, Any]]:
    body = (await http.get("/api/v1/sync")).json()
    [entry] = [s for s in body["services"] if s["service"] == service]
    return {i["instance"]: i for i in entry["instances"]}


async def _until(http: httpx.AsyncClient, service: str, wanted: dict[str, str]) -> dict[str, Any]:
    """Wait (bounded) until /sync shows each instance in the wanted state."""
    seen: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal seen
        seen = await _states(http, service)
        return all(seen.get(k, {}).get("state") == v for k, v in wanted.items())

    try:
        await eventually(check, wait_s=20)
    except TimeoutError:
        raise AssertionError(f"/sync never showed {wanted}; last: {seen}") from None
    return seen


async def _report(broker: Any, service: str, instance: str, **doc: Any) -> None:
    """An applied report as an instance publishes it (the service's own MQTT user)."""
    doc = {"instance": instance, "service": service, "time": _now(), **doc}
    async with aiomqtt.Client(**broker.endpoint(service).client_kwargs()) as client:
        await client.publish(
            applied_topic(service, instance), sign_report(doc, _KEYS[instance]), qos=1, retain=True
        )


async def test_sync_shows_in_sync_behind_rejected_and_offline(
    manager_factory: Any, broker: Any, keys: Any, service_name: str, tmp_path: Path
) -> None:
    first = manager_factory(mqtt_url=broker.url("manager"), models={service_name: DemoConfig})
    old = _library(DemoConfig, "old-1", broker, keys, service_name, tmp_path)
    new = _library(DemoV2, "new-1", broker, keys, service_name, tmp_path)
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(first.client("editor"))
        put = await http.patch(
            f"/api/v1/configs/{service_name}", json={"rate": 22050}, headers={"If-Match": "0"}
        )
        assert put.status_code == 200, put.text
        epoch = put.json()["epoch"]
        old_cfg = await stack.enter_async_context(old)
        new_cfg = await stack.enter_async_context(new)
        # the old model and the new one (an added field with a default) run the same config
        assert (await old_cfg.wait_for_version(1, timeout=10)).rate == 22050
        on_new = await new_cfg.wait_for_version(1, timeout=10)
        assert on_new.rate == 22050
        assert on_new.mode == "fast"
        await _until(http, service_name, {"old-1": "in_sync", "new-1": "in_sync"})

        # the manager is up and signs freshness records: both instances report it fresh
        async def fresh() -> bool:
            body = (await http.get("/api/v1/sync")).json()
            entry = next(s for s in body["services"] if s["service"] == service_name)
            states = {i["instance"]: i["freshness"] for i in entry["instances"]}
            return states.get("old-1") == "fresh" and states.get("new-1") == "fresh"

        await eventually(fresh, wait_s=20)

        # an instance still on version 1 while version 2 is current: behind, then in sync
        await _report(broker, service_name, "laggard", status="applied", version=1, epoch=epoch)
        two = await http.patch(
            f"/api/v1/configs/{service_name}", json={"label": "two"}, headers={"If-Match": "1"}
        )
        assert two.status_code == 200
        seen = await _until(
            http, service_name, {"laggard": "behind", "old-1": "in_sync", "new-1": "in_sync"}
        )
        assert seen["laggard"]["version"] == 1
        summary = (await http.get("/api/v1/sync")).json()["summary"]
        assert summary["behind"] >= 1
        await _report(broker, service_name, "laggard", status="applied", version=2, epoch=epoch)
        await _until(http, service_name, {"laggard": "in_sync"})
        await stack.aclose()  # both libraries stop: offline reports
        http = await stack.enter_async_context(first.client("editor"))
        await _until(http, service_name, {"old-1": "offline", "new-1": "offline"})
    first.stop()

    # the manager upgraded to the new model writes the new field: the old instance refuses it
    second = manager_factory(
        mqtt_url=broker.url("manager"),
        models={service_name: DemoV2},
        data_dir=first.data_dir,
        tokens=first.tokens,
    )
    old = _library(DemoConfig, "old-1", broker, keys, service_name, tmp_path)
    new = _library(DemoV2, "new-1", broker, keys, service_name, tmp_path)
    async with second.client("editor") as http, old as old_cfg, new as new_cfg:
        await old_cfg.wait_for_version(2, timeout=10)
        three = await http.patch(
            f"/api/v1/configs/{service_name}", json={"mode": "slow"}, headers={"If-Match": "2"}
        )
        assert three.status_code == 200, three.text
        assert (await new_cfg.wait_for_version(3, timeout=10)).mode == "slow"
        seen = await _until(http, service_name, {"old-1": "rejected", "new-1": "in_sync"})
        assert seen["old-1"]["version"] == 2  # still runs its last good config
        assert seen["old-1"]["reason"]
        assert old_cfg.current.rate == 22050


async def test_a_config_that_no_longer_validates_is_listed_and_must_be_fixed_first(
    manager_factory: Any, broker: Any, service_name: str, tmp_path: Path
) -> None:
    first = manager_factory(mqtt_url=broker.url("manager"), models={service_name: DemoConfig})
    async with first.client("editor") as http:
        got = await http.patch(
            f"/api/v1/configs/{service_name}", json={"rate": 48000}, headers={"If-Match": "0"}
        )
        assert got.status_code == 200
    first.stop()
    second: RunningManager = manager_factory(
        mqtt_url=broker.url("manager"),
        models={service_name: StricterDemo},
        data_dir=first.data_dir,
        tokens=first.tokens,
    )
    async with second.client("editor") as http:
        sync = (await http.get("/api/v1/sync")).json()
        [entry] = sync["services"]
        assert entry["config_valid"] is False
        assert [e["loc"] for e in entry["config_errors"]] == [["rate"]]
        assert sync["summary"]["invalid_configs"] == 1
        ready = (await http.get("/readyz")).json()
        assert [e["loc"] for e in ready["invalid_configs"][service_name]] == [["rate"]]
        # nothing is dropped: the stored config is still served as it is
        assert (await http.get(f"/api/v1/configs/{service_name}")).json()["values"]["rate"] == 48000
        url = f"/api/v1/configs/{service_name}"
        refused = await http.patch(url, json={"label": "x"}, headers={"If-Match": "1"})
        assert refused.status_code == 422
        assert refused.json()["outdated_fields"] == [["rate"]]
        assert "fix these fields first" in refused.json()["detail"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONFIGCTL_")} | {
            "CONFIGCTL_URL": second.base_url,
            "CONFIGCTL_TOKEN": second.tokens["viewer"],
            "CONFIGCTL_CONFIG": str(tmp_path / "none.toml"),
            "COLUMNS": "200",
        }
        ctl = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "config_manager.cli", "sync"],
            env=env,
            capture_output=True,
            text=True,
            timeout=50,
            check=False,
        )
        assert ctl.returncode == 1, ctl.stderr
        assert "OUTDATED: rate" in ctl.stdout
        assert "1 outdated configs" in ctl.stdout
        fixed = await http.patch(url, json={"rate": 24000}, headers={"If-Match": "1"})
        assert fixed.status_code == 200, fixed.text
        sync = (await http.get("/api/v1/sync")).json()
        assert sync["services"][0]["config_valid"] is True
        assert (await http.get("/readyz")).json()["invalid_configs"] == {}


async def test_sync_force_republishes_and_instances_report_again(
    manager: RunningManager, broker: Any, keys: Any, service_name: str, tmp_path: Path
) -> None:
    from mgr_harness import watch

    library = _library(DemoConfig, "forced-1", broker, keys, service_name, tmp_path)
    async with manager.client("admin") as http, library as cfg:
        got = await http.patch(
            f"/api/v1/configs/{service_name}", json={"rate": 9000}, headers={"If-Match": "0"}
        )
        assert got.status_code == 200
        await cfg.wait_for_version(1, timeout=10)
        url = f"/api/v1/services/{service_name}/instances"

        async def reported_v1() -> bool:
            return any(i["version"] == 1 for i in (await http.get(url)).json())

        await eventually(reported_v1)
        [before] = (await http.get(url)).json()
        async with manager.client("editor") as editor:
            assert (await editor.post("/api/v1/sync/force")).status_code == 403
        async with watch(broker, keys.trust, service_name) as watcher:
            retained = await watcher.next()  # what a new subscriber gets: the retained v1
            assert retained.version == 1
            forced = await http.post("/api/v1/sync/force")
            assert forced.status_code == 200, forced.text
            assert forced.json()["publication"] == "published"
            assert service_name in forced.json()["services"]
            again = await watcher.next()  # republished (retained) by the forced sync
            assert again.version == 1

        async def reported_again() -> bool:
            [now] = (await http.get(url)).json()
            return bool(now["received_at"] > before["received_at"])

        await eventually(reported_again)  # the instance answered the report request
        audit = (await http.get("/api/v1/audit", params={"action": "sync.force"})).json()
        assert audit[0]["actor"] == "admin-token"
        assert service_name in audit[0]["detail"]["services"]
