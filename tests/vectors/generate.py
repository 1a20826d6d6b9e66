"""Regenerate tests/vectors/envelopes.json (deterministic: fixed keys, times and nonces).

    .venv/bin/python tests/vectors/generate.py

The vectors are for other implementations too: see docs/protocol.md.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
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
    sign_report,
)
from config_lib._secrets import _aad

OUT = Path(__file__).with_name("envelopes.json")
REPORTS_OUT = Path(__file__).with_name("reports.json")
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
    REPORTS_OUT.write_text(json.dumps(report_vectors(), indent=2) + "\n")


def report_vectors() -> dict[str, Any]:
    """Applied-report cases (docs/protocol.md, "Report signature"): each names its verdict.

    A verifier runs the five checks of the signature (``too_large``, ``malformed``,
    ``unsigned``, ``bad_signature``, ``identity_mismatch``, in that order) against the
    topic's ``service``/``instance``, then the manager's two: the key must be ``pinned``
    (null: nothing pinned yet, the key is pinned on first use) else ``key_mismatch``; the
    ``time`` must not be older than ``high`` (the latest genuine report's), unless the
    status is ``offline``, else ``replayed``.
    """
    instance_key, instance_doc = _key(3)
    other_key, other_doc = _key(4)
    pub = {"instance": instance_doc, "other": other_doc}
    for doc in pub.values():
        doc["public_b64"] = base64.b64encode(bytes.fromhex(doc["public_hex"])).decode()
    report: dict[str, Any] = {
        "instance": "host1-stt", "service": "stt", "status": "applied", "version": 7,
        "epoch": 1795000000, "source": "broker", "reason": None, "detail": None,
        "attempted_version": 7, "attempted_epoch": 1795000000, "freshness": "fresh",
        "time": "2026-11-23T12:00:05.000000Z",
    }  # fmt: skip
    pinned = pub["instance"]["public_b64"]
    high = "2026-11-23T12:00:05.000000Z"

    def signed(key: SigningKey = instance_key, **changes: Any) -> str:
        return sign_report({**report, **changes}, key).decode()

    valid = signed()
    doc = json.loads(valid)

    def edited(**changes: Any) -> str:
        """The valid report with members changed (or removed: _DROP) after signing."""
        out = {**doc, **changes}
        return json.dumps({k: v for k, v in out.items() if v is not _DROP})

    def case(name: str, message: str, expect: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "message": message, "pinned": pinned, "high": high,
                "expect": expect, **extra}  # fmt: skip

    other_pub = pub["other"]["public_b64"]
    cases = [
        case("valid", valid, "ok"),
        case("valid-first-use", signed(key=other_key), "ok", pinned=None, high=None),
        case("valid-newer", signed(time="2026-11-23T12:00:06.000000Z", version=8), "ok"),
        case(
            "valid-offline-will-older",
            signed(status="offline", reason="connection_lost", time="2026-11-23T12:00:00.000000Z"),
            "ok",
        ),
        case("valid-unicode-detail", signed(status="failed", detail="modèle absent ✓"), "ok"),
        case("valid-extra-member", signed(host_note="added by a later release"), "ok"),
        case("too-large", valid, "too_large", max_bytes=100),
        case("not-json", valid[:-1], "malformed"),
        case("not-an-object", "[" + valid + "]", "malformed"),
        case("duplicate-member", valid[:-1] + ', "status": "rejected"}', "malformed"),
        case("nan", valid.replace('"version": 7', '"version": NaN'), "malformed"),
        case("time-other-form", edited(time="2026-11-23 12:00:05Z"), "malformed"),
        case("missing-status", edited(status=_DROP), "malformed"),
        case("instance-not-a-string", edited(instance=7), "malformed"),
        case("public-key-missing", edited(public_key=_DROP), "malformed"),
        case("unsigned", edited(signature=_DROP), "unsigned"),
        case("empty-signature", edited(signature=""), "unsigned"),
        case("legacy-unsigned", json.dumps(report), "unsigned"),
        case("tampered-status", edited(status="rejected"), "bad_signature"),
        case("tampered-version", edited(version=8), "bad_signature"),
        case(
            "public-key-swapped",
            edited(public_key=other_pub, key_id=other_doc["key_id"]),
            "bad_signature",
        ),
        case("key-id-not-of-public-key", edited(key_id=other_doc["key_id"]), "bad_signature"),
        case(
            "public-key-short",
            edited(public_key=base64.b64encode(b"x" * 31).decode()),
            "bad_signature",
        ),
        case("signature-not-base64", edited(signature="!" * 88), "bad_signature"),
        case("signature-unpadded", edited(signature=doc["signature"].rstrip("=")), "bad_signature"),
        case(
            "signature-other-key",
            edited(signature=json.loads(signed(key=other_key))["signature"]),
            "bad_signature",
        ),
        case("other-instance-id", signed(instance="host2-stt"), "identity_mismatch"),
        case("other-service", signed(service="orchestrator"), "identity_mismatch"),
        case("other-key-for-this-instance", signed(key=other_key), "key_mismatch"),
        case("replayed-older", signed(time="2026-11-23T12:00:04.999999Z", version=6), "replayed"),
        case(
            "replayed-older-rejected",
            signed(status="rejected", reason="bad_signature", time="2026-11-23T12:00:01.000000Z"),
            "replayed",
        ),
    ]
    return {
        "comment": "Generated by tests/vectors/generate.py; see docs/protocol.md, "
        "'Report signature'. Each case arrives on config/applied/<service>/<instance>.",
        "service": "stt",
        "instance": "host1-stt",
        "max_bytes": 16384,
        "keys": pub,
        "cases": cases,
    }


_DROP = object()  # edited(): remove this member


if __name__ == "__main__":
    main()
