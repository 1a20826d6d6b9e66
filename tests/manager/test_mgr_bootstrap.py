"""First start: ``init`` creates what is missing, never changes what exists."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from config_lib import SigningKey, TrustStore, load_data_key, load_signing_key, write_atomic
from config_manager import ManagerSettings, init_data_dir, startup_problems
from config_manager.tokens import hash_token

REPO = Path(__file__).resolve().parents[2]
SERVICES = ["stt", "orchestrator", "svc-boot"]


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_init_creates_everything_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = init_data_dir(data, mqtt_port=18830, services=SERVICES)
    assert first.admin_token is not None
    for rel in (
        "manager.db",
        "keys/signing.pem",
        "keys/trust.pem",
        "keys/master.key",
        "keys/services/stt.key",
        "keys/services/svc-boot.key",
        "secrets/admin.token",
        "secrets/mqtt/manager.password",
        "secrets/mqtt/debug.password",
        "secrets/mqtt/client.password",
        "secrets/mqtt/svc-boot.password",
        "mosquitto/mosquitto.conf",
        "mosquitto/passwd",
        "mosquitto/acl",
    ):
        path = data / rel
        assert path.is_file(), rel
        if rel.startswith(("keys/s", "keys/m", "secrets/", "mosquitto/passwd")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, rel
    assert "listener 18830 " in (data / "mosquitto/mosquitto.conf").read_text()
    users = {line.split(":")[0] for line in (data / "mosquitto/passwd").read_text().splitlines()}
    assert users == {"manager", "debug", "stt", "orchestrator", "client", "svc-boot"}
    signing = load_signing_key(data / "keys/signing.pem")
    assert signing.key_id in TrustStore.load(data / "keys/trust.pem")
    assert load_data_key(data / "keys/services/stt.key", "stt").key_id
    token = (data / "secrets/admin.token").read_text().strip()
    assert token == first.admin_token
    conn = sqlite3.connect(data / "manager.db")
    try:
        assert conn.execute("SELECT name, role, token_hash FROM tokens").fetchall() == [
            ("admin", "admin", hash_token(token))
        ]
        assert int(conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]) > 1.7e9
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] >= 1
    finally:
        conn.close()

    before = _snapshot(data)
    second = init_data_dir(data, mqtt_port=18830, services=SERVICES)
    assert not second.changed
    assert second.admin_token is None
    assert _snapshot(data) == before


def test_init_adds_to_an_existing_trust_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    other = SigningKey.generate()
    write_atomic(data / "keys" / "trust.pem", other.public_pem(), mode=0o644)
    result = init_data_dir(data, services=["stt"])
    trust = TrustStore.load(data / "keys" / "trust.pem")
    assert other.key_id in trust
    assert load_signing_key(data / "keys/signing.pem").key_id in trust
    assert data / "keys" / "trust.pem" in result.updated


def test_cli_init_prints_the_token_once(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "config_manager", "init", "--data-dir", str(tmp_path / "d")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=60)
    assert first.returncode == 0, first.stderr
    token = (tmp_path / "d/secrets/admin.token").read_text().strip()
    assert token in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=60)
    assert second.returncode == 0
    assert token not in second.stdout
    assert "nothing changed" in second.stdout


def test_serve_refuses_placeholder_and_missing_secrets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    missing = startup_problems(ManagerSettings(data_dir=data))
    assert any("signing key" in p and "missing" in p for p in missing)
    assert any("MQTT password" in p for p in missing)
    assert startup_problems(ManagerSettings(data_dir=data, dev_mode=True)) == []

    init_data_dir(data, services=["stt"])
    assert startup_problems(ManagerSettings(data_dir=data)) == []
    trust = data / "keys/trust.pem"
    kept = trust.read_bytes()
    write_atomic(trust, SigningKey.generate().public_pem(), mode=0o644)
    assert any(
        "not in the trust store" in p for p in startup_problems(ManagerSettings(data_dir=data))
    )
    write_atomic(trust, kept, mode=0o644)
    weak = startup_problems(ManagerSettings(data_dir=data, mqtt_password="changeme"))
    assert any("placeholder" in p for p in weak)
    (data / "keys/master.key").unlink()
    write_atomic(data / "keys/master.key", base64.b64encode(bytes(32)) + b"\n")
    assert any("master key" in p for p in startup_problems(ManagerSettings(data_dir=data)))

    env = {**os.environ, "PYTHONPATH": str(REPO), "CONFIG_MANAGER_DATA_DIR": str(data)}
    proc = subprocess.run(
        [sys.executable, "-m", "config_manager", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "refusing to start" in proc.stderr
    assert "master key" in proc.stderr


@pytest.mark.parametrize("password", ["password", "short"])
def test_placeholder_mqtt_passwords(tmp_path: Path, password: str) -> None:
    init_data_dir(tmp_path, services=[])
    problems = startup_problems(ManagerSettings(data_dir=tmp_path, mqtt_password=password))
    assert problems
    assert "MQTT password" in problems[0]


def test_a_stored_service_with_a_dot_refuses_the_start_and_is_named(tmp_path: Path) -> None:
    """A database from before the name alphabet excluded '.' (decision: refuse, loudly).

    Publishing ``dot.svc`` would put it on a topic RabbitMQ reads as two levels (the
    service would never apply it), so the manager refuses to start, in --dev mode too,
    with a message naming the service; nothing in the database is changed.
    """
    data = tmp_path / "data"
    init_data_dir(data, services=["stt"])
    db = data / "manager.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(
        "INSERT INTO versions (service, version, epoch, values_json, created_at, created_by, "
        "change_id) VALUES ('dot.svc', 1, 1, '{}', '2026-01-01T00:00:00Z', 'old', 'c1')"
    )
    conn.close()
    before = db.read_bytes()
    for dev in (False, True):
        problems = startup_problems(ManagerSettings(data_dir=data, dev_mode=dev))
        assert len(problems) == 1, problems
        assert "'dot.svc'" in problems[0]
        assert "contains '.'" in problems[0]
        assert "docs/operations.md" in problems[0]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CONFIG_MANAGER_DATA_DIR": str(data)}
    proc = subprocess.run(
        [sys.executable, "-m", "config_manager", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "refusing to start" in proc.stderr
    assert "'dot.svc'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert db.read_bytes() == before


def test_a_schema_entry_point_with_a_dotted_name_is_skipped_not_fatal(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib.metadata import EntryPoint

    import config_manager.registry as registry_module

    eps = [
        EntryPoint("dot.svc", "pydantic:BaseModel", "g"),
        EntryPoint("ok-svc", "pydantic:BaseModel", "g"),
    ]
    monkeypatch.setattr(registry_module, "entry_points", lambda group: eps)
    registry = registry_module.SchemaRegistry.from_entry_points("g")
    assert list(registry) == ["ok-svc"]
    assert "dot.svc" in caplog.text
    assert "contains '.'" in caplog.text
