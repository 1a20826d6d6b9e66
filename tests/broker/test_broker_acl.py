"""The project's mosquitto config, passwords and ACLs, against a real broker.

"Never delivered" is shown without sleeping: the forbidden publish is acknowledged first,
then an allowed sentinel follows on the same subscription; the first message the
subscriber sees must be the sentinel.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from config_lib import MqttEndpoint, sign_envelope, updated_topic, verify_envelope
from config_manager.broker import (
    BrokerFiles,
    MosquittoProcess,
    free_port,
    mqtt_login,
    render_broker_files,
    write_password_file,
)
from config_manager.tls import ensure_local_certificates
from tests.conftest import Broker, Keys

TIMEOUT = 10


def _client(broker: Broker, user: str) -> aiomqtt.Client:
    return aiomqtt.Client(**broker.endpoint(user).client_kwargs())


async def _first_message(client: aiomqtt.Client) -> aiomqtt.Message:
    return await asyncio.wait_for(anext(aiter(client.messages)), timeout=TIMEOUT)


def test_anonymous_connect_is_refused(broker: Broker) -> None:
    assert mqtt_login(broker.host, broker.port, None, None) == 5  # not authorised


def test_wrong_password_is_refused(broker: Broker) -> None:
    broker.password("manager")
    assert mqtt_login(broker.host, broker.port, "manager", "wrong") == 5
    assert mqtt_login(broker.host, broker.port, "manager", broker.password("manager")) == 0


async def test_manager_publishes_and_the_right_service_receives(
    broker: Broker, keys: Keys, service_name: str
) -> None:
    raw = sign_envelope(service=service_name, version=1, epoch=1, config={}, key=keys.signing)
    async with _client(broker, service_name) as svc:
        await svc.subscribe(updated_topic(service_name), qos=1)
        async with _client(broker, "manager") as manager:
            await manager.publish(updated_topic(service_name), raw, qos=1, retain=True)
        message = await _first_message(svc)
    assert isinstance(message.payload, bytes)
    assert verify_envelope(message.payload, trust=keys.trust, service=service_name).version == 1


@pytest.mark.parametrize("target", ["self", "other"])
async def test_service_cannot_publish_configs(
    broker: Broker, keys: Keys, service_name: str, target: str
) -> None:
    topic = updated_topic(service_name if target == "self" else f"{service_name}-other")
    forged = sign_envelope(service=service_name, version=99, epoch=1, config={}, key=keys.signing)
    sentinel = b"sentinel"
    async with _client(broker, "debug") as watcher:
        await watcher.subscribe(topic, qos=1)
        async with _client(broker, service_name) as svc:
            await svc.publish(topic, forged, qos=1)  # acknowledged, then dropped by the ACL
        async with _client(broker, "manager") as manager:
            await manager.publish(topic, sentinel, qos=1)
        message = await _first_message(watcher)
    assert message.payload == sentinel


async def test_service_cannot_read_another_services_config(
    broker: Broker, service_name: str
) -> None:
    other = f"{service_name}-other"
    async with _client(broker, service_name) as svc:
        await svc.subscribe(updated_topic(other), qos=1)
        await svc.subscribe(updated_topic(service_name), qos=1)
        async with _client(broker, "manager") as manager:
            await manager.publish(updated_topic(other), b"not for you", qos=1)
            await manager.publish(updated_topic(service_name), b"yours", qos=1)
        message = await _first_message(svc)
    assert message.topic.value == updated_topic(service_name)
    assert message.payload == b"yours"


async def test_debug_user_reads_but_cannot_publish(broker: Broker, service_name: str) -> None:
    topic = updated_topic(service_name)
    async with _client(broker, "debug") as debug:
        await debug.subscribe(f"config/+/{service_name}", qos=1)
        await debug.publish(topic, b"from debug", qos=1)  # dropped by the ACL
        async with _client(broker, "manager") as manager:
            await manager.publish(topic, b"from manager", qos=1)
        message = await _first_message(debug)
    assert message.payload == b"from manager"


async def test_debug_user_watches_with_the_real_mosquitto_sub(
    broker: Broker, keys: Keys, service_name: str
) -> None:
    raw = sign_envelope(
        service=service_name, version=3, epoch=1, config={"beam_size": 2}, key=keys.signing
    )
    async with _client(broker, "manager") as manager:
        await manager.publish(updated_topic(service_name), raw, qos=1, retain=True)
    # The retained message is delivered on subscribe; -C 1 exits after it, -W bounds the wait.
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", broker.host, "-p", str(broker.port),
        "-u", "debug", "-P", broker.password("debug"),
        "-t", updated_topic(service_name), "-v", "-C", "1", "-W", str(TIMEOUT),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=TIMEOUT + 5)
    assert proc.returncode == 0
    topic, payload = stdout.decode().rstrip("\n").split(" ", 1)
    assert topic == updated_topic(service_name)
    assert verify_envelope(payload.encode(), trust=keys.trust, service=service_name).version == 3


async def test_retained_config_survives_a_broker_restart(
    own_broker: Broker, keys: Keys, service_name: str
) -> None:
    raw = sign_envelope(service=service_name, version=5, epoch=1, config={}, key=keys.signing)
    async with _client(own_broker, "manager") as manager:
        await manager.publish(updated_topic(service_name), raw, qos=1, retain=True)
    own_broker.stop()  # SIGTERM: mosquitto writes its persistence file on the way out
    own_broker.start()
    async with _client(own_broker, service_name) as svc:
        await svc.subscribe(updated_topic(service_name), qos=1)
        message = await _first_message(svc)
    assert message.payload == raw


async def test_retained_config_survives_a_broker_sigkill(
    own_broker: Broker, keys: Keys, service_name: str
) -> None:
    """autosave_on_changes: the retained config is on disk before mosquitto reads its next
    packet, so a crash right after the publish does not lose it (with the old 30 s autosave
    interval it was gone until the manager republished)."""
    raw = sign_envelope(service=service_name, version=7, epoch=1, config={}, key=keys.signing)
    async with _client(own_broker, "manager") as manager:
        await manager.publish(updated_topic(service_name), raw, qos=1, retain=True)
        # A barrier: mosquitto reads one packet per client per loop and saves at the end of
        # the loop that stored the retained message, so once this later publish is
        # acknowledged the save is done. No sleep, no polling of the file.
        await manager.publish(updated_topic(f"{service_name}-barrier"), b"x", qos=1)
        own_broker.kill()  # SIGKILL: no save on the way out
    own_broker.start()
    async with _client(own_broker, service_name) as svc:
        await svc.subscribe(updated_topic(service_name), qos=1)
        message = await _first_message(svc)
    assert message.payload == raw


async def test_optional_tls_listener(tmp_path: Path, keys: Keys, service_name: str) -> None:
    files = BrokerFiles(tmp_path / "mosquitto")
    tls = ensure_local_certificates(tmp_path / "tls")
    port, tls_port = free_port(), free_port()
    render_broker_files(files, port=port, tls=tls.as_template_values(tls_port))
    write_password_file(files.password_file, {"manager": "pw-m", service_name: "pw-s"})
    process = MosquittoProcess(files, port=port)
    process.start()
    try:
        raw = sign_envelope(service=service_name, version=1, epoch=1, config={}, key=keys.signing)
        secure = MqttEndpoint("127.0.0.1", tls_port, "manager", "pw-m", tls=True,
                              ca_file=str(tls.ca_file))  # fmt: skip
        async with aiomqtt.Client(**secure.client_kwargs()) as manager:
            await manager.publish(updated_topic(service_name), raw, qos=1, retain=True)
        reader = MqttEndpoint("127.0.0.1", tls_port, service_name, "pw-s", tls=True,
                              ca_file=str(tls.ca_file))  # fmt: skip
        async with aiomqtt.Client(**reader.client_kwargs()) as svc:
            await svc.subscribe(updated_topic(service_name), qos=1)
            message = await _first_message(svc)
        assert message.payload == raw
        # The TLS files are created once and kept.
        assert ensure_local_certificates(tmp_path / "tls") == tls
    finally:
        process.stop()
