"""``python -m config_manager.stack`` (what `make run` starts) refuses clearly, before starting
anything, when a port is busy or the environment asks for something the stack overrides."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config_manager import stack
from config_manager.broker import free_port

REPO = Path(__file__).resolve().parents[2]


def _stack(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONFIG_", "MQTT_"))}
    return subprocess.run(
        [sys.executable, "-m", "config_manager.stack", "--data-dir", str(data_dir), *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_busy_http_port_names_http_port(tmp_path: Path, busy_port: int) -> None:
    proc = _stack(tmp_path / "d", "--mqtt-port", str(free_port()), "--http-port", str(busy_port))
    assert proc.returncode == 1
    assert f"port {busy_port} (HTTP_PORT, the manager) is already in use" in proc.stdout
    assert "make run HTTP_PORT=" in proc.stdout
    assert "MQTT_PORT" not in proc.stdout
    assert not (tmp_path / "d" / "manager.db").exists()  # nothing was started


def test_busy_mqtt_port_names_mqtt_port(tmp_path: Path, busy_port: int) -> None:
    proc = _stack(tmp_path / "d", "--mqtt-port", str(busy_port), "--http-port", str(free_port()))
    assert proc.returncode == 1
    assert f"port {busy_port} (MQTT_PORT, the broker) is already in use" in proc.stdout
    assert "make run MQTT_PORT=" in proc.stdout


def test_config_manager_port_is_not_silently_overwritten(tmp_path: Path) -> None:
    http, other = free_port(), free_port()
    proc = _stack(
        tmp_path / "d",
        "--mqtt-port",
        str(free_port()),
        "--http-port",
        str(http),
        CONFIG_MANAGER_PORT=str(other),
    )
    assert proc.returncode == 1
    assert f"CONFIG_MANAGER_PORT={other} is set, but the stack uses {http} (HTTP_PORT)" in (
        proc.stdout
    )
    assert not (tmp_path / "d" / "manager.db").exists()


def test_config_manager_port_equal_to_http_port_is_fine(tmp_path: Path) -> None:
    args = argparse.Namespace(mqtt_port=1884, http_port=8082)
    os_env = {"CONFIG_MANAGER_PORT": "8082", "CONFIG_LIB_MQTT_URL": "mqtt://127.0.0.1:1884"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in os_env.items():
            mp.setenv(key, value)
        assert stack._conflicting_env(args, tmp_path) is None
        mp.setenv("CONFIG_LIB_DATA_DIR", str(tmp_path / "elsewhere"))
        message = stack._conflicting_env(args, tmp_path)
    assert message is not None
    assert "CONFIG_LIB_DATA_DIR" in message
    assert "DATA_DIR" in message


def test_demo_command_carries_a_non_default_port_and_data_dir(tmp_path: Path) -> None:
    default = stack._demo_command(argparse.Namespace(mqtt_port=1883), Path("data").resolve())
    assert "--mqtt-url" not in default
    assert "PASSWORD_FILE" not in default
    assert "-m workers.orchestrator transcribe" in default
    other = stack._demo_command(argparse.Namespace(mqtt_port=1999), tmp_path)
    assert "--mqtt-url mqtt://127.0.0.1:1999" in other
    password = tmp_path / "secrets" / "mqtt" / "client.password"
    assert f"ORCHESTRATOR_CLIENT_MQTT_PASSWORD_FILE={password}" in other
