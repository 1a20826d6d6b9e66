"""A broker that refuses the user: the library says "not authorised", not "unreachable".

Against real mosquitto: a wrong password (CONNACK "not authorised") and a subscription the
ACL forbids. Mosquitto's ACL file grants every SUBACK and silently withholds messages, so
the refused SUBACK comes from mosquitto's dynamic-security plugin (shipped with
mosquitto 2), which checks subscriptions. The RabbitMQ variant (the broker closes the
connection) is in tests/broker/test_broker_matrix.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lib_support import demo_library, mqtt_client, publish_config, signed

from config_lib import LibrarySettings, MqttEndpoint, NotAuthorised
from config_manager.broker import BrokerFiles, MosquittoProcess, free_port

_DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "not authorised" in r.getMessage()]


def _unreachable(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "unreachable" in r.getMessage()]


async def test_wrong_password_is_reported_as_not_authorised_once(
    broker: Any,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker.password(service_name)
    wrong = MqttEndpoint(broker.host, broker.port, service_name, "not-the-password")
    caplog.set_level(logging.DEBUG, logger="config_lib")
    async with demo_library(keys, service_name, lib_settings, wrong) as cfg:
        assert cfg.source == "defaults"  # startup did not wait out initial_wait for nothing
        # Several retries (backoff 0.05-0.5 s), each refused and counted.
        error = await cfg.wait_for_broker_error(3, timeout=20)
        assert isinstance(error, NotAuthorised)
        assert error.operation == "connect"
        assert error.reason == "not_authorised"
        assert service_name in str(error)
        assert "password" in str(error)
        assert not cfg.connected
    assert len(_refusals(caplog)) == 1  # logged once, then quietly counted
    assert _refusals(caplog)[0].levelno == logging.ERROR
    assert _unreachable(caplog) == []
    assert cfg.metrics.snapshot()["not_authorised"] >= 3


@dataclass
class _DynsecBroker:
    process: MosquittoProcess
    passwords: dict[str, str]

    def endpoint(self, user: str) -> MqttEndpoint:
        return MqttEndpoint(self.process.host, self.process.port, user, self.passwords[user])


def _dynsec_client(user: str, password: str, roles: list[str]) -> dict[str, Any]:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return {
        "username": user,
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": 101,
        "roles": [{"rolename": r} for r in roles],
    }


@pytest.fixture
def dynsec_broker(tmp_path: Path, service_name: str) -> Iterator[_DynsecBroker]:
    """Mosquitto with the dynamic-security plugin: the service's user may read nothing."""
    if not _DYNSEC_PLUGIN.exists():
        pytest.fail(f"mosquitto's dynamic-security plugin is missing ({_DYNSEC_PLUGIN})")
    folder = tmp_path / "dynsec"
    folder.mkdir()
    passwords = {"manager": secrets.token_urlsafe(12), service_name: secrets.token_urlsafe(12)}
    acl_manager = [
        {"acltype": "publishClientSend", "topic": "config/updated/#", "allow": True},
        {"acltype": "subscribePattern", "topic": "config/applied/#", "allow": True},
    ]
    state = {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [
            _dynsec_client("manager", passwords["manager"], ["manager"]),
            # Only its applied reports: reading its config is not granted.
            _dynsec_client(service_name, passwords[service_name], ["reporter"]),
        ],
        "roles": [
            {"rolename": "manager", "acls": acl_manager},
            {
                "rolename": "reporter",
                "acls": [
                    {
                        "acltype": "publishClientSend",
                        "topic": f"config/applied/{service_name}/#",
                        "allow": True,
                    }
                ],
            },
        ],
        "groups": [],
    }
    (folder / "dynamic-security.json").write_text(json.dumps(state))
    port = free_port()
    files = BrokerFiles(folder)
    files.conf.write_text(
        f"listener {port} 127.0.0.1\n"
        f"plugin {_DYNSEC_PLUGIN}\n"
        f"plugin_opt_config_file {folder / 'dynamic-security.json'}\n"
        "persistence false\n"
        f"log_dest file {files.log_file}\n" + ("user root\n" if os.geteuid() == 0 else "")
        # As root mosquitto would switch to the `mosquitto` user, who cannot read tmp_path.
    )
    process = MosquittoProcess(files, port=port)
    process.start()
    yield _DynsecBroker(process, passwords)
    process.stop()


async def test_refused_subscription_is_not_authorised_not_unreachable(
    dynsec_broker: _DynsecBroker,
    keys: Any,
    service_name: str,
    lib_settings: LibrarySettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with mqtt_client(dynsec_broker.endpoint("manager")) as manager:
        await publish_config(
            manager,
            service_name,
            signed(keys, service_name, 1, beam_size=2),
        )
    caplog.set_level(logging.DEBUG, logger="config_lib")
    endpoint = dynsec_broker.endpoint(service_name)
    async with demo_library(keys, service_name, lib_settings, endpoint) as cfg:
        error = await cfg.wait_for_broker_error(2, timeout=20)
        assert isinstance(error, NotAuthorised)
        assert error.operation == "subscribe"
        assert error.topic == f"config/updated/{service_name}"
        assert "answered a failure" in str(error)
        assert cfg.source == "defaults"
        assert cfg.current.beam_size == 5  # the retained v1 was never delivered
    assert len(_refusals(caplog)) == 1
    assert _unreachable(caplog) == []
