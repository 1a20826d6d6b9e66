"""The manager's instance view is kept in its database and survives its own restart.

Proof that the view comes from the database and not from retained reports: the manager
restarts while the broker is down, so nothing can be redelivered, and the instances are
still listed. (RabbitMQ never redelivers retained reports to the manager's wildcard
subscription; see tests/broker/test_broker_matrix.py for the same check on both brokers.)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from mgr_harness import RunningManager, eventually, start_manager
from mgr_models import DemoConfig

from config_lib import ConfigLibrary, LibrarySettings, SigningKey, applied_topic, sign_report
from config_manager.instances import InstanceTracker


async def test_instances_are_listed_after_a_restart_without_the_broker(
    manager_factory: Any, own_broker: Any, keys: Any, service_name: str, tmp_path: Path
) -> None:
    models = {service_name: DemoConfig}
    first: RunningManager = manager_factory(mqtt_url=own_broker.url("manager"), models=models)
    settings = LibrarySettings(data_dir=tmp_path / "lib", initial_wait=2.0, env_fallback=False)
    library = ConfigLibrary(
        service=service_name,
        model=DemoConfig,
        settings=settings,
        trust=keys.trust,
        data_keys=[keys.data_key(service_name)],
        endpoint=own_broker.endpoint(service_name),
        instance_id="kept-1",
    )
    async with library as cfg, first.client("editor") as http:
        resp = await http.put(
            f"/api/v1/configs/{service_name}", json={"rate": 8000}, headers={"If-Match": "0"}
        )
        assert resp.status_code == 200, resp.text
        await cfg.wait_for_version(1, timeout=10)

        async def reported() -> bool:
            got = await http.get(f"/api/v1/services/{service_name}/instances")
            return any(i["version"] == 1 for i in got.json())

        await eventually(reported)
        first.stop()  # the saved batch includes the report (saved at shutdown at the latest)
        own_broker.stop()

    second = start_manager(
        first.data_dir,
        mqtt_url=own_broker.url("manager"),
        models=models,
        tokens=first.tokens,
        wait_for_broker=False,
    )
    try:
        async with second.client("viewer") as http:
            assert (await http.get("/readyz")).json()["broker"] != "connected"
            instances = (await http.get(f"/api/v1/services/{service_name}/instances")).json()
            services = (await http.get("/api/v1/services")).json()
    finally:
        second.stop()
    assert [(i["instance"], i["status"], i["version"]) for i in instances] == [
        ("kept-1", "applied", 1)
    ]
    assert instances[0]["current"] is True
    assert [s["instances"] for s in services if s["name"] == service_name] == [1]


async def test_a_removed_retained_report_removes_the_saved_instance(
    manager: RunningManager, broker: Any, service_name: str
) -> None:
    import aiomqtt

    topic = applied_topic(service_name, "gone-1")
    report = _signed("gone-1", status="applied", version=0, epoch=1, service=service_name)
    async with (
        aiomqtt.Client(**broker.endpoint(service_name).client_kwargs()) as svc,
        manager.client("viewer") as http,
    ):
        await svc.publish(topic, report, qos=1, retain=True)

        async def count(n: int) -> bool:
            got = await http.get(f"/api/v1/services/{service_name}/instances")
            return len(got.json()) == n

        await eventually(lambda: count(1))
        await svc.publish(topic, b"", qos=1, retain=True)  # the instance is decommissioned
        await eventually(lambda: count(0))
    manager.stop()
    db = sqlite3.connect(manager.settings.db_file)
    try:
        rows = db.execute("SELECT instance FROM instances WHERE service = ?", (service_name,))
        assert rows.fetchall() == []
    finally:
        db.close()


def _signed(instance: str, *, service: str = "svc", **doc: Any) -> bytes:
    body = {"instance": instance, "service": service, "time": "2026-11-30T00:00:00.000000Z"}
    return sign_report({**body, **doc}, _KEY)


_KEY = SigningKey.generate()


def test_tracker_hands_out_each_change_once_and_bounds_instances() -> None:
    tracker = InstanceTracker(max_per_service=2)
    assert tracker.handle("config/applied/svc/a", _signed("a", status="applied"), 1.0)
    assert tracker.handle("config/applied/svc/b", _signed("b", status="applied"), 1.0)
    assert tracker.handle("config/applied/svc/c", _signed("c", status="applied"), 1.0) is None
    assert tracker.changed.is_set()
    saved, removed = tracker.take_changes()
    assert [r.instance for r in saved] == ["a", "b"]
    assert removed == []
    assert [p.instance for p in tracker.take_pins()] == ["a", "b"]  # pinned on first use
    assert not tracker.changed.is_set()
    assert tracker.take_changes() == ([], [])
    tracker.handle("config/applied/svc/a", b"", 2.0)
    assert tracker.take_changes() == ([], [("svc", "a")])
    tracker.restore_changes([("svc", "b")])  # a failed save is retried
    assert [r.instance for r in tracker.take_changes()[0]] == ["b"]


def test_loaded_reports_do_not_override_newer_ones() -> None:
    tracker = InstanceTracker()
    assert tracker.handle("config/applied/svc/a", _signed("a", status="applied", version=2), 5.0)
    old = InstanceTracker()
    old.handle("config/applied/svc/a", _signed("a", status="applied", version=1), 1.0)
    old.handle("config/applied/svc/z", _signed("z", status="offline"), 1.0)
    tracker.load(old.take_changes()[0])
    assert [(r.instance, r.version) for r in tracker.for_service("svc")] == [
        ("a", 2),
        ("z", None),
    ]
