"""The manager killed with SIGKILL during a burst loses no acknowledged write."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from mgr_harness import eventually, watch, write_keys

from config_lib import decrypt_secrets
from config_manager.broker import free_port
from config_manager.tokens import Role, create_token_sync

REPO = Path(__file__).resolve().parents[2]


def _spawn(data_dir: Path, port: int, mqtt_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONFIG_MANAGER_DATA_DIR": str(data_dir),
        "CONFIG_MANAGER_MQTT_URL": mqtt_url,
        "CONFIG_MANAGER_RECONNECT_MAX_S": "0.5",
        # Answer without waiting for the PUBACK, so the kill leaves rows in the outbox.
        "CONFIG_MANAGER_PUBLISH_WAIT_S": "0",
        "PYTHONPATH": str(REPO),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "config_manager", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


async def _wait_ready(http: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    async def ready() -> bool:
        assert proc.poll() is None, "the manager exited"
        try:
            return (await http.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, wait_s=30)


async def test_sigkill_during_a_burst_loses_no_acknowledged_write(
    tmp_path: Path, own_broker: Any, keys: Any
) -> None:
    service = "stt"  # a service registered through the entry points (own broker: no clash)
    data_dir = tmp_path / "data"
    write_keys(data_dir, keys)
    token = create_token_sync(data_dir / "manager.db", "burst-editor", Role.editor)
    port = free_port()
    log = tmp_path / "manager.log"
    mqtt_url = own_broker.url("manager")
    proc = _spawn(data_dir, port, mqtt_url, log)
    acknowledged: dict[int, str] = {}
    try:
        async with (
            watch(own_broker, keys.trust, service) as watcher,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ) as http,
        ):
            await _wait_ready(http, proc)
            etag = "0"
            kill_after = 15

            async def burst() -> None:
                nonlocal etag
                i = 0
                while True:
                    prompt = f"burst write {i}"
                    resp = await http.patch(
                        f"/api/v1/configs/{service}",
                        json={"initial_prompt": prompt},
                        headers={"If-Match": etag},
                    )
                    assert resp.status_code == 200, resp.text
                    acknowledged[resp.json()["version"]] = prompt
                    etag = resp.headers["etag"]
                    i += 1
                    if i == kill_after:
                        # The next write is in flight when the process dies.
                        next_write = asyncio.create_task(
                            http.patch(
                                f"/api/v1/configs/{service}",
                                json={"initial_prompt": f"burst write {i}"},
                                headers={"If-Match": etag},
                            )
                        )
                        await asyncio.sleep(0)  # let it reach the socket
                        os.kill(proc.pid, signal.SIGKILL)
                        try:
                            last = await next_write
                        except httpx.TransportError:
                            return
                        if last.status_code == 200:
                            acknowledged[last.json()["version"]] = f"burst write {i}"
                        return

            await burst()
            proc.wait(10)
            assert proc.returncode == -signal.SIGKILL

            proc = _spawn(data_dir, port, mqtt_url, log)
            await _wait_ready(http, proc)
            newest = max(acknowledged)
            current = (await http.get(f"/api/v1/configs/{service}")).json()
            assert current["version"] >= newest
            history = {
                v["version"]: v["values"]["initial_prompt"]
                for v in (await http.get(f"/api/v1/services/{service}/versions?limit=1000")).json()
            }
            for version, prompt in acknowledged.items():
                assert history[version] == prompt

            seen = await watcher.until_version(current["version"], wait_s=30)
            published = {env.version for env in seen}
            assert set(acknowledged) <= published
            for env in seen:
                plain = decrypt_secrets(env.config, service=service, keys=[keys.data_key(service)])
                if env.version in acknowledged:
                    assert plain["initial_prompt"] == acknowledged[env.version]

            async def drained() -> bool:
                return bool((await http.get("/readyz")).json()["outbox_depth"] == 0)

            await eventually(drained, wait_s=30)  # the restarted manager emptied the outbox
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)


async def test_outbox_rows_left_by_a_killed_manager_are_published_after_restart(
    tmp_path: Path, own_broker: Any, keys: Any
) -> None:
    """Deterministic variant: the broker is down, so every write stays in the outbox."""
    service = "stt"
    data_dir = tmp_path / "data"
    write_keys(data_dir, keys)
    token = create_token_sync(data_dir / "manager.db", "outbox-editor", Role.editor)
    port = free_port()
    log = tmp_path / "manager.log"
    own_broker.password("debug")  # the watcher's user exists before the broker stops
    mqtt_url = own_broker.url("manager")
    proc = _spawn(data_dir, port, mqtt_url, log)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ) as http:
            await _wait_ready(http, proc)
            own_broker.stop()

            async def offline() -> bool:
                return bool((await http.get("/readyz")).json()["broker"] == "disconnected")

            await eventually(offline)
            etag = "0"
            for i in range(5):
                resp = await http.patch(
                    f"/api/v1/configs/{service}",
                    json={"initial_prompt": f"offline write {i}"},
                    headers={"If-Match": etag},
                )
                assert resp.status_code == 200
                assert resp.json()["publication"] == "pending"
                etag = resp.headers["etag"]
            assert (await http.get("/readyz")).json()["outbox_depth"] == 5
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

            own_broker.start()
            async with watch(own_broker, keys.trust, service) as watcher:
                proc = _spawn(data_dir, port, mqtt_url, log)
                seen = await watcher.until_version(5, wait_s=30)
                assert [e.version for e in seen] == [1, 2, 3, 4, 5]
                await _wait_ready(http, proc)

                # The counters move at the PUBACKs, which may trail the deliveries a little.
                async def counted() -> bool:
                    metrics = (await http.get("/metrics")).text
                    return 'config_manager_published_total{kind="outbox"} 5.0' in metrics

                await eventually(counted)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
