"""The pure accept pipeline and the all-or-nothing apply, without a broker."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lib_support import SECRET, DemoConfig, envelope
from pydantic import BaseModel, field_validator

from config_lib import (
    BadSignature,
    ConfigChange,
    ConfigPipeline,
    Duplicate,
    EnvelopeTooLarge,
    InvalidConfig,
    Limits,
    MalformedEnvelope,
    Rollback,
    SecretError,
    ServiceMismatch,
    SigningKey,
    TrustStore,
    UnknownKey,
    Unsigned,
    canonical_bytes,
    derive_data_key,
    encrypt_secrets,
    sign_envelope,
)
from config_lib._change import changed_fields
from config_lib._state import ConfigState


@pytest.fixture
def pipeline(keys: Any, service_name: str) -> ConfigPipeline[DemoConfig]:
    return ConfigPipeline(
        service=service_name,
        model=DemoConfig,
        trust=keys.trust,
        data_keys=[keys.data_key(service_name)],
        limits=Limits(max_bytes=4096),
    )


def _env(keys: Any, service: str, version: int, **values: Any) -> bytes:
    return envelope(
        service, version, signing=keys.signing, data_key=keys.data_key(service), **values
    )


def test_accept_returns_validated_config_with_decrypted_secret(
    pipeline: ConfigPipeline[DemoConfig], keys: Any, service_name: str
) -> None:
    raw = _env(keys, service_name, 3, beam_size=2, api_key=SECRET)
    accepted = pipeline.accept(raw)
    assert accepted.config.beam_size == 2
    assert accepted.config.api_key.get_secret_value() == SECRET
    assert accepted.position == (1, 3)
    assert accepted.envelope.raw == raw
    assert SECRET.encode() not in raw


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda raw: raw.replace(b'"beam_size": 2', b'"beam_size": 3'), BadSignature),
        (lambda raw: raw + b" " * 5000, EnvelopeTooLarge),
        (lambda raw: raw[: len(raw) // 2], MalformedEnvelope),
    ],
    ids=["tampered", "oversized", "truncated"],
)
def test_accept_refuses_mutations(
    pipeline: ConfigPipeline[DemoConfig], keys: Any, service_name: str, mutate: Any, error: Any
) -> None:
    raw = _env(keys, service_name, 3, beam_size=2)
    with pytest.raises(error):
        pipeline.accept(mutate(raw))


def test_accept_refuses_unsigned(
    pipeline: ConfigPipeline[DemoConfig], keys: Any, service_name: str
) -> None:
    doc = json.loads(_env(keys, service_name, 3))
    del doc["signature"]
    with pytest.raises(Unsigned) as info:
        pipeline.accept(json.dumps(doc).encode())
    assert info.value.reason == "unsigned"


def test_accept_refuses_unknown_key(
    pipeline: ConfigPipeline[DemoConfig], keys: Any, service_name: str
) -> None:
    raw = envelope(
        service_name, 3, signing=SigningKey.generate(), data_key=keys.data_key(service_name)
    )
    with pytest.raises(UnknownKey):
        pipeline.accept(raw)


def test_accept_refuses_other_service(
    pipeline: ConfigPipeline[DemoConfig], keys: Any, service_name: str
) -> None:
    with pytest.raises(ServiceMismatch):
        pipeline.accept(_env(keys, service_name + "-other", 3))


def test_accept_refuses_replay_and_flags_duplicate(
    pipeline: ConfigPipeline[DemoConfig], keys: Any, service_name: str
) -> None:
    with pytest.raises(Rollback):
        pipeline.accept(_env(keys, service_name, 3), last=(1, 4))
    with pytest.raises(Duplicate):
        pipeline.accept(_env(keys, service_name, 4), last=(1, 4))
    # A newer epoch wins over a higher version of an older epoch.
    raw = envelope(
        service_name, 1, epoch=2, signing=keys.signing, data_key=keys.data_key(service_name)
    )
    assert pipeline.accept(raw, last=(1, 99)).position == (2, 1)


def test_secret_encrypted_for_another_service_does_not_decrypt(
    pipeline: ConfigPipeline[DemoConfig], keys: Any, service_name: str
) -> None:
    foreign = derive_data_key(keys.master, service_name + "-other")
    raw = envelope(service_name, 3, signing=keys.signing, data_key=foreign, api_key=SECRET)
    with pytest.raises(SecretError):
        pipeline.accept(raw)


def test_signed_but_invalid_config_is_refused_without_echoing_values(
    pipeline: ConfigPipeline[DemoConfig], keys: Any, service_name: str
) -> None:
    values = encrypt_secrets(DemoConfig(), service=service_name, key=keys.data_key(service_name))
    values["beam_size"] = 99
    values["language"] = {"nested": SECRET}
    raw = sign_envelope(service=service_name, version=5, epoch=1, config=values, key=keys.signing)
    with pytest.raises(InvalidConfig) as info:
        pipeline.accept(raw)
    assert "beam_size" in str(info.value)
    assert SECRET not in str(info.value)
    assert "99" not in str(info.value)


def test_changed_fields_lists_dotted_leaf_paths() -> None:
    old = DemoConfig()
    new = DemoConfig(vad={"threshold": 0.1}, api_key=SECRET)
    assert changed_fields(old, new) == frozenset({"vad.threshold", "api_key"})
    assert changed_fields(old, DemoConfig()) == frozenset()


async def test_failing_callback_rolls_back_every_callback(
    pipeline: ConfigPipeline[DemoConfig], keys: Any, service_name: str
) -> None:
    state = ConfigState(pipeline, current=DemoConfig(), source="defaults")
    applied: dict[str, int] = {}
    calls: list[tuple[str, int, bool]] = []

    def first(change: ConfigChange[DemoConfig]) -> None:
        calls.append(("first", change.new.beam_size, change.restore))
        applied["first"] = change.new.beam_size

    async def second(change: ConfigChange[DemoConfig]) -> None:
        calls.append(("second", change.new.beam_size, change.restore))
        applied["second"] = change.new.beam_size
        if change.new.beam_size == 9:
            raise RuntimeError("refuse 9")

    state.on_change(first)
    state.on_change(second)
    decision = await state.offer(_env(keys, service_name, 2, beam_size=9))
    assert decision.status == "failed"
    assert decision.reason == "callback_failed"
    assert state.current.beam_size == 5  # type: ignore[union-attr]
    assert state.position is None
    assert applied == {"first": 5, "second": 5}
    assert calls == [
        ("first", 9, False),
        ("second", 9, False),
        ("second", 5, True),
        ("first", 5, True),
    ]
    assert state.metrics.failed == 1

    ok = await state.offer(_env(keys, service_name, 3, beam_size=4))
    assert ok.status == "applied"
    assert applied == {"first": 4, "second": 4}
    assert state.position == (1, 3)


async def test_unsubscribed_callback_is_not_called(
    pipeline: ConfigPipeline[DemoConfig], keys: Any, service_name: str
) -> None:
    state = ConfigState(pipeline, current=DemoConfig(), source="defaults")
    seen: list[int] = []
    stop = state.on_change(lambda change: seen.append(change.new.beam_size))
    await state.offer(_env(keys, service_name, 2, beam_size=2))
    stop()
    await state.offer(_env(keys, service_name, 3, beam_size=3))
    assert seen == [2]
    assert state.metrics.applied == 2


class Picky(BaseModel):
    name: str = "x"

    @field_validator("name")
    @classmethod
    def _no_boom(cls, value: str) -> str:
        if value == "boom":
            raise TypeError(f"cannot take {value}")  # not turned into a ValidationError
        return value


def test_validator_raising_unexpected_error_is_a_rejection(keys: Any, service_name: str) -> None:
    pipeline = ConfigPipeline(service=service_name, model=Picky, trust=keys.trust)
    raw = sign_envelope(
        service=service_name, version=1, epoch=1, config={"name": "boom"}, key=keys.signing
    )
    with pytest.raises(InvalidConfig) as info:
        pipeline.accept(raw)
    assert "TypeError" in str(info.value)
    assert "boom" not in str(info.value)


def test_deeply_nested_signed_config_is_a_rejection(keys: Any, service_name: str) -> None:
    """The manager never signs it (sign_envelope refuses); a signer that did is refused as
    too_deep before any parsing (docs/protocol.md, "Nesting")."""
    pipeline = ConfigPipeline(service=service_name, model=Picky, trust=keys.trust)
    nested: list[Any] = []
    for _ in range(900):
        nested = [nested]
    config = {"name": "a", "n": nested}
    with pytest.raises(ValueError, match="nested deeper"):
        sign_envelope(service=service_name, version=1, epoch=1, config=config, key=keys.signing)
    doc: dict[str, Any] = {
        "format": 1,
        "service": service_name,
        "version": 1,
        "epoch": 1,
        "issued_at": "2026-11-23T12:00:00.000000Z",
        "key_id": keys.signing.key_id,
        "config": config,
    }
    doc["signature"] = base64.b64encode(keys.signing.sign(canonical_bytes(doc))).decode()
    with pytest.raises(MalformedEnvelope) as info:
        pipeline.accept(json.dumps(doc).encode())
    assert info.value.reason == "too_deep"


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600) | st.from_regex(rb"\{.{0,200}\}", fullmatch=True))
async def test_arbitrary_bytes_never_crash_the_state(data: bytes) -> None:
    signing = SigningKey.generate()
    pipeline = ConfigPipeline(
        service="svc-fuzz", model=DemoConfig, trust=TrustStore([signing.public_key])
    )
    state = ConfigState(pipeline, current=DemoConfig(), source="defaults")
    decision = await state.offer(data)
    assert decision.status == "rejected"
    assert decision.reason
    assert state.current == DemoConfig()
