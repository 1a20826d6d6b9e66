"""The process-wide verdict cache (config_lib/_verdicts.py) never changes a verdict.

Same bytes, another trust store, service, replay floor or limit: each library's own rules
still decide; only the pure work (parse, canonical form, Ed25519) is shared.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from config_lib import (
    BadSignature,
    ConfigPipeline,
    DataKey,
    Duplicate,
    EnvelopeTooLarge,
    InvalidConfig,
    Limits,
    Rollback,
    SecretError,
    ServiceMismatch,
    SigningKey,
    TrustStore,
    UnknownKey,
    derive_data_key,
    encrypt_secrets,
    sign_envelope,
    verify_envelope,
)
from config_lib._freshness import envelope_digest, sign_freshness, verify_freshness
from config_lib._verdicts import PARSED, clear


class _Switchable(TrustStore):
    """A trust store whose keys can be withdrawn (as a keyset update would)."""

    revoked = False

    def get(self, key_id: str) -> Ed25519PublicKey:
        if self.revoked:
            raise UnknownKey(f"signing key {key_id!r} withdrawn")
        return super().get(key_id)


class _Impostor(TrustStore):
    """Answers every key id with a public key of its own."""

    def get(self, key_id: str) -> Ed25519PublicKey:
        return _IMPOSTOR_KEY


_IMPOSTOR_KEY = SigningKey.generate().public_key


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear()


def test_cached_bytes_are_judged_by_each_trust_store_service_floor_and_limit() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    raw = sign_envelope(service="stt", version=3, epoch=1, config={"beam_size": 2}, key=key)
    trusting = TrustStore([key.public_key])
    assert verify_envelope(raw, trust=trusting, service="stt").version == 3
    assert len(PARSED) > 0  # now cached: what follows runs on the cached parse
    # The same bytes, now cached: every per-library rule still applies.
    with pytest.raises(UnknownKey):
        verify_envelope(raw, trust=TrustStore([other.public_key]), service="stt")
    with pytest.raises(ServiceMismatch):
        verify_envelope(raw, trust=trusting, service="orchestrator")
    with pytest.raises(Duplicate):
        verify_envelope(raw, trust=trusting, service="stt", last=(1, 3))
    with pytest.raises(Rollback):
        verify_envelope(raw, trust=trusting, service="stt", last=(1, 4))
    with pytest.raises(EnvelopeTooLarge):
        verify_envelope(raw, trust=trusting, service="stt", limits=Limits(max_bytes=len(raw) - 1))
    # A trust store that changes (key removed, as a keyset update would) refuses at once.
    changing = _Switchable([key.public_key])
    assert verify_envelope(raw, trust=changing, service="stt").version == 3
    changing.revoked = True
    with pytest.raises(UnknownKey):
        verify_envelope(raw, trust=changing, service="stt")
    assert verify_envelope(bytearray(raw), trust=trusting, service="stt").raw == raw


def test_a_signature_verdict_is_per_public_key_and_per_exact_bytes() -> None:
    key = SigningKey.generate()
    raw = sign_envelope(service="stt", version=1, epoch=1, config={"language": "en"}, key=key)
    trust = TrustStore([key.public_key])
    verify_envelope(raw, trust=trust, service="stt")
    tampered = raw.replace(b'"en"', b'"de"')
    for _ in range(2):  # refused every time: a refusal is never remembered as a pass
        with pytest.raises(BadSignature):
            verify_envelope(tampered, trust=trust, service="stt")
    # An impostor trust store mapping the key id to another public key: the cached
    # verdict is keyed by the public key itself, so the signature check runs and fails.
    impostor = _Impostor()
    with pytest.raises(BadSignature):
        verify_envelope(raw, trust=impostor, service="stt")


def test_freshness_records_use_the_same_rules_after_caching() -> None:
    key = SigningKey.generate()
    raw_env = sign_envelope(service="stt", version=2, epoch=1, config={}, key=key)
    record = sign_freshness(
        service="stt",
        epoch=1,
        version=2,
        envelope_sha256=envelope_digest(raw_env),
        key=key,
        expires_in=timedelta(minutes=2),
        issued_at=datetime.now(UTC),
    )
    trust = TrustStore([key.public_key])
    assert verify_freshness(record, trust=trust, service="stt").position == (1, 2)
    with pytest.raises(UnknownKey):
        verify_freshness(record, trust=TrustStore(), service="stt")
    with pytest.raises(ServiceMismatch):
        verify_freshness(record, trust=trust, service="orchestrator")
    with pytest.raises(EnvelopeTooLarge):
        verify_freshness(record, trust=trust, service="stt", limits=Limits(max_bytes=10))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)
    token: SecretStr
    beam_size: int = Field(default=5, le=10)


class _Strict(_Frozen):
    beam_size: int = Field(default=5, le=3)


class _Mutable(BaseModel):
    token: SecretStr
    beam_size: int = 5


def test_validated_configs_are_shared_only_for_the_same_model_and_data_keys() -> None:
    key = SigningKey.generate()
    trust = TrustStore([key.public_key])
    right, wrong = (derive_data_key(secrets.token_bytes(32), "stt") for _ in range(2))
    values = encrypt_secrets(
        _Frozen(token=SecretStr("t0k3n"), beam_size=7), service="stt", key=right
    )
    raw = sign_envelope(service="stt", version=1, epoch=1, config=values, key=key)

    def pipeline(model: type[BaseModel], keys: list[DataKey]) -> ConfigPipeline[Any]:
        return ConfigPipeline(service="stt", model=model, trust=trust, data_keys=keys)

    first = pipeline(_Frozen, [right]).accept(raw)
    again = pipeline(_Frozen, [right]).accept(raw)
    assert again.config is first.config  # frozen: one shared instance per process
    assert again.values == first.config.model_dump()
    with pytest.raises(SecretError):  # another library's data key: decrypted again, refused
        pipeline(_Frozen, [wrong]).accept(raw)
    with pytest.raises(InvalidConfig):  # another model: validated again, refused
        pipeline(_Strict, [right]).accept(raw)
    mutable = [pipeline(_Mutable, [right]).accept(raw) for _ in range(2)]
    assert mutable[0].config is not mutable[1].config  # never shared
    assert mutable[0].config.token.get_secret_value() == "t0k3n"
