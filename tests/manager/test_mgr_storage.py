"""Storage faults on a real, size-limited file system (tmpfs): disk full while the manager runs.

What must hold: a write the database cannot store is a 503 problem+json with Retry-After and
leaves nothing behind; ``/readyz`` says not ready and why; the publisher stays alive (the
acknowledged writes reach a real subscriber while the disk is still full) and the fault is
logged once; once space is back everything recovers by itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from mgr_harness import (
    RunningManager,
    collect_until,
    eventually,
    persistent_watch,
    put,
)
from mgr_models import DemoConfig

from config_lib import AppliedReport, SigningKey, applied_topic
from config_manager.store import ConfigStore, NewVersion, StorageError, StorageLimits

REPO = Path(__file__).resolve().parents[2]
STORAGE_LOGGER = "config_manager.store"


def _saved_instances(db: Path, service: str) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT instance FROM instances WHERE service = ?", (service,))
        return [r[0] for r in rows]
    finally:
        conn.close()


def _fault_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == STORAGE_LOGGER and text in r.getMessage()
    ]


async def test_disk_full_gives_503_keeps_publishing_and_recovers_by_itself(
    small_fs: Any,
    manager_factory: Any,
    own_broker: Any,
    keys: Any,
    service_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    manager: RunningManager = manager_factory(
        mqtt_url=own_broker.url("manager"),
        models={service_name: DemoConfig},
        data_dir=small_fs.path / "data",
        storage_retry_min_s=0.05,
        storage_retry_max_s=0.5,
        # Only the fault itself makes readyz not ready here (not the free-space check), so
        # that readiness coming back proves the background probe noticed the space.
        storage_min_free_bytes=0,
    )
    uri = f"/api/v1/configs/{service_name}"
    async with (
        persistent_watch(own_broker, keys.trust, service_name) as queue,
        manager.client("editor") as http,
    ):
        resp = await put(http, service_name, {"label": "v1"}, 0)
        assert resp.json()["publication"] == "published"
        # Broker down: three more writes are acknowledged, their publication pending.
        own_broker.stop()
        etag = resp.headers["etag"]
        for label in ("v2", "v3", "v4"):
            resp = await put(http, service_name, {"label": label}, etag)
            assert resp.status_code == 200, resp.text
            assert resp.json()["publication"] == "pending"
            etag = resp.headers["etag"]

        small_fs.fill()

        refused = await put(http, service_name, {"label": "lost"}, etag)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        problem = refused.json()
        assert problem["type"].endswith("/storage-unavailable")
        assert "database or disk is full" in problem["detail"]
        assert problem["error"] == "SQLITE_FULL"
        # A merge patch and a second attempt are refused the same way.
        patch = await http.patch(
            uri,
            json={"label": "lost-too"},
            headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"},
        )
        assert patch.status_code == 503, patch.text
        # Nothing half-written: the current version, the history and the outbox are as before.
        current = await http.get(uri)
        assert current.json()["version"] == 4
        assert current.json()["values"]["label"] == "v4"
        versions = await http.get(f"/api/v1/services/{service_name}/versions")
        assert [v["version"] for v in versions.json()] == [4, 3, 2, 1]

        ready = await http.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["storage"] == "not writable"
        assert "database or disk is full" in body["detail"]
        assert body["outbox_depth"] == 3  # reads still work

        # The broker comes back while the disk is still full: the publisher (alive) drains
        # the outbox; only its "published" marks cannot be written, and are retried.
        own_broker.start()
        seen = await collect_until(queue, 4)
        # Every version, in order. The watcher's session may get v1 once more: QoS 1 is at
        # least once, and a broker stopped right after delivering it may not have recorded
        # the watcher's PUBACK (the write is answered at the envelope's PUBACK).
        assert set(seen) == {1, 2, 3, 4}
        assert seen == sorted(seen)
        assert seen.count(2) == seen.count(3) == seen.count(4) == 1

        async def broker_back() -> bool:
            return bool((await http.get("/readyz")).json()["broker"] == "connected")

        await eventually(broker_back)
        # An instance reports meanwhile: shown at once, saved to the database (retried).
        async with aiomqtt.Client(**own_broker.endpoint(service_name).client_kwargs()) as svc:
            report = AppliedReport("inst-1", service_name, "applied", 4, None, "broker")
            await svc.publish(
                applied_topic(service_name, "inst-1"),
                report.to_bytes(SigningKey.generate()),
                qos=1,
                retain=True,
            )

        async def instance_listed() -> bool:
            listed = await http.get(f"/api/v1/services/{service_name}/instances")
            return [i["instance"] for i in listed.json()] == ["inst-1"]

        await eventually(instance_listed)

        async def instance_save_failed() -> bool:
            metrics = (await http.get("/metrics")).text
            return 'code="SQLITE_FULL",operation="save instances"' in metrics

        await eventually(instance_save_failed)
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["publisher_failure"] is None
        assert ready.json()["storage"] == "not writable"

        metrics = (await http.get("/metrics")).text
        assert 'config_manager_storage_errors_total{code="SQLITE_FULL",operation="write"}' in (
            metrics
        )
        assert "config_manager_storage_writable 0.0" in metrics
        assert 'config_manager_writes_total{result="unavailable"' in metrics

        small_fs.free()

        async def ready_again() -> bool:
            body = (await http.get("/readyz")).json()
            return bool(body["status"] == "ready" and body["outbox_depth"] == 0)

        await eventually(ready_again, wait_s=15)
        resp = await put(http, service_name, {"label": "v5"}, etag)
        assert resp.status_code == 200, resp.text
        assert resp.json()["publication"] == "published"
        seen += await collect_until(queue, 5)
        assert set(seen) == {1, 2, 3, 4, 5}
        assert seen == sorted(seen)
        metrics = (await http.get("/metrics")).text
        assert "config_manager_storage_writable 1.0" in metrics

        async def instance_saved() -> bool:
            return _saved_instances(manager.settings.db_file, service_name) == ["inst-1"]

        await eventually(instance_saved)

    # One line when the fault began, one when it ended: not one per failed retry, and no
    # other errors from the manager (the publisher and the instance saver only retry). The
    # test's own watcher (aiomqtt's "mqtt" log) may see its connection reset when the broker
    # stops with the watcher's PUBACK of v1 unread: not the manager's.
    assert len(_fault_lines(caplog, "cannot store changes")) == 1
    assert len(_fault_lines(caplog, "accepts writes again")) == 1
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith("config_manager")
    ]
    assert len(errors) == 1, errors


async def test_a_multi_service_write_on_a_full_disk_leaves_nothing(small_fs: Any) -> None:
    db = small_fs.path / "manager.db"
    limits = StorageLimits(retry_min_s=0.05, retry_max_s=0.2, min_free_bytes=64 * 1024)
    async with ConfigStore(db, limits=limits) as store:
        await store.write([NewVersion("svc-a", 0, {"n": 1})], actor="t")
        assert store.storage_problem() is None
        small_fs.fill()
        # Seen before any write fails: the file system has no room left.
        assert "bytes free" in (store.storage_problem() or "")
        with pytest.raises(StorageError) as info:
            await store.write(
                [NewVersion("svc-b", 0, {"n": 1}), NewVersion("svc-a", 1, {"n": 2})], actor="t"
            )
        assert info.value.code == "SQLITE_FULL"
        assert "database or disk is full" in (store.storage_problem() or "")
        assert await store.current("svc-b") is None
        assert (await store.current("svc-a")) is not None
        assert [v.version for v in await store.history("svc-a")] == [1]
        assert [v.version for v in await store.history("svc-b")] == []
        assert await store.outbox_depth() == 1
        small_fs.free()
        # The store's background probe notices by itself; then the same write goes through.
        assert not store.writable.is_set()
        await asyncio.wait_for(store.writable.wait(), 10)
        assert store.storage_problem() is None
        stored = await store.write(
            [NewVersion("svc-b", 0, {"n": 1}), NewVersion("svc-a", 1, {"n": 2})], actor="t"
        )
        assert [(s.service, s.version) for s in stored] == [("svc-b", 1), ("svc-a", 2)]


def test_a_read_only_file_system_is_reported_before_any_write(small_fs: Any) -> None:
    store = ConfigStore(small_fs.path / "manager.db")
    assert store.storage_problem() is None
    small_fs.remount("ro")
    try:
        assert store.storage_problem() == "the database's file system is read-only"
    finally:
        small_fs.remount("rw")


def test_small_fs_is_really_size_limited(small_fs: Any) -> None:
    small_fs.fill()
    assert small_fs.free_bytes() == 0
    with pytest.raises(OSError, match="No space left"):
        Path(small_fs.path / "more").write_bytes(b"x" * 8192)


def test_the_command_line_on_a_full_disk_says_so_in_one_line(small_fs: Any) -> None:
    data = small_fs.path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "config_manager"]
    init = subprocess.run(
        [*base, "init", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    small_fs.fill()
    for args in (
        ["token", "--data-dir", str(data), "create", "--role", "viewer", "late"],
        ["epoch", "--data-dir", str(data), "bump"],
    ):
        proc = subprocess.run(
            [*base, *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("config manager: the database cannot be used:")
