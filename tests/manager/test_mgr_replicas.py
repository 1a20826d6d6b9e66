"""Replicas: managers sharing one PostgreSQL database, real processes, one publisher lease.

* A write on the standby replica is published by the publishing one.
* SIGSTOP the publisher until the other has taken over, then resume it: it publishes
  nothing (its deadline passed), and says it is on standby.
* SIGKILL the (new) publisher mid-burst: the standby takes the lease, raises the epoch and
  publishes every acknowledged write; no version is published twice with different
  content; a subscriber arriving afterwards gets the newest version at the new epoch.

The failover time (kill → first envelope at the new epoch) is printed (``-s``): figures
belong to the report, not to assertions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from mgr_harness import eventually, watch, write_keys

from config_lib import Envelope, decrypt_secrets
from config_manager.broker import free_port
from config_manager.dialects import PostgresUrl
from config_manager.tokens import Role, create_token_sync
from tests.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]
SERVICE = "stt"  # registered through the entry points; each test has its own broker
LEASE_S = 1.5


class Replica:
    def __init__(self, name: str, url: PostgresUrl, data_dir: Path, mqtt_url: str, **env: str):
        self.name = name
        self.port = free_port()
        self.log = data_dir.parent / f"{name}.log"
        environ = {
            **os.environ,
            "CONFIG_MANAGER_DATA_DIR": str(data_dir),
            "CONFIG_MANAGER_DATABASE_URL": url.url,
            "CONFIG_MANAGER_MQTT_URL": mqtt_url,
            "CONFIG_MANAGER_RECONNECT_MAX_S": "0.5",
            "CONFIG_MANAGER_PUBLISHER_LEASE_S": str(LEASE_S),
            # Answer without waiting for the PUBACK, so a kill leaves rows in the outbox.
            "CONFIG_MANAGER_PUBLISH_WAIT_S": "0",
            "PYTHONPATH": str(REPO),
            **env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "config_manager", "serve", "--port", str(self.port)],
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, http: httpx.AsyncClient, role: str) -> dict[str, Any]:
        """Wait until /readyz is 200 with ``publisher`` == role; returns the body."""
        found: dict[str, Any] = {}

        async def check() -> bool:
            assert self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()[-3000:]}"
            try:
                resp = await http.get(f"{self.base_url}/readyz")
            except httpx.TransportError:
                return False
            found.update(resp.json())
            return resp.status_code == 200 and found.get("publisher") == role

        await eventually(check, wait_s=30)
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextmanager
def replicas(*made: Replica) -> Iterator[None]:
    try:
        yield
    finally:
        for replica in made:
            replica.stop()


@asynccontextmanager
async def client(token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        yield http


def _setup(tmp_path: Path, postgres: PostgresServer, keys: Any) -> tuple[PostgresUrl, Path, str]:
    url = postgres.new_database()
    data_dir = tmp_path / "data"
    write_keys(data_dir, keys)
    token = create_token_sync(url, "replica-editor", Role.editor)
    return url, data_dir, token


async def _patch(http: httpx.AsyncClient, replica: Replica, prompt: str) -> httpx.Response:
    """PATCH with the replica's current ETag (re-read on a conflict)."""
    for _ in range(5):
        got = await http.get(f"{replica.base_url}/api/v1/configs/{SERVICE}")
        resp = await http.patch(
            f"{replica.base_url}/api/v1/configs/{SERVICE}",
            json={"initial_prompt": prompt},
            headers={"If-Match": got.headers["etag"]},
        )
        if resp.status_code != 412:
            return resp
    return resp


