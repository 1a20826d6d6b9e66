"""Signing-key rotation with one command, against a running manager and a running service.

``python -m config_manager keys`` with the offline root key: the running manager notices
the new keyset and signing key, publishes the keyset and re-signs the current config; the
running ConfigLibrary (configured with the root public key only) rewrites its LKG file
without running callbacks. Dropping the old key from the keyset makes a config signed by
it refused. Bad command-line input gets one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from mgr_harness import RunningManager, eventually, put, write_keys
from mgr_models import DemoConfig

from config_lib import (
    ConfigChange,
    ConfigLibrary,
    LibrarySettings,
    SigningKey,
    TrustStore,
    encrypt_secrets,
    freshness_topic,
    load_data_key,
    load_signing_key,
    save_data_key,
    sign_envelope,
    updated_topic,
)
from config_manager.__main__ import main
from config_manager.db import migrate


def _keys(data: Path, *args: str) -> int:
    return main(["keys", "--data-dir", str(data), *args])


async def test_one_command_rotates_the_signing_key_of_a_running_fleet(
    manager_factory: Callable[..., RunningManager],
    broker: Any,
    keys: Any,
    service_name: str,
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    write_keys(data, keys)
    root_file = tmp_path / "offline" / "root.pem"
    assert _keys(data, "create-root", "--root-key", str(root_file)) == 0
    manager = manager_factory(
        mqtt_url=broker.url("manager"),
        models={service_name: DemoConfig},
        data_dir=data,
        keys_poll_s=0.05,
    )
    async with manager.client("editor") as http:
        assert (await put(http, service_name, {"rate": 22050}, 0)).status_code == 200
    library = ConfigLibrary(
        service=service_name,
        model=DemoConfig,
        settings=LibrarySettings(data_dir=tmp_path / "lib", initial_wait=3.0, fresh_wait=10.0),
        root=TrustStore.load(data / "keys" / "root-public.pem"),
        data_keys=[keys.data_key(service_name)],
        endpoint=broker.endpoint(service_name),
        instance_id="rot-1",
    )
    lkg = tmp_path / "lib" / "lkg" / f"{service_name}.json"
    async with library as running:
        await running.wait_for_version(1)
        assert running.keyset is not None
        assert running.keyset.version == 1
        changes: list[ConfigChange[DemoConfig]] = []
        running.on_change(changes.append)

        # One command: a new signing key, listed with the old one by keyset version 2.
        assert _keys(data, "rotate-signing", "--root-key", str(root_file)) == 0
        new_id = load_signing_key(data / "keys" / "signing.pem").key_id
        assert new_id != keys.signing.key_id
        await running.wait_for_keyset(2)
        await eventually(
            lambda: _true(lkg.exists() and json.loads(lkg.read_bytes())["key_id"] == new_id)
        )
        assert running.version == 1
        assert changes == []
        assert running.metrics.resigned >= 1
        async with manager.client("viewer") as http:
            shown = (await http.get("/api/v1/keys")).json()
        assert shown["signing_key_id"] == new_id
        assert sorted(shown["keyset"]["key_ids"]) == sorted([new_id, keys.signing.key_id])
        printed = await asyncio.to_thread(_configctl, manager, "keys")
        assert f"signing key: {new_id}" in printed
        assert "keyset: version 2," in printed

        # The old key is dropped: a config it signs (a leaked key) is refused.
        assert (
            _keys(data, "sign-keyset", "--root-key", str(root_file), "--drop", keys.signing.key_id)
            == 0
        )
        await running.wait_for_keyset(3)
        values = encrypt_secrets(
            DemoConfig(rate=8000), service=service_name, key=keys.data_key(service_name)
        )
        forged = sign_envelope(
            service=service_name,
            version=2,
            epoch=running.epoch or 0,
            config=values,
            key=keys.signing,
        )
        async with aiomqtt.Client(**broker.endpoint("manager").client_kwargs()) as client:
            await client.publish(updated_topic(service_name), forged, qos=1, retain=True)
        await eventually(lambda: _true(running.metrics.rejected["unknown_key"] >= 1))
        assert running.version == 1

        # The manager's own next version (new key) is applied.
        async with manager.client("editor") as http:
            assert (await put(http, service_name, {"rate": 44100}, 1)).status_code == 200
        assert (await running.wait_for_version(2)).rate == 44100
        assert [c.version for c in changes] == [2]
    async with aiomqtt.Client(**broker.endpoint("manager").client_kwargs()) as client:
        await client.publish("config/keyset", b"", qos=1, retain=True)  # one topic for all


async def _true(value: bool) -> bool:
    return value


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_bad_key_commands_get_one_line(
    tmp_path: Path, keys: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    write_keys(data, keys)
    root = tmp_path / "offline" / "root.pem"

    assert _keys(data, "create-root", "--root-key", str(data / "root.pem")) == 1
    assert "outside the data directory" in _one_line(capsys)
    assert _keys(data, "sign-keyset", "--root-key", str(root)) == 1
    assert "root key" in _one_line(capsys)
    assert _keys(data, "show") == 0
    assert "no keyset" in capsys.readouterr().out
    assert _keys(data, "create-root", "--root-key", str(root)) == 0
    capsys.readouterr()
    assert _keys(data, "create-root", "--root-key", str(root)) == 1
    assert "never overwritten" in _one_line(capsys)
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(SigningKey.generate().private_pem())
    assert _keys(data, "sign-keyset", "--root-key", str(stranger)) == 1
    assert "is not the root" in _one_line(capsys)
    assert _keys(data, "sign-keyset", "--root-key", str(root), "--drop", keys.signing.key_id) == 1
    assert "cannot be dropped" in _one_line(capsys)
    assert _keys(data, "sign-keyset", "--root-key", str(root), "--drop", "0123456789abcdef") == 1
    assert "not in the keyset" in _one_line(capsys)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    assert _keys(data, "sign-keyset", "--root-key", str(garbage)) == 1
    assert "PEM" in _one_line(capsys)
    for bad in (
        ["sign-keyset", "--root-key", str(root), "--expires-days", "-1"],
        ["frobnicate"],
        [],
    ):
        with pytest.raises(SystemExit) as exit_info:
            _keys(data, *bad)
        assert exit_info.value.code == 2
        _one_line(capsys)
    # Nothing was half-written: still the first keyset, made by create-root.
    assert _keys(data, "show") == 0
    shown = capsys.readouterr().out
    assert "keyset version 1," in shown
    assert f"keys: {keys.signing.key_id}" in shown


def _configctl(manager: RunningManager, *args: str) -> str:
    """``configctl`` as a subprocess (viewer token) against ``manager``; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFIGCTL_")}
    env.update(
        CONFIGCTL_URL=manager.base_url,
        CONFIGCTL_TOKEN=manager.tokens["viewer"],
        CONFIGCTL_CONFIG=str(manager.data_dir / "no-config.toml"),
        COLUMNS="200",
    )
    done = subprocess.run(
        [sys.executable, "-m", "config_manager.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_configctl_keys_shows_the_keyset_in_force_without_a_root_key(
    manager: RunningManager,
) -> None:
    with httpx.Client(base_url=manager.base_url) as http:
        body = http.get(
            "/api/v1/keys", headers={"Authorization": f"Bearer {manager.tokens['viewer']}"}
        ).json()
    assert body["keyset"] is None
    assert len(body["signing_key_id"]) == 16
    assert "keyset: none" in _configctl(manager, "keys")


PLAIN = "sk-Plaintext-Walrus-4711"  # must never appear in the database file


def _db_bytes(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data.glob("manager.db*"))


async def test_master_key_rotation_reencrypts_and_services_still_decrypt(
    manager_factory: Callable[..., RunningManager],
    broker: Any,
    keys: Any,
    service_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data"
    write_keys(data, keys)
    key_file = data / "keys" / "services" / f"{service_name}.key"
    save_data_key(key_file, keys.data_key(service_name))
    models = {service_name: DemoConfig}
    manager = manager_factory(mqtt_url=broker.url("manager"), models=models, data_dir=data)
    async with manager.client("editor") as http:
        body = {"rate": 22050, "api_key": PLAIN}
        assert (await put(http, service_name, body, 0)).status_code == 200
    library = ConfigLibrary(
        service=service_name,
        model=DemoConfig,
        # The service reads its data key file from the data directory (reloaded on change).
        settings=LibrarySettings(data_dir=data, lkg_dir=tmp_path / "lkg", initial_wait=3.0),
        trust=keys.trust,
        endpoint=broker.endpoint(service_name),
        instance_id="master-1",
    )
    async with library as running:
        await running.wait_for_version(1)
        manager.stop()
        capsys.readouterr()

        # (a command line: its own event loop, so off this test's loop)
        assert await asyncio.to_thread(_keys, data, "rotate-master") == 0
        printed = capsys.readouterr().out
        assert f"{service_name}: secrets re-encrypted as version 2" in printed
        new_key = load_data_key(key_file, service_name)
        assert new_key.key_id != keys.data_key(service_name).key_id
        assert (data / "keys" / "retired").is_dir()

        # The manager starts again and publishes version 2; the running service reloads
        # its data key file and decrypts it.
        manager = manager_factory(
            mqtt_url=broker.url("manager"), models=models, data_dir=data, tokens=manager.tokens
        )
        current = await running.wait_for_version(2)
        assert current.api_key.get_secret_value() == PLAIN
        assert running.metrics.rejected == {}

        # The stored secret kept through a masked write (decrypted with the new key), then
        # version 1 (old key, immutable history) restored: its secret is still readable.
        async with manager.client("editor") as http:
            body = {"rate": 32000, "api_key": "**********"}
            assert (await put(http, service_name, body, 2)).status_code == 200
            resp = await http.post(
                f"/api/v1/configs/{service_name}/rollback",
                json={"to_version": 1},
                headers={"If-Match": "3"},
            )
            assert resp.status_code == 200, resp.text
        restored = await running.wait_for_version(4)
        assert restored.rate == 22050
        assert restored.api_key.get_secret_value() == PLAIN

    manager.stop()
    stored = _db_bytes(data)
    assert PLAIN.encode() not in stored
    conn = sqlite3.connect(data / "manager.db")
    rows = conn.execute(
        "SELECT version, values_json FROM versions WHERE service = ? ORDER BY version",
        (service_name,),
    ).fetchall()
    actions = [r[0] for r in conn.execute("SELECT action FROM audit").fetchall()]
    conn.close()
    key_ids = {v: json.loads(doc)["api_key"]["key_id"] for v, doc in rows}
    assert key_ids[1] == keys.data_key(service_name).key_id
    assert key_ids[2] == key_ids[3] == key_ids[4] == new_key.key_id
    assert "keys.master.rotate" in actions


def test_master_key_rotation_refuses_while_the_manager_runs(
    manager: RunningManager, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _keys(manager.data_dir, "rotate-master") == 1
    assert "stop the manager first" in _one_line(capsys)


YEAR = 365 * 24 * 3600


async def test_root_signed_floor_reset_brings_back_a_fleet_whose_epoch_is_too_high(
    manager_factory: Callable[..., RunningManager],
    broker: Any,
    keys: Any,
    service_name: str,
    tmp_path: Path,
) -> None:
    """A manager whose clock ran a year ahead; its database and the broker's retained
    store are then lost. The recreated database (right clock, lower epoch) is refused as a
    rollback until the operator's root-signed reset; then every instance, running or
    restarted from its untouched LKG file, applies it, and a replay of the old epoch is
    refused."""
    ahead = int(time.time()) + YEAR
    data = tmp_path / "data"
    write_keys(data, keys)
    root_file = tmp_path / "offline" / "root.pem"
    assert _keys(data, "create-root", "--root-key", str(root_file)) == 0
    migrate(data / "manager.db")
    conn = sqlite3.connect(data / "manager.db")
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(ahead),))
    conn.close()
    models = {service_name: DemoConfig}
    old = manager_factory(
        mqtt_url=broker.url("manager"), models=models, data_dir=data, keys_poll_s=0.05
    )
    async with old.client("editor") as http:
        assert (await put(http, service_name, {"rate": 22050}, 0)).status_code == 200
    root = TrustStore.load(data / "keys" / "root-public.pem")

    def library(name: str) -> ConfigLibrary[DemoConfig]:
        return ConfigLibrary(
            service=service_name,
            model=DemoConfig,
            settings=LibrarySettings(data_dir=tmp_path / name, initial_wait=3.0, fresh_wait=10.0),
            root=root,
            data_keys=[keys.data_key(service_name)],
            endpoint=broker.endpoint(service_name),
            instance_id=name,
        )

    async with library("later") as later:  # will be restarted from its LKG file
        await later.wait_for_version(1, epoch=ahead)
    lkg_later = tmp_path / "later" / "lkg" / f"{service_name}.json"
    lkg_later_bytes = lkg_later.read_bytes()
    async with library("running") as running:
        await running.wait_for_version(1, epoch=ahead)
        bad_epoch_envelope = (tmp_path / "running" / "lkg" / f"{service_name}.json").read_bytes()
        old.stop()
        for path in data.glob("manager.db*"):
            path.unlink()  # the database is lost...
        async with aiomqtt.Client(**broker.endpoint("manager").client_kwargs()) as client:
            for topic in (updated_topic(service_name), freshness_topic(service_name)):
                await client.publish(topic, b"", qos=1, retain=True)  # ...and the broker's store
        new = manager_factory(
            mqtt_url=broker.url("manager"), models=models, data_dir=data, keys_poll_s=0.05
        )
        async with new.client("editor") as http:
            resp = await put(http, service_name, {"rate": 44100}, 0)
        assert resp.status_code == 200, resp.text
        epoch = resp.json()["epoch"]
        assert epoch < ahead
        await eventually(lambda: _true(running.metrics.rejected["rollback"] >= 1))
        assert running.epoch == ahead  # refused: the fleet holds a higher epoch

        # The operator's root-signed reset, picked up by the running manager.
        reset = ["reset-epoch", "--root-key", str(root_file), "--void-from", str(ahead)]
        assert await asyncio.to_thread(_keys, data, *reset) == 0
        await running.wait_for_keyset(2)
        await eventually(lambda: _true(running.epoch == epoch))
        assert running.current.rate == 44100

        # A replay of the void epoch is refused.
        async with aiomqtt.Client(**broker.endpoint("manager").client_kwargs()) as client:
            await client.publish(updated_topic(service_name), bad_epoch_envelope, qos=1)
        await eventually(lambda: _true(running.metrics.rejected["void_epoch"] >= 1))
        assert running.epoch == epoch

    # An instance restarted from its LKG file (not touched) follows too.
    assert lkg_later.read_bytes() == lkg_later_bytes
    async with library("later") as restarted:
        await eventually(lambda: _true(restarted.epoch == epoch))
        assert restarted.current.rate == 44100
    async with aiomqtt.Client(**broker.endpoint("manager").client_kwargs()) as client:
        await client.publish("config/keyset", b"", qos=1, retain=True)
