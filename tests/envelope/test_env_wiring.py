"""The envelope through a real mosquitto: publish retained, a fresh client verifies it."""

from __future__ import annotations

import asyncio

import aiomqtt

from config_lib import sign_envelope, updated_topic, verify_envelope
from tests.conftest import Broker, Keys


async def test_retained_signed_envelope_reaches_a_fresh_subscriber(
    broker: Broker, keys: Keys, service_name: str
) -> None:
    raw = sign_envelope(
        service=service_name, version=1, epoch=10, config={"beam_size": 3}, key=keys.signing
    )
    async with aiomqtt.Client(**broker.endpoint("manager").client_kwargs()) as pub:
        await pub.publish(updated_topic(service_name), raw, qos=1, retain=True)

    # A fresh client, logged in as the service itself, gets the retained message.
    async with aiomqtt.Client(**broker.endpoint(service_name).client_kwargs()) as sub:
        await sub.subscribe(updated_topic(service_name), qos=1)
        message = await asyncio.wait_for(anext(aiter(sub.messages)), timeout=10)
    assert message.retain
    payload = message.payload
    assert isinstance(payload, bytes)
    env = verify_envelope(payload, trust=keys.trust, service=service_name)
    assert env.version == 1
    assert env.config == {"beam_size": 3}
