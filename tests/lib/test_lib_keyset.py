"""The root-signed keyset against the real broker: rotation without restart, refusals.

A running ConfigLibrary configured with the root public key only follows ``config/keyset``:
a new keyset lets a new signing key in, the version in force re-signed under it rewrites
the LKG file without running callbacks, and once the old key is dropped from the keyset
a config signed by it is refused. Older, expired and badly signed keysets are refused
with a reason code and a counter; the keyset in force is kept beside the LKG file.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from lib_support import DemoConfig, mqtt_client, publish_config, read_bytes

from config_lib import (
    KEYSET_TOPIC,
    ConfigChange,
    ConfigLibrary,
    LibrarySettings,
    SigningKey,
    TrustStore,
    encrypt_secrets,
    sign_envelope,
    sign_keyset,
)

DAY = timedelta(days=1)


@pytest.fixture
async def keyset_publisher(broker: Any) -> AsyncIterator[aiomqtt.Client]:
    """The manager user; the retained keyset is cleared afterwards (one topic for all)."""
    async with mqtt_client(broker.endpoint("manager")) as client:
        yield client
        await client.publish(KEYSET_TOPIC, b"", qos=1, retain=True)


async def test_signing_key_rotation_reaches_a_running_instance_without_restart(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    keyset_publisher: aiomqtt.Client,
) -> None:
    root = SigningKey.generate()
    old, new = keys.signing, SigningKey.generate()
    data_key = keys.data_key(service_name)
    pub = keyset_publisher

    async def keyset(version: int, *signers: SigningKey, **kw: Any) -> bytes:
        raw = sign_keyset(
            version=version,
            keys=[k.public_key for k in signers],
            root=kw.pop("root", root),
            expires_in=kw.pop("expires_in", DAY),
            **kw,
        )
        await pub.publish(KEYSET_TOPIC, raw, qos=1, retain=True)
        return raw

    def signed(version: int, key: SigningKey, values: dict[str, Any]) -> bytes:
        return sign_envelope(service=service_name, version=version, epoch=1, config=values, key=key)

    v1 = encrypt_secrets(DemoConfig(beam_size=3), service=service_name, key=data_key)
    await keyset(1, old)
    await publish_config(pub, service_name, signed(1, old, v1))
    library = ConfigLibrary(
        service=service_name,
        model=DemoConfig,
        settings=lib_settings,
        root=TrustStore([root.public_key]),
        data_keys=[data_key],
        endpoint=broker.endpoint(service_name),
    )
    changes: list[ConfigChange[DemoConfig]] = []
    library.on_change(changes.append)
    lkg = lib_settings.lkg_path(service_name)
    assert lkg is not None
    async with library as running:
        assert running.version == 1
        assert running.current.beam_size == 3
        assert running.keyset is not None
        assert running.keyset.key_ids == [old.key_id]
        changes.clear()  # the startup's own apply (defaults -> version 1)

        # Rotation: the keyset lists both keys, the version in force is re-signed.
        await keyset(2, old, new)
        await running.wait_for_keyset(2)
        await publish_config(pub, service_name, signed(1, new, v1))
        await running.wait_for_received(2)
        assert running.metrics.resigned == 1
        assert changes == []  # the same version: no callback ran
        assert json.loads(read_bytes(lkg))["key_id"] == new.key_id  # LKG rewritten

        # The old key is dropped: what it signs is refused; the new key's is applied.
        await keyset(3, new)
        await running.wait_for_keyset(3)
        v2 = encrypt_secrets(DemoConfig(beam_size=4), service=service_name, key=data_key)
        await publish_config(pub, service_name, signed(2, old, v2))
        await running.wait_for_received(3)
        assert running.metrics.rejected["unknown_key"] == 1
        assert running.version == 1
        await publish_config(pub, service_name, signed(2, new, v2))
        await running.wait_for_version(2)
        assert [c.version for c in changes] == [2]

        # Keysets that must be refused: older, expired, not signed by the root, tampered.
        await keyset(2, old, new)
        past = datetime.now(UTC) - 2 * DAY
        await keyset(4, old, issued_at=past)
        await keyset(4, old, root=new)
        tampered = json.loads(
            sign_keyset(version=4, keys=[old.public_key], root=root, expires_in=DAY)
        )
        tampered["version"] = 5
        await pub.publish(KEYSET_TOPIC, json.dumps(tampered).encode(), qos=1, retain=True)
        await keyset(6, new)
        await running.wait_for_keyset(6)
        assert dict(running.metrics.keysets_rejected) == {
            "keyset_rollback": 1,
            "keyset_expired": 1,
            "unknown_key": 1,
            "bad_signature": 1,
        }
        assert running.keyset is not None
        assert running.keyset.key_ids == [new.key_id]

    # Restarted without a broker: the kept keyset verifies the LKG signed by the new key.
    offline = ConfigLibrary(
        service=service_name,
        model=DemoConfig,
        settings=lib_settings,
        root=TrustStore([root.public_key]),
        data_keys=[data_key],
        endpoint=None,
    )
    async with offline as restarted:
        assert restarted.source == "lkg"
        assert restarted.version == 2
        assert restarted.keyset is not None
        assert restarted.keyset.version == 6
    kept = lib_settings.keyset_path(service_name)
    assert kept is not None
    assert kept.stat().st_mode & 0o777 == 0o600


async def test_a_keyset_that_does_not_list_the_lkg_key_refuses_the_lkg_file(
    keys: Any, service_name: str, lib_settings: LibrarySettings, tmp_path: Path
) -> None:
    """Dropping a key really drops it: an LKG file signed by it no longer loads."""
    root = SigningKey.generate()
    other = SigningKey.generate()
    lkg = lib_settings.lkg_path(service_name)
    kept = lib_settings.keyset_path(service_name)
    assert lkg is not None
    assert kept is not None
    values = encrypt_secrets(DemoConfig(), service=service_name, key=keys.data_key(service_name))
    lkg.parent.mkdir(parents=True)
    lkg.write_bytes(
        sign_envelope(service=service_name, version=3, epoch=1, config=values, key=keys.signing)
    )
    kept.write_bytes(sign_keyset(version=1, keys=[other.public_key], root=root, expires_in=DAY))
    library = ConfigLibrary(
        service=service_name,
        model=DemoConfig,
        settings=lib_settings,
        root=TrustStore([root.public_key]),
        data_keys=[keys.data_key(service_name)],
        endpoint=None,
    )
    async with library as running:
        assert running.source == "defaults"
        assert running.keyset is not None
        assert running.keyset.key_ids == [other.key_id]


async def test_a_service_moving_to_a_root_key_keeps_its_lkg_until_the_first_keyset(
    keys: Any, service_name: str, lib_settings: LibrarySettings
) -> None:
    """No keyset kept yet: the trust store file it had still verifies its LKG file."""
    lkg = lib_settings.lkg_path(service_name)
    assert lkg is not None
    values = encrypt_secrets(DemoConfig(), service=service_name, key=keys.data_key(service_name))
    lkg.parent.mkdir(parents=True)
    lkg.write_bytes(
        sign_envelope(service=service_name, version=3, epoch=1, config=values, key=keys.signing)
    )
    trust_file = lib_settings.trust_path()
    trust_file.parent.mkdir(parents=True)
    trust_file.write_bytes(keys.trust.to_pem())
    library = ConfigLibrary(
        service=service_name,
        model=DemoConfig,
        settings=lib_settings,
        root=TrustStore([SigningKey.generate().public_key]),
        data_keys=[keys.data_key(service_name)],
        endpoint=None,
    )
    async with library as running:
        assert running.source == "lkg"
        assert running.version == 3
        assert running.keyset is None