async def _burst_then_kill(
    http: httpx.AsyncClient, victim: Replica, acknowledged: dict[int, str], writes: int
) -> float:
    """PATCH ``writes`` times on ``victim``, SIGKILL it with one more write in flight;
    records what was acknowledged; returns the monotonic time of the kill."""
    got = await http.get(f"{victim.base_url}/api/v1/configs/{SERVICE}")
    etag = got.headers["etag"]
    for i in range(writes + 1):
        prompt = f"burst write {i}"
        request = http.patch(
            f"{victim.base_url}/api/v1/configs/{SERVICE}",
            json={"initial_prompt": prompt},
            headers={"If-Match": etag},
        )
        if i < writes:
            resp = await request
            assert resp.status_code == 200, resp.text
            acknowledged[resp.json()["version"]] = prompt
            etag = resp.headers["etag"]
            continue
        pending = asyncio.create_task(request)  # in flight when the process dies
        await asyncio.sleep(0)
        os.kill(victim.proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            last = await pending
        except httpx.TransportError:
            return killed_at
        if last.status_code == 200:
            acknowledged[last.json()["version"]] = prompt
        return killed_at
    raise AssertionError("unreachable")


async def test_failover_sigstop_then_sigkill_of_the_publishing_replica(
    tmp_path: Path, postgres: PostgresServer, own_broker: Any, keys: Any
) -> None:
    url, data_dir, token = _setup(tmp_path, postgres, keys)
    mqtt_url = own_broker.url("manager")
    # a republishes often (freshness interval), so it would publish as soon as it runs.
    a = Replica(
        "a", url, data_dir, mqtt_url,
        CONFIG_MANAGER_FRESHNESS_INTERVAL_S="0.3", CONFIG_MANAGER_FRESHNESS_EXPIRY_S="30",
    )  # fmt: skip
    acknowledged: dict[int, str] = {}
    with replicas(a):
        async with watch(own_broker, keys.trust, SERVICE) as watcher, client(token) as http:
            epoch_a = (await a.ready(http, "publishing"))["epoch"]
            b = Replica("b", url, data_dir, mqtt_url)
            with replicas(b):
                await b.ready(http, "standby")
                # 1. Any replica accepts writes: one on the standby, published by a.
                first = await _patch(http, b, "written on b")
                assert first.status_code == 200, first.text
                acknowledged[1] = "written on b"
                seen: list[Envelope] = await watcher.until_version(1)
                assert seen[-1].epoch == epoch_a

                # 2. a stopped (SIGSTOP) until b has taken over, then resumed: it
                # publishes nothing more (its deadline passed) and goes on standby.
                os.kill(a.proc.pid, signal.SIGSTOP)
                epoch_b = (await b.ready(http, "publishing"))["epoch"]
                assert epoch_b > epoch_a
                second = await _patch(http, b, "while a is stopped")
                assert second.status_code == 200, second.text
                acknowledged[2] = "while a is stopped"
                seen += await watcher.until_version(2)
                # b publishes in order: once version 3 is in, its takeover republish (which
                # may repeat version 2) is done too.
                third = await _patch(http, b, "after the takeover")
                assert third.status_code == 200, third.text
                acknowledged[3] = "after the takeover"
                seen += await watcher.until_version(3)
                while not watcher.queue.empty():
                    seen.append(watcher.queue.get_nowait())
                os.kill(a.proc.pid, signal.SIGCONT)
                await a.ready(http, "standby")
                fourth = await _patch(http, b, "barrier")
                assert fourth.status_code == 200, fourth.text
                acknowledged[4] = "barrier"
                after = await watcher.until_version(4)
                # Only b's envelope of version 4 since a resumed: nothing from a.
                assert [(e.version, e.epoch) for e in after] == [(4, epoch_b)]
                seen += after

                # 3. SIGKILL the publisher (b) mid-burst: a takes over, publishes every
                # acknowledged write at a new epoch, never one version with two contents.
                killed_at = await _burst_then_kill(http, b, acknowledged, writes=20)
                b.proc.wait(10)
                newest = max(acknowledged)
                failover_s: float | None = None
                async with asyncio.timeout(30):
                    while True:
                        env = await watcher.next(wait_s=30)
                        seen.append(env)
                        if env.epoch > epoch_b and failover_s is None:
                            failover_s = time.monotonic() - killed_at
                        if env.epoch > epoch_b and env.version >= newest:
                            break
                assert failover_s is not None
                epoch_c = (await a.ready(http, "publishing"))["epoch"]
                assert epoch_c > epoch_b
            by_version: dict[int, set[str]] = {}
            for env in seen:
                plain = decrypt_secrets(env.config, service=SERVICE, keys=[keys.data_key(SERVICE)])
                by_version.setdefault(env.version, set()).add(plain["initial_prompt"])
            for version, prompt in acknowledged.items():
                assert by_version.get(version) == {prompt}, version  # published, one content
            assert all(len(contents) == 1 for contents in by_version.values())

            # A subscriber arriving now converges on the newest version at the new epoch.
            async with watch(own_broker, keys.trust, SERVICE) as late:
                retained = await late.next()
            current = (await http.get(f"{a.base_url}/api/v1/configs/{SERVICE}")).json()
            assert retained.version == current["version"] >= newest
            assert retained.epoch == epoch_c
            print(
                f"\nfailover (SIGKILL -> first envelope at the new epoch): {failover_s:.2f} s "
                f"(lease {LEASE_S} s, {len(acknowledged)} acknowledged writes)"
            )
