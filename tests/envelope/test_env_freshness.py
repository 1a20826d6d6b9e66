"""Signed freshness records and the freshness rules, pure (no broker): one test per attack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config_lib import (
    BadIssuedAt,
    BadSignature,
    DigestMismatch,
    FreshnessError,
    FreshnessGate,
    MalformedEnvelope,
    Outdated,
    ServiceMismatch,
    SigningKey,
    TrustStore,
    UnknownKey,
    Unsigned,
    canonical_bytes,
    envelope_digest,
    sign_envelope,
    sign_freshness,
    verify_envelope,
    verify_freshness,
)

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
KEY = SigningKey.generate()
TRUST = TrustStore([KEY.public_key])


def _env(version: int, epoch: int = 100, issued: datetime = NOW) -> Any:
    raw = sign_envelope(
        service="stt", version=version, epoch=epoch, config={"x": version}, key=KEY,
        issued_at=issued,
    )  # fmt: skip
    return verify_envelope(raw, trust=TRUST, service="stt")


def _record(
    version: int,
    *,
    epoch: int = 100,
    digest: str | None = "0" * 64,
    issued: datetime = NOW,
    expires_in: timedelta = timedelta(seconds=120),
    key: SigningKey = KEY,
    service: str = "stt",
) -> bytes:
    return sign_freshness(
        service=service, epoch=epoch, version=version, envelope_sha256=digest, key=key,
        expires_in=expires_in, issued_at=issued,
    )  # fmt: skip


def _verify(raw: bytes) -> Any:
    return verify_freshness(raw, trust=TRUST, service="stt")


def _resign(doc: dict[str, Any]) -> bytes:
    import base64

    body = {k: v for k, v in doc.items() if k != "signature"}
    doc = {**body, "signature": base64.b64encode(KEY.sign(canonical_bytes(body))).decode()}
    return json.dumps(doc).encode()


def test_record_round_trip_names_position_digest_and_expiry() -> None:
    env = _env(7)
    record = _verify(_record(7, digest=envelope_digest(env.raw)))
    assert record.position == (100, 7)
    assert record.envelope_sha256 == envelope_digest(env.raw)
    assert record.expires_at - record.issued_at == timedelta(seconds=120)
    line = _record(7).decode()
    assert "\n" not in line
    assert '"type": "freshness"' in line


def test_record_version_zero_means_no_config_and_has_no_digest() -> None:
    assert _verify(_record(0, digest=None)).position is None
    with pytest.raises(MalformedEnvelope, match=r"null when .version. is 0"):
        _record(0, digest="0" * 64)


@pytest.mark.parametrize(
    ("change", "exc", "reason"),
    [
        ({"version": 8}, BadSignature, "bad_signature"),
        ({"expires_at": "2099-01-01T00:00:00.000000Z"}, BadSignature, "bad_signature"),
        ({"signature": ""}, Unsigned, "unsigned"),
        ({"key_id": "0000000000000000"}, UnknownKey, "unknown_key"),
        ({"type": "envelope"}, MalformedEnvelope, "malformed"),
        ({"issued_at": "2026-11-29T12:00:00Z"}, MalformedEnvelope, "malformed"),
        ({"envelope_sha256": "ABC"}, MalformedEnvelope, "malformed"),
        ({"extra": 1}, MalformedEnvelope, "malformed"),
    ],
)
def test_tampered_record_is_refused(
    change: dict[str, Any], exc: type[Exception], reason: str
) -> None:
    doc = json.loads(_record(7))
    doc.update(change)
    with pytest.raises(exc) as info:
        _verify(json.dumps(doc).encode())
    assert getattr(info.value, "reason", None) == reason


def test_record_for_another_service_is_refused() -> None:
    with pytest.raises(ServiceMismatch):
        _verify(_record(7, service="orchestrator"))


def test_record_with_expiry_before_issue_is_malformed_even_if_signed() -> None:
    doc = json.loads(_record(7))
    doc["expires_at"] = doc["issued_at"]
    with pytest.raises(MalformedEnvelope, match="later than 'issued_at'"):
        _verify(_resign(doc))


def test_envelope_signature_cannot_pass_as_a_record() -> None:
    env = json.loads(_env(7).raw)
    with pytest.raises(MalformedEnvelope):
        _verify(json.dumps(env).encode())


def test_expired_record_is_refused() -> None:
    gate = FreshnessGate()
    record = _verify(_record(7, issued=NOW - timedelta(seconds=200)))
    with pytest.raises(FreshnessError) as info:
        gate.offer(record, NOW)
    assert info.value.reason == "expired"


def test_record_from_the_future_is_refused() -> None:
    gate = FreshnessGate(skew=timedelta(seconds=30))
    record = _verify(_record(7, issued=NOW + timedelta(seconds=31)))
    with pytest.raises(FreshnessError) as info:
        gate.offer(record, NOW)
    assert info.value.reason == "not_yet_valid"
    gate.offer(_verify(_record(7, issued=NOW + timedelta(seconds=29))), NOW)  # within skew


def test_replayed_older_record_is_refused() -> None:
    gate = FreshnessGate()
    gate.offer(_verify(_record(8, issued=NOW)), NOW)
    older = _verify(_record(7, issued=NOW - timedelta(seconds=30)))
    with pytest.raises(FreshnessError) as info:
        gate.offer(older, NOW)
    assert info.value.reason == "record_rollback"
    assert gate.record is not None
    assert gate.record.version == 8


def test_replayed_genuine_older_envelope_is_outdated() -> None:
    gate = FreshnessGate()
    gate.offer(_verify(_record(7)), NOW)
    with pytest.raises(Outdated) as info:
        gate.check(_env(5), NOW)
    assert info.value.reason == "stale"
    gate.check(_env(8), NOW)  # newer than the record: accepted (the record follows)


def test_older_envelope_stays_refused_after_the_record_expires() -> None:
    gate = FreshnessGate()
    gate.offer(_verify(_record(7)), NOW)
    later = NOW + timedelta(seconds=600)
    assert gate.fresh_record(later) is None
    with pytest.raises(Outdated):
        gate.check(_env(5), later)


def test_envelope_at_record_position_with_other_bytes_is_refused() -> None:
    gate = FreshnessGate()
    genuine = _env(7)
    gate.offer(_verify(_record(7, digest=envelope_digest(genuine.raw))), NOW)
    gate.check(genuine, NOW)
    other = _env(7, issued=NOW - timedelta(seconds=1))  # same position, other bytes
    with pytest.raises(DigestMismatch):
        gate.check(other, NOW)


def test_envelope_dated_in_the_future_is_refused() -> None:
    gate = FreshnessGate(skew=timedelta(seconds=30))
    with pytest.raises(BadIssuedAt) as info:
        gate.check(_env(1, issued=datetime(2200, 1, 1, tzinfo=UTC)), NOW)
    assert info.value.reason == "bad_issued_at"


def test_envelope_dated_after_the_record_naming_it_is_refused() -> None:
    gate = FreshnessGate(skew=timedelta(seconds=5))
    env = _env(7, issued=NOW + timedelta(seconds=10))
    gate.offer(_verify(_record(7, digest=envelope_digest(env.raw))), NOW + timedelta(seconds=11))
    gate.record = _verify(_record(7, digest=envelope_digest(env.raw), issued=NOW))
    with pytest.raises(BadIssuedAt):
        gate.check(env, NOW + timedelta(seconds=11))


def test_state_is_fresh_only_while_a_record_names_nothing_newer() -> None:
    gate = FreshnessGate()
    assert gate.state((100, 7), NOW) == "stale"  # no record yet
    gate.offer(_verify(_record(7)), NOW)
    assert gate.state((100, 7), NOW) == "fresh"
    assert gate.state((100, 8), NOW) == "fresh"
    assert gate.state((100, 6), NOW) == "stale"
    assert gate.state(None, NOW) == "stale"
    assert gate.state((100, 7), NOW + timedelta(seconds=120)) == "stale"  # expired
    gate.offer(_verify(_record(0, digest=None, issued=NOW + timedelta(seconds=1))), NOW)
    assert gate.state(None, NOW) == "fresh"  # the manager has no config: defaults are current
