"""Secret fields (AES-256-GCM) and key files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from config_lib import (
    MASK,
    KeyFileError,
    SecretError,
    SigningKey,
    TrustStore,
    decrypt_secrets,
    derive_data_key,
    encrypt_secrets,
    load_data_key,
    load_or_create_master_key,
    load_or_create_signing_key,
    mask_secrets,
    save_data_key,
    write_atomic,
)

MASTER = bytes(range(32))


class Database(BaseModel):
    host: str = "db"
    password: SecretStr = SecretStr("hunter2-db")


class ServiceConfig(BaseModel):
    name: str = "x"
    api_key: SecretStr = SecretStr("sk-live-123456")
    db: Database = Database()
    replicas: list[Database] = [Database(password=SecretStr("replica-pw"))]


def test_secrets_travel_only_as_ciphertext() -> None:
    key = derive_data_key(MASTER, "stt")
    values = encrypt_secrets(ServiceConfig(), service="stt", key=key)
    text = json.dumps(values)
    for plain in ("sk-live-123456", "hunter2-db", "replica-pw"):
        assert plain not in text
    assert values["api_key"]["encrypted"] == "AES-256-GCM"
    assert values["api_key"]["key_id"] == key.key_id
    assert values["name"] == "x"


def test_secrets_round_trip_through_the_model() -> None:
    key = derive_data_key(MASTER, "stt")
    values = encrypt_secrets(ServiceConfig(), service="stt", key=key)
    restored = ServiceConfig.model_validate(decrypt_secrets(values, service="stt", keys=[key]))
    assert restored.api_key.get_secret_value() == "sk-live-123456"
    assert restored.db.password.get_secret_value() == "hunter2-db"
    assert restored.replicas[0].password.get_secret_value() == "replica-pw"


def test_tampered_ciphertext_fails() -> None:
    key = derive_data_key(MASTER, "stt")
    values = encrypt_secrets(ServiceConfig(), service="stt", key=key)
    ct = bytearray(values["api_key"]["ciphertext"].encode())
    ct[2] = ord("A") if ct[2] != ord("A") else ord("B")
    values["api_key"]["ciphertext"] = ct.decode()
    with pytest.raises(SecretError):
        decrypt_secrets(values, service="stt", keys=[key])


def test_ciphertext_moved_to_another_field_fails() -> None:
    key = derive_data_key(MASTER, "stt")
    values = encrypt_secrets(ServiceConfig(), service="stt", key=key)
    values["db"]["password"] = values["api_key"]
    with pytest.raises(SecretError):
        decrypt_secrets(values, service="stt", keys=[key])


def test_ciphertext_for_another_service_fails() -> None:
    stt, orch = derive_data_key(MASTER, "stt"), derive_data_key(MASTER, "orchestrator")
    values = encrypt_secrets(ServiceConfig(), service="orchestrator", key=orch)
    with pytest.raises(SecretError):
        decrypt_secrets(values, service="stt", keys=[stt])


def test_each_service_gets_its_own_data_key() -> None:
    a, b = derive_data_key(MASTER, "stt"), derive_data_key(MASTER, "orchestrator")
    assert a.key != b.key
    assert a.key_id != b.key_id
    assert derive_data_key(MASTER, "stt") == a  # deterministic
    assert "key=" not in repr(a)  # never printed


def test_mask_hides_every_secret() -> None:
    key = derive_data_key(MASTER, "stt")
    masked = mask_secrets(encrypt_secrets(ServiceConfig(), service="stt", key=key))
    assert masked["api_key"] == MASK
    assert masked["replicas"][0]["password"] == MASK


def test_key_files_are_private_atomic_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    key, created = load_or_create_signing_key(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    again, created_again = load_or_create_signing_key(path)
    assert not created_again
    assert again.key_id == key.key_id
    assert path.read_bytes() == before
    assert not write_atomic(path, b"other", overwrite=False)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["signing.pem"]  # no temp file left


def test_master_and_data_key_files(tmp_path: Path) -> None:
    master, created = load_or_create_master_key(tmp_path / "master.key")
    assert created
    assert len(master) == 32
    assert load_or_create_master_key(tmp_path / "master.key") == (master, False)
    data = derive_data_key(master, "stt")
    assert save_data_key(tmp_path / "stt.key", data)
    assert load_data_key(tmp_path / "stt.key", "stt") == data
    with pytest.raises(KeyFileError):
        load_data_key(tmp_path / "stt.key", "orchestrator")
    assert stat.S_IMODE(os.stat(tmp_path / "stt.key").st_mode) == 0o600


def test_trust_store_from_folder_and_bundle(tmp_path: Path) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    (tmp_path / "a.pem").write_bytes(a.public_pem())
    (tmp_path / "b.pem").write_bytes(b.public_pem())
    store = TrustStore.load(tmp_path)
    assert set(store) == {a.key_id, b.key_id}
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(store.to_pem())
    assert set(TrustStore.load(bundle)) == {a.key_id, b.key_id}


def test_bad_key_files_raise_key_file_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(KeyFileError):
        TrustStore.load(tmp_path / "junk.pem")
    with pytest.raises(KeyFileError):
        load_or_create_signing_key(tmp_path / "junk.pem")
    with pytest.raises(KeyFileError):
        TrustStore.load(tmp_path / "missing.pem")
