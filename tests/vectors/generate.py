"""Regenerate tests/vectors/envelopes.json (deterministic: fixed keys, times and nonces).

    .venv/bin/python tests/vectors/generate.py

The vectors are for other implementations too: see docs/protocol.md.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config_lib import (
    SigningKey,
    canonical_bytes,
    derive_data_key,
    sign_envelope,
    sign_keyset,
)
from config_lib._secrets import _aad

OUT = Path(__file__).with_name("envelopes.json")
KEYSETS = Path(__file__).with_name("keysets.json")
ISSUED = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def _key(seed: int) -> tuple[SigningKey, dict[str, str]]:
    raw = bytes([seed]) * 32
    key = SigningKey(Ed25519PrivateKey.from_private_bytes(raw), "")
    key = SigningKey(key.private_key, SigningKey.from_pem(key.private_pem()).key_id)
    public = key.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, {"private_seed_hex": raw.hex(), "public_hex": public.hex(), "key_id": key.key_id}


def _resign(doc: dict[str, Any], key: SigningKey) -> str:
    doc = {k: v for k, v in doc.items() if k != "signature"}
    doc["signature"] = base64.b64encode(key.sign(canonical_bytes(doc))).decode()
    return json.dumps(doc)


def main() -> None:
    trusted, trusted_doc = _key(1)
    untrusted, untrusted_doc = _key(2)
    master = bytes(range(32))
    data_key = derive_data_key(master, "stt")
    nonce = bytes(range(12))
    path = "/api_key"
    ct = AESGCM(data_key.key).encrypt(nonce, b"sk-test-secret", _aad("stt", path))
    secret = {
        "encrypted": "AES-256-GCM",
        "key_id": data_key.key_id,
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ct).decode(),
    }
    config = {"beam_size": 5, "language": "en", "temperature": 0.0, "api_key": secret}

    def sign(**kw: Any) -> str:
        args: dict[str, Any] = {
            "service": "stt",
            "version": 7,
            "epoch": 1795000000,
            "config": config,
            "key": trusted,
            "issued_at": ISSUED,
        }
        args.update(kw)
        return sign_envelope(**args).decode()

    valid = sign()
    doc = json.loads(valid)
    cases: list[dict[str, Any]] = [
        {"name": "valid", "message": valid, "expect": "ok"},
        {
            "name": "valid-newer-epoch-lower-version",
            "message": sign(version=1, epoch=1795000001),
            "last": [1795000000, 7],
            "expect": "ok",
        },
        {
            "name": "tampered-value",
            "message": valid.replace('"beam_size": 5', '"beam_size": 1'),
            "expect": "bad_signature",
        },
        {
            "name": "unsigned",
            "message": json.dumps({k: v for k, v in doc.items() if k != "signature"}),
            "expect": "unsigned",
        },
        {"name": "unknown-key", "message": sign(key=untrusted), "expect": "unknown_key"},
        {
            "name": "other-service",
            "message": sign(service="orchestrator"),
            "expect": "service_mismatch",
        },
        {
            "name": "rollback",
            "message": sign(version=6),
            "last": [1795000000, 7],
            "expect": "rollback",
        },
        {"name": "duplicate", "message": valid, "last": [1795000000, 7], "expect": "duplicate"},
        {
            "name": "unsupported-format",
            "message": _resign({**doc, "format": 2}, trusted),
            "expect": "unsupported_format",
        },
        {"name": "not-json", "message": valid[:-1], "expect": "malformed"},
        {
            "name": "extra-field",
            "message": _resign({**doc, "admin": True}, trusted),
            "expect": "malformed",
        },
        {"name": "too-large", "message": valid, "max_bytes": 100, "expect": "too_large"},
        {
            # '.' is not in the name alphabet (a level separator on RabbitMQ): even a
            # correctly signed envelope naming such a service is refused.
            "name": "service-name-with-dot",
            "message": _resign({**doc, "service": "stt.v2"}, trusted),
            "expect": "malformed",
        },
        # Tombstones (docs/protocol.md, "Tombstone"): "retired": true, empty config.
        {"name": "tombstone", "message": sign(version=8, config={}, retired=True), "expect": "ok"},
        {
            "name": "tombstone-with-config",
            "message": _resign({**doc, "version": 8, "retired": True}, trusted),
            "expect": "malformed",
        },
        {
            "name": "retired-not-true",
            "message": _resign({**doc, "version": 8, "config": {}, "retired": False}, trusted),
            "expect": "malformed",
        },
    ]
    out = {
        "comment": "Generated by tests/vectors/generate.py; see docs/protocol.md",
        "service": "stt",
        "keys": {"trusted": trusted_doc, "untrusted": untrusted_doc},
        "secrets": {
            "master_key_hex": master.hex(),
            "stt_data_key_hex": data_key.key.hex(),
            "stt_data_key_id": data_key.key_id,
            "path": path,
            "plaintext": "sk-test-secret",
            "object": secret,
        },
        "cases": cases,
    }
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    keysets(trusted, trusted_doc, untrusted, untrusted_doc, config)


def keysets(
    trusted: SigningKey,
    trusted_doc: dict[str, str],
    untrusted: SigningKey,
    untrusted_doc: dict[str, str],
    config: dict[str, Any],
) -> None:
    """tests/vectors/keysets.json: the root-signed keyset (docs/protocol.md, *Keyset*)."""
    root, root_doc = _key(3)
    now = "2026-11-23T12:30:00.000000Z"
    day = timedelta(days=1)

    def keyset(**kw: Any) -> str:
        args: dict[str, Any] = {
            "version": 2,
            "keys": [trusted.public_key],
            "root": root,
            "expires_in": day,
            "issued_at": ISSUED,
        }
        args.update(kw)
        return sign_keyset(**args).decode()

    current = keyset(version=1, keys=[trusted.public_key, untrusted.public_key])
    valid = keyset()
    doc = json.loads(valid)
    entry = doc["keys"][0]

    def case(name: str, message: str, expect: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "message": message, "current": current, "expect": expect, **extra}

    cases = [
        case("valid", valid, "ok", key_ids=[trusted.key_id], void_epochs_from=None),
        case(
            "valid-two-keys",
            keyset(version=3, keys=[trusted.public_key, untrusted.public_key]),
            "ok",
            key_ids=sorted([trusted.key_id, untrusted.key_id]),
            void_epochs_from=None,
        ),
        case(
            "valid-floor-reset",
            keyset(void_epochs_from=1796000000),
            "ok",
            key_ids=[trusted.key_id],
            void_epochs_from=1796000000,
        ),
        {
            "name": "valid-first",
            "message": valid,
            "current": None,
            "expect": "ok",
            "key_ids": [trusted.key_id],
            "void_epochs_from": None,
        },
        case("duplicate", current, "keyset_duplicate"),
        case("rollback", keyset(version=1), "keyset_rollback"),
        case("expired", keyset(issued_at=ISSUED - 2 * day), "keyset_expired"),
        case("signed-by-another-root", keyset(root=untrusted), "unknown_key"),
        case("tampered", valid.replace('"version": 2', '"version": 9'), "bad_signature"),
        case(
            "unsigned", json.dumps({k: v for k, v in doc.items() if k != "signature"}), "unsigned"
        ),
        case("unsupported-format", _resign({**doc, "format": 2}, root), "unsupported_format"),
        case("extra-member", _resign({**doc, "admin": True}, root), "malformed"),
        case("wrong-type", _resign({**doc, "type": "freshness"}, root), "malformed"),
        case("no-keys", _resign({**doc, "keys": []}, root), "malformed"),
        case(
            "key-id-not-of-its-key",
            _resign({**doc, "keys": [{**entry, "key_id": untrusted.key_id}]}, root),
            "malformed",
        ),
        case("same-key-twice", _resign({**doc, "keys": [entry, entry]}, root), "malformed"),
        case(
            "public-key-not-canonical-base64",
            _resign(
                {**doc, "keys": [{**entry, "public_key": entry["public_key"].rstrip("=")}]}, root
            ),
            "malformed",
        ),
        case("version-zero", _resign({**doc, "version": 0}, root), "malformed"),
        case("version-out-of-range", _resign({**doc, "version": 2**48}, root), "out_of_range"),
        case("void-not-integer", _resign({**doc, "void_epochs_from": "1"}, root), "malformed"),
        case(
            "expires-before-issued",
            _resign({**doc, "expires_at": doc["issued_at"]}, root),
            "malformed",
        ),
        case(
            "time-with-offset",
            _resign({**doc, "issued_at": "2026-11-23T12:00:00+00:00"}, root),
            "malformed",
        ),
        case("not-json", valid[:-1], "malformed"),
        case("too-large", valid + " " * 16384, "too_large"),
    ]

    def envelope(key: SigningKey, epoch: int) -> str:
        return sign_envelope(
            service="stt", version=7, epoch=epoch, config=config, key=key, issued_at=ISSUED
        ).decode()

    reset = keyset(void_epochs_from=1796000000)
    envelopes = [
        {
            "name": "listed-key",
            "keyset": valid,
            "message": envelope(trusted, 1795000000),
            "expect": "ok",
        },
        {
            "name": "key-not-in-keyset",
            "keyset": valid,
            "message": envelope(untrusted, 1795000000),
            "expect": "unknown_key",
        },
        {
            "name": "void-epoch",
            "keyset": reset,
            "message": envelope(trusted, 1796000000),
            "expect": "void_epoch",
        },
        {
            "name": "void-position-no-longer-a-floor",
            "keyset": reset,
            "message": envelope(trusted, 1795000000),
            "last": [1796000005, 9],
            "expect": "ok",
        },
        {
            "name": "below-the-void-range-still-ordered",
            "keyset": reset,
            "message": envelope(trusted, 1795000000),
            "last": [1795000001, 1],
            "expect": "rollback",
        },
    ]
    out = {
        "comment": "Generated by tests/vectors/generate.py; see docs/protocol.md, Keyset",
        "now": now,
        "service": "stt",
        "keys": {"root": root_doc, "trusted": trusted_doc, "untrusted": untrusted_doc},
        "cases": cases,
        "envelopes": envelopes,
    }
    KEYSETS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
