"""One test per attack on the envelope verifier (pure: bytes in, verdict out; no broker)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from config_lib import (
    BadSignature,
    Duplicate,
    EnvelopeTooLarge,
    Limits,
    MalformedEnvelope,
    Rollback,
    ServiceMismatch,
    SigningKey,
    TrustStore,
    UnknownKey,
    Unsigned,
    UnsupportedFormat,
    canonical_bytes,
    sign_envelope,
    verify_envelope,
)

KEY = SigningKey.generate()
TRUST = TrustStore([KEY.public_key])
CONFIG = {"beam_size": 5, "language": "en", "vad": {"threshold": 0.5}, "tags": ["a", "b"]}


def signed(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "service": "stt",
        "version": 3,
        "epoch": 1000,
        "config": CONFIG,
        "key": KEY,
    }
    args.update(overrides)
    return sign_envelope(**args)  # type: ignore[arg-type]


def resign(doc: dict[str, object], key: SigningKey = KEY) -> bytes:
    """Sign an arbitrary document the way a (malicious) signer would."""
    doc = {k: v for k, v in doc.items() if k != "signature"}
    doc["signature"] = base64.b64encode(key.sign(canonical_bytes(doc))).decode()
    return json.dumps(doc).encode()


def test_valid_envelope_round_trips() -> None:
    issued = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    env = verify_envelope(signed(issued_at=issued), trust=TRUST, service="stt")
    assert env.service == "stt"
    assert env.position == (1000, 3)
    assert env.config == CONFIG
    assert env.key_id == KEY.key_id
    assert env.issued_at == issued


def test_payload_reads_as_one_json_line_with_plain_keys() -> None:
    raw = signed()
    assert b"\n" not in raw
    doc = json.loads(raw)
    assert list(doc) == [
        "format",
        "service",
        "version",
        "epoch",
        "issued_at",
        "key_id",
        "config",
        "signature",
    ]


def test_tampered_value_is_refused() -> None:
    doc = json.loads(signed())
    doc["config"]["beam_size"] = 1
    with pytest.raises(BadSignature):
        verify_envelope(json.dumps(doc).encode(), trust=TRUST, service="stt")


def test_tampered_version_is_refused() -> None:
    doc = json.loads(signed())
    doc["version"] = 99
    with pytest.raises(BadSignature):
        verify_envelope(json.dumps(doc).encode(), trust=TRUST, service="stt")


def test_flipped_signature_bit_is_refused() -> None:
    doc = json.loads(signed())
    sig = bytearray(base64.b64decode(doc["signature"]))
    sig[0] ^= 1
    doc["signature"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(BadSignature):
        verify_envelope(json.dumps(doc).encode(), trust=TRUST, service="stt")


def test_unsigned_is_refused() -> None:
    doc = json.loads(signed())
    del doc["signature"]
    with pytest.raises(Unsigned):
        verify_envelope(json.dumps(doc).encode(), trust=TRUST, service="stt")


def test_empty_signature_is_refused() -> None:
    doc = json.loads(signed())
    doc["signature"] = ""
    with pytest.raises(Unsigned):
        verify_envelope(json.dumps(doc).encode(), trust=TRUST, service="stt")


def test_unknown_key_is_refused() -> None:
    with pytest.raises(UnknownKey):
        verify_envelope(signed(key=SigningKey.generate()), trust=TRUST, service="stt")


def test_key_id_swapped_to_trusted_key_is_refused() -> None:
    """An attacker's key claiming the trusted key's id fails the signature check."""
    attacker = SigningKey.generate()
    doc = json.loads(signed(key=attacker))
    doc["key_id"] = KEY.key_id
    with pytest.raises(BadSignature):
        verify_envelope(resign(doc, attacker), trust=TRUST, service="stt")


def test_other_service_is_refused() -> None:
    with pytest.raises(ServiceMismatch):
        verify_envelope(signed(service="orchestrator"), trust=TRUST, service="stt")


def test_rollback_is_refused() -> None:
    with pytest.raises(Rollback):
        verify_envelope(signed(version=2), trust=TRUST, service="stt", last=(1000, 3))


def test_older_epoch_is_refused_even_with_higher_version() -> None:
    with pytest.raises(Rollback):
        verify_envelope(signed(version=50, epoch=999), trust=TRUST, service="stt", last=(1000, 3))


def test_newer_epoch_is_accepted_with_lower_version() -> None:
    env = verify_envelope(signed(version=1, epoch=1001), trust=TRUST, service="stt", last=(1000, 3))
    assert env.position == (1001, 1)


def test_duplicate_is_reported_as_duplicate_not_rollback() -> None:
    with pytest.raises(Duplicate) as info:
        verify_envelope(signed(), trust=TRUST, service="stt", last=(1000, 3))
    assert not isinstance(info.value, Rollback)
    assert info.value.reason == "duplicate"


def test_oversized_is_refused_before_parsing() -> None:
    raw = b"{" + b" " * 300_000  # not even JSON: size is checked first
    with pytest.raises(EnvelopeTooLarge):
        verify_envelope(raw, trust=TRUST, service="stt")


def test_size_limit_is_configurable() -> None:
    raw = signed()
    with pytest.raises(EnvelopeTooLarge):
        verify_envelope(raw, trust=TRUST, service="stt", limits=Limits(max_bytes=len(raw) - 1))
    assert verify_envelope(raw, trust=TRUST, service="stt", limits=Limits(max_bytes=len(raw)))


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b"null",
        b'{"format": 1, "format": 1}',
        b'{"format": 1, "x": NaN}',
        b"[" * 100_000,
    ],
    ids=["text", "not-utf8", "array", "null", "duplicate-key", "nan", "deep-nesting"],
)
def test_malformed_is_refused(raw: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        verify_envelope(raw, trust=TRUST, service="stt")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "3"),
        ("version", -1),
        ("version", True),
        ("version", 2**60),
        ("epoch", 1.5),
        ("service", "a/b"),
        ("service", "#"),
        ("config", [1]),
        ("issued_at", "yesterday"),
        ("issued_at", "2026-11-23T12:00:00"),
        ("key_id", 7),
    ],
)
def test_wrong_shape_is_refused_even_if_signed(field: str, value: object) -> None:
    doc = json.loads(signed())
    doc[field] = value
    try:
        raw = resign(doc)
    except ValueError:  # rfc8785 cannot even sign it (integer beyond 2^53): send it as is
        raw = json.dumps(doc).encode()
    with pytest.raises(MalformedEnvelope):
        verify_envelope(raw, trust=TRUST, service="stt")


def test_extra_field_is_refused_even_if_signed() -> None:
    doc = json.loads(signed())
    doc["admin"] = True
    with pytest.raises(MalformedEnvelope):
        verify_envelope(resign(doc), trust=TRUST, service="stt")


def test_missing_field_is_refused() -> None:
    doc = json.loads(signed())
    del doc["epoch"]
    with pytest.raises(MalformedEnvelope):
        verify_envelope(resign(doc), trust=TRUST, service="stt")


def test_unknown_format_is_refused() -> None:
    doc = json.loads(signed())
    doc["format"] = 2
    with pytest.raises(UnsupportedFormat):
        verify_envelope(resign(doc), trust=TRUST, service="stt")


def test_signature_not_base64_is_refused() -> None:
    doc = json.loads(signed())
    doc["signature"] = "!!!"
    with pytest.raises(BadSignature):
        verify_envelope(json.dumps(doc).encode(), trust=TRUST, service="stt")


def test_trust_store_holds_two_keys_for_rotation() -> None:
    new = SigningKey.generate()
    trust = TrustStore([KEY.public_key, new.public_key])
    assert verify_envelope(signed(key=KEY), trust=trust, service="stt").key_id == KEY.key_id
    assert verify_envelope(signed(key=new), trust=trust, service="stt").key_id == new.key_id


def test_every_failure_has_its_own_reason() -> None:
    classes = [
        EnvelopeTooLarge,
        MalformedEnvelope,
        UnsupportedFormat,
        UnknownKey,
        BadSignature,
        Unsigned,
        ServiceMismatch,
        Rollback,
        Duplicate,
    ]
    reasons = [c.reason for c in classes]
    assert len(set(reasons)) == len(reasons)
