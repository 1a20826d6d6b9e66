"""The library's cheaper per-update path (issue 14, fan-out): what it changed must not
change what goes over the wire or onto disk. Real mosquitto; every wait has a timeout.

* LibraryClient (config_lib/_transport.py) writes packets in the next loop turn and
  watches the socket only when it cannot take them: a burst far larger than the socket
  buffers still arrives whole and in order (the watched path is taken: counted);
* its message reader returns every message received, in order, then raises
  ``MqttError`` once the broker has dropped the connection (again on every later call);
* paho's per-filter callbacks, skipped while there are none, still match once added;
* applied reports: the member-by-member copy and the cached public key give the same
  signed bytes as before, which the manager's verifier accepts;
* write_atomic: the folder is created on first use, no temporary file is left behind
  (moved, refused or failed), an existing file is kept with ``overwrite=False``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import secrets
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography.hazmat.primitives import serialization

from config_lib import (
    AppliedReport,
    ReportError,
    SigningKey,
    sign_report,
    updated_topic,
    verify_report,
)
from config_lib._files import write_atomic
from config_lib._transport import LibraryClient

TIMEOUT = 30.0


class _CountingClient(LibraryClient):
    """Counts how often the socket had to be watched for writability."""

    watched = 0

    def _write_ready(self) -> None:
        type(self).watched += 1
        super()._write_ready()


def _client(broker: Any, user: str, cls: type[LibraryClient] = LibraryClient, **kw: Any) -> Any:
    return cls(**broker.endpoint(user).client_kwargs(), timeout=TIMEOUT, **kw)


async def test_a_burst_larger_than_the_socket_buffers_arrives_whole_and_in_order(
    broker: Any,
) -> None:
    topic = f"audio/chunks/burst-{secrets.token_hex(4)}"  # orchestrator writes, stt reads
    count, size = 64, 512 * 1024  # 32 MiB queued at once: more than loopback buffers take
    bodies = [i.to_bytes(4, "big") + secrets.token_bytes(size - 4) for i in range(count)]
    _CountingClient.watched = 0
    async with (
        aiomqtt.Client(**broker.endpoint("stt").client_kwargs(), timeout=TIMEOUT) as reader,
        _client(broker, "orchestrator", _CountingClient) as writer,
    ):
        await reader.subscribe(topic, qos=1)
        # All queued (paho's queue, as reports are) before the first write, in the next
        # loop turn: the socket fills, the rest waits until it is writable again.
        for body in bodies:
            assert writer._client.publish(topic, body, 1).rc == 0
        async with asyncio.timeout(TIMEOUT):
            received = []
            async for message in reader.messages:
                assert isinstance(message.payload, bytes)
                received.append(message.payload)
                if len(received) == count:
                    break
        assert received == bodies
        assert _CountingClient.watched > 0, "the burst never filled the socket"


async def test_messages_come_in_order_then_a_dropped_connection_raises(broker: Any) -> None:
    service = f"fanout{secrets.token_hex(3)}"
    name = f"lib-{secrets.token_hex(4)}"
    async with (
        _client(broker, "manager") as manager,
        _client(broker, "debug", identifier=name) as client,
    ):
        await client.subscribe(updated_topic(service), qos=1)
        bodies = [f"message {i}".encode() for i in range(5)]
        for body in bodies:
            await manager.publish(updated_topic(service), body, qos=1)
        async with asyncio.timeout(TIMEOUT):
            got = [await client.next_message() for _ in bodies]
        assert got == [(updated_topic(service), body) for body in bodies]
        # Another client with the same id: the broker drops this connection.
        async with _client(broker, "debug", identifier=name):
            async with asyncio.timeout(TIMEOUT):
                with pytest.raises(aiomqtt.MqttError):
                    await client.next_message()
                with pytest.raises(aiomqtt.MqttError):  # and again: it stays closed
                    await client.next_message()


def test_report_bytes_and_signature_are_those_of_the_plain_construction() -> None:
    key = SigningKey.generate()
    fields = {
        "instance": "i-1",
        "service": "stt",
        "status": "applied",
        "version": 7,
        "epoch": 3,
        "source": "broker",
        "attempted_version": 7,
        "attempted_epoch": 3,
        "freshness": "fresh",
    }
    report = AppliedReport.now(**fields)
    assert report == dataclasses.replace(AppliedReport(**fields), time=report.time)
    assert report.time.endswith("Z")
    # Unsigned: every member, as dataclasses.asdict gives them.
    assert json.loads(report.to_bytes()) == dataclasses.asdict(report)
    # Signed: the same bytes as signing asdict(), and the manager's check accepts them.
    signed = report.to_bytes(key)
    assert signed == sign_report(dataclasses.asdict(report), key)
    raw_public = key.public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert json.loads(signed)["public_key"] == base64.b64encode(raw_public).decode()
    verified = verify_report(signed, service="stt", instance="i-1")
    assert verified.key_id == key.key_id
    tampered = signed.replace(b'"version": 7', b'"version": 8')
    with pytest.raises(ReportError, match="signature"):
        verify_report(tampered, service="stt", instance="i-1")


def test_write_atomic_creates_the_folder_once_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "a" / "b" / "lkg.json"
    assert write_atomic(target, b"one")  # the folders do not exist yet
    assert target.read_bytes() == b"one"
    assert (target.stat().st_mode & 0o777) == 0o600
    assert write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    # overwrite=False keeps the existing file, whether seen first or lost in the race.
    assert not write_atomic(target, b"three", overwrite=False)
    fresh = target.with_name("other.json")
    assert write_atomic(fresh, b"new", overwrite=False)
    assert fresh.read_bytes() == b"new"
    assert sorted(os.listdir(target.parent)) == ["lkg.json", "other.json"]
    # A failed write (a folder where the file should go) leaves no temporary file either.
    blocked = target.with_name("blocked")
    blocked.mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(blocked, b"x")
    assert sorted(os.listdir(target.parent)) == ["blocked", "lkg.json", "other.json"]


async def test_paho_per_filter_callbacks_still_match_when_any_are_added() -> None:
    client = LibraryClient(hostname="127.0.0.1")  # not connected: paho's own matching only
    matcher = client._client._on_message_filtered
    assert list(matcher.iter_match("config/updated/stt")) == []  # none added: skipped

    def callback(*_: object) -> None:
        pass

    client._client.message_callback_add("config/+/stt", callback)
    client._client.message_callback_add("config/#", print)
    assert list(matcher.iter_match("config/updated/stt")) == [callback, print]
    assert list(matcher.iter_match("audio/chunks/x")) == []
    client._client.message_callback_remove("config/+/stt")
    client._client.message_callback_remove("config/#")
    assert list(matcher.iter_match("config/updated/stt")) == []
