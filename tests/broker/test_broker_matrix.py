"""The end-to-end checks that matter, against every broker of the matrix.

Each test runs once on mosquitto (the project's config and ACL file) and once on RabbitMQ
3.10's MQTT plugin (the same ACL as topic permissions; see tests/brokers.py). Where the
brokers differ by design (docs/brokers.md) the test states what each one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from config_lib import (
    AppliedReport,
    ConfigLibrary,
    LibrarySettings,
    NotAuthorised,
    applied_topic,
    freshness_topic,
    report_request_topic,
    sign_envelope,
    updated_topic,
    write_atomic,
)
from tests.brokers import BrokerSeam, Rights
from tests.manager.mgr_harness import RunningManager, eventually, start_manager, write_keys
from tests.manager.mgr_models import DemoConfig

pytestmark = pytest.mark.broker_matrix
TIMEOUT = 15


def _settings(tmp_path: Path, **kw: Any) -> LibrarySettings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "lib",
        "initial_wait": 5.0,
        "env_fallback": False,
        "reconnect_min_delay": 0.05,
        "reconnect_max_delay": 0.5,
        "connect_timeout": 5.0,
        # Most of these brokers' tests run without a manager, so no freshness record
        # comes; waiting for one (40 s by default) would only slow the test down.
        "fresh_wait": 0.0,
    }
    values.update(kw)
    return LibrarySettings(**values)


def _library(
    broker: BrokerSeam,
    keys: Any,
    service: str,
    settings: LibrarySettings,
    *,
    instance: str = "inst-1",
    user: str | None = None,
) -> ConfigLibrary[DemoConfig]:
    return ConfigLibrary(
        service=service,
        model=DemoConfig,
        settings=settings,
        trust=keys.trust,
        data_keys=[keys.data_key(service)],
        endpoint=broker.endpoint(user or service),
        instance_id=instance,
    )


@contextlib.contextmanager
def _manager(
    broker: BrokerSeam, keys: Any, service: str, data_dir: Path, tokens: dict[str, str] | None
) -> Any:
    if not (data_dir / "keys" / "signing.pem").exists():
        write_keys(data_dir, keys)
    running = start_manager(
        data_dir, mqtt_url=broker.url("manager"), models={service: DemoConfig}, tokens=tokens
    )
    try:
        yield running
    finally:
        running.stop()


@contextlib.asynccontextmanager
async def _client(broker: BrokerSeam, user: str, **kw: Any) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(**broker.endpoint(user).client_kwargs(), **kw) as client:
        yield client


async def _next(client: aiomqtt.Client) -> aiomqtt.Message:
    return await asyncio.wait_for(anext(aiter(client.messages)), timeout=TIMEOUT)


async def _closed_instead_of_answered(client: aiomqtt.Client, call: Any) -> bool:
    """True if the broker closes the connection instead of answering ``call`` (RabbitMQ's
    way of refusing), False once it answers (mosquitto's PUBACK); bounded by TIMEOUT."""
    task = asyncio.ensure_future(call)
    closed = client._disconnected  # aiomqtt's "connection lost" future
    done, _ = await asyncio.wait(
        {task, closed}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED
    )
    assert done, "the broker neither answered nor closed the connection"
    if task in done and task.exception() is None:
        return False
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await task
    if closed.done() and not closed.cancelled():
        closed.exception()  # retrieved: asyncio must not log it
    return True


async def _instances(manager: RunningManager, service: str) -> list[dict[str, Any]]:
    async with manager.client("viewer") as http:
        got = await http.get(f"/api/v1/services/{service}/instances")
        assert got.status_code == 200, got.text
        result: list[dict[str, Any]] = got.json()
        return result


async def test_signed_update_is_applied_and_reported(
    matrix_broker: BrokerSeam, keys: Any, service_name: str, tmp_path: Path
) -> None:
    with _manager(matrix_broker, keys, service_name, tmp_path / "mgr", None) as manager:
        library = _library(matrix_broker, keys, service_name, _settings(tmp_path))
        async with library as cfg, manager.client("editor") as http:
            resp = await http.patch(
                f"/api/v1/configs/{service_name}",
                json={"rate": 22050, "api_key": "matrix-secret-1"},
                headers={"If-Match": "0", "Content-Type": "application/merge-patch+json"},
            )
            assert resp.status_code == 200, resp.text
            current = await cfg.wait_for_version(1, timeout=TIMEOUT)
            assert (current.rate, cfg.source) == (22050, "broker")
            assert current.api_key.get_secret_value() == "matrix-secret-1"

            async def reported() -> bool:
                return any(i["version"] == 1 for i in await _instances(manager, service_name))

            await eventually(reported, TIMEOUT)
            assert cfg.broker_error is None


async def test_retained_config_reaches_a_new_subscriber(
    matrix_broker: BrokerSeam, keys: Any, service_name: str, tmp_path: Path
) -> None:
    raw = sign_envelope(
        service=service_name, version=4, epoch=1, config={"rate": 11025}, key=keys.signing
    )
    async with _client(matrix_broker, "manager") as manager:
        await manager.publish(updated_topic(service_name), raw, qos=1, retain=True)
    for instance in ("first", "second"):  # each a fresh connection; no LKG file to help
        settings = _settings(tmp_path / instance, lkg_enabled=False)
        library = _library(matrix_broker, keys, service_name, settings, instance=instance)
        async with library as cfg:
            # Startup waited for the broker's retained config (initial_wait).
            assert (cfg.source, cfg.version, cfg.current.rate) == ("broker", 4, 11025)


_CHILD = """
import sys
from pydantic import BaseModel
from config_lib import initialize_and_subscribe

class Plain(BaseModel):
    x: int = 1

handle = initialize_and_subscribe(sys.argv[1], Plain)
print("ready", handle.source, flush=True)
sys.stdin.read()  # until the test kills this process
"""


async def test_killed_instance_is_reported_offline_by_its_will(
    matrix_broker: BrokerSeam, keys: Any, service_name: str, tmp_path: Path
) -> None:
    trust = tmp_path / "trust.pem"
    write_atomic(trust, keys.trust.to_pem())
    env = {
        **os.environ,
        "CONFIG_LIB_MQTT_URL": matrix_broker.url(service_name),
        "CONFIG_LIB_TRUST_STORE": str(trust),
        "CONFIG_LIB_LKG_DIR": str(tmp_path / "lkg"),
        "CONFIG_LIB_INSTANCE_ID": "doomed-1",
        "CONFIG_LIB_DATA_DIR": str(tmp_path / "data"),
        "CONFIG_LIB_FRESH_WAIT": "0",  # no manager here: no freshness record will come
    }
    async with _client(matrix_broker, "debug") as debug:
        await debug.subscribe(applied_topic(service_name, "doomed-1"), qos=1)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, service_name,
            env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line.split() == [b"ready", b"defaults"]
            online = AppliedReport.from_bytes(bytes(await _payload(debug)))
            assert (online.instance, online.status) == ("doomed-1", "applied")
        finally:
            child.kill()
            await child.wait()
        offline = AppliedReport.from_bytes(bytes(await _payload(debug)))
        while offline.status == "applied":  # its freshness report (stale) may come first
            offline = AppliedReport.from_bytes(bytes(await _payload(debug)))
    assert (offline.status, offline.reason) == ("offline", "connection_lost")


async def _payload(client: aiomqtt.Client) -> bytes:
    payload = (await _next(client)).payload
    assert isinstance(payload, bytes | bytearray)
    return bytes(payload)


async def test_manager_lists_instances_after_its_own_restart(
    matrix_broker: BrokerSeam, keys: Any, service_name: str, tmp_path: Path
) -> None:
    """RabbitMQ does not redeliver retained reports to the manager's ``config/applied/#``:
    the list after the restart comes from the manager's database on both brokers."""
    data = tmp_path / "mgr"
    library = _library(matrix_broker, keys, service_name, _settings(tmp_path), instance="kept")
    async with library as cfg:
        with _manager(matrix_broker, keys, service_name, data, None) as first:
            async with first.client("editor") as http:
                resp = await http.put(
                    f"/api/v1/configs/{service_name}",
                    json={"rate": 8000},
                    headers={"If-Match": "0"},
                )
                assert resp.status_code == 200, resp.text
            await cfg.wait_for_version(1, timeout=TIMEOUT)

            async def reported() -> bool:
                return any(i["version"] == 1 for i in await _instances(first, service_name))

            await eventually(reported, TIMEOUT)
            tokens = first.tokens
        with _manager(matrix_broker, keys, service_name, data, tokens) as second:
            listed = await _instances(second, service_name)
    assert [(i["instance"], i["status"], i["version"], i["current"]) for i in listed] == [
        ("kept", "applied", 1, True)
    ]


async def test_a_service_cannot_read_another_services_config(
    matrix_broker: BrokerSeam, keys: Any, service_name: str, tmp_path: Path
) -> None:
    other = f"{service_name}-other"
    raw = sign_envelope(service=other, version=1, epoch=1, config={}, key=keys.signing)
    async with _client(matrix_broker, "manager") as manager:
        await manager.publish(updated_topic(other), raw, qos=1, retain=True)
    # A library for `other` logged in as `service_name`, whose ACL allows only its own topic.
    library = _library(
        matrix_broker, keys, other, _settings(tmp_path, initial_wait=0.5), user=service_name
    )
    async with library as cfg:
        if matrix_broker.kind == "rabbitmq":
            # RabbitMQ closes the connection on the forbidden subscribe: "not authorised".
            error = await cfg.wait_for_broker_error(1, timeout=TIMEOUT)
            assert isinstance(error, NotAuthorised)
            assert (error.operation, error.topic) == ("subscribe", updated_topic(other))
        assert cfg.source == "defaults"
    if matrix_broker.kind == "mosquitto":
        # Mosquitto grants the SUBACK and withholds the messages: an allowed sentinel sent
        # after the forbidden message is the first one the subscriber sees.
        async with _client(matrix_broker, service_name) as svc:
            await svc.subscribe(updated_topic(other), qos=1)
            await svc.subscribe(updated_topic(service_name), qos=1)
            async with _client(matrix_broker, "manager") as manager:
                await manager.publish(updated_topic(service_name), b"yours", qos=1)
            message = await _next(svc)
        assert (message.topic.value, message.payload) == (updated_topic(service_name), b"yours")


async def test_a_service_cannot_publish_configs(
    matrix_broker: BrokerSeam, keys: Any, service_name: str
) -> None:
    topic = updated_topic(service_name)
    forged = sign_envelope(service=service_name, version=99, epoch=1, config={}, key=keys.signing)
    async with _client(matrix_broker, "debug") as watcher:
        await watcher.subscribe(topic, qos=1)
        async with _client(matrix_broker, service_name) as svc:
            refused = await _closed_instead_of_answered(svc, svc.publish(topic, forged, qos=1))
        # Mosquitto acknowledges the forbidden publish and drops it.
        assert refused is (matrix_broker.kind == "rabbitmq")
        async with _client(matrix_broker, "manager") as manager:
            await manager.publish(topic, b"sentinel", qos=1)
        message = await _next(watcher)
    assert message.payload == b"sentinel"


async def test_a_report_the_acl_forbids_is_not_authorised_where_the_broker_says_so(
    matrix_broker: BrokerSeam, keys: Any, service_name: str, tmp_path: Path
) -> None:
    """A user that may read its config (and report requests) but not write its reports."""
    user = f"{service_name}-ro"
    read = (
        updated_topic(service_name),
        freshness_topic(service_name),
        report_request_topic(service_name),
    )
    matrix_broker.add_user(user, Rights(read=read))
    raw = sign_envelope(service=service_name, version=2, epoch=1, config={}, key=keys.signing)
    async with _client(matrix_broker, "manager") as manager:
        await manager.publish(updated_topic(service_name), raw, qos=1, retain=True)
    settings = _settings(tmp_path, initial_wait=2.0)
    library = _library(matrix_broker, keys, service_name, settings, user=user)
    async with library as cfg:
        if matrix_broker.kind == "rabbitmq":
            error = await cfg.wait_for_broker_error(1, timeout=TIMEOUT)
            assert isinstance(error, NotAuthorised)
            assert (error.operation, error.topic) == (
                "publish",
                applied_topic(service_name, "inst-1"),
            )
        else:
            # Mosquitto drops the report silently: the config is applied all the same.
            await cfg.wait_for_version(2, timeout=TIMEOUT)
            assert cfg.broker_error is None


async def test_a_user_without_report_requests_still_gets_its_config(
    matrix_broker: BrokerSeam, keys: Any, service_name: str, tmp_path: Path
) -> None:
    """An ACL from before report requests: reading ``config/report/<service>`` is refused.
    RabbitMQ closes the connection; the library then reconnects without that topic."""
    user = f"{service_name}-old"
    rights = Rights(
        read=(updated_topic(service_name),), write=(f"config/applied/{service_name}/#",)
    )
    matrix_broker.add_user(user, rights)
    raw = sign_envelope(service=service_name, version=3, epoch=1, config={}, key=keys.signing)
    async with _client(matrix_broker, "manager") as manager:
        await manager.publish(updated_topic(service_name), raw, qos=1, retain=True)
    settings = _settings(tmp_path, initial_wait=2.0)
    library = _library(matrix_broker, keys, service_name, settings, user=user)
    async with library as cfg:
        await cfg.wait_for_version(3, timeout=TIMEOUT)
        assert cfg.connected
        if matrix_broker.kind == "rabbitmq":
            # Once per optional topic (freshness records, report requests), then without.
            assert cfg.metrics.not_authorised == 2
        assert cfg.broker_error is None
