"""Property-based tests of the envelope: what is signed is exactly what verifies."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config_lib import (
    EnvelopeError,
    Rollback,
    ServiceMismatch,
    SigningKey,
    TrustStore,
    sign_envelope,
    verify_envelope,
)

KEY = SigningKey.generate()
TRUST = TrustStore([KEY.public_key])
SAFE_INT = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)
JSON_LEAF = (
    st.none()
    | st.booleans()
    | SAFE_INT
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
# "encrypted" is reserved: an object with that member is a secret's ciphertext object
# (docs/protocol.md, "Secret fields"), which sign_envelope refuses to fake.
MEMBER = st.text(max_size=10).filter(lambda name: name != "encrypted")
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(MEMBER, inner, max_size=4)
    ),
    max_leaves=15,
)
CONFIGS = st.dictionaries(MEMBER, JSON_VALUE, max_size=6)
POSITIVE = st.integers(min_value=0, max_value=2**48 - 1)  # MAX_POSITION
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sign(service: str, version: int, epoch: int, config: dict[str, Any]) -> bytes:
    return sign_envelope(service=service, version=version, epoch=epoch, config=config, key=KEY)


@PROPS
@given(service=NAMES, version=POSITIVE, epoch=POSITIVE, config=CONFIGS)
def test_sign_then_verify_round_trips(
    service: str, version: int, epoch: int, config: dict[str, Any]
) -> None:
    env = verify_envelope(_sign(service, version, epoch, config), trust=TRUST, service=service)
    assert (env.service, env.version, env.epoch) == (service, version, epoch)
    assert env.config == config


def _mutations(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """Every (path, kind) where a key or a value can be changed."""
    found: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            found.append(((*path, k), "key"))
            found.append(((*path, k), "value"))
            found.extend(_mutations(v, (*path, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found.append(((*path, i), "value"))
            found.extend(_mutations(v, (*path, i)))
    return found


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 if value < 2**53 - 1 else value - 1
    if isinstance(value, float):
        return value + 1.0 if abs(value) < 1e15 else value / 2
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 0
    if isinstance(value, list):
        return [*value, 0]
    return {**value, "extra!": 1}


@PROPS
@given(config=CONFIGS, data=st.data())
def test_changing_any_key_or_value_breaks_verification(
    config: dict[str, Any], data: st.DataObject
) -> None:
    doc = json.loads(_sign("stt", 5, 7, config))
    target, kind = data.draw(st.sampled_from(_mutations(doc)))
    parent = doc
    for part in target[:-1]:
        parent = parent[part]
    last = target[-1]
    if kind == "key":
        parent[str(last) + "~"] = parent.pop(last)
    else:
        parent[last] = _changed(parent[last])
    try:
        env = verify_envelope(json.dumps(doc).encode(), trust=TRUST, service="stt")
    except EnvelopeError:
        return
    raise AssertionError(f"mutation at {target} ({kind}) verified: {env}")


@PROPS
@given(
    config=CONFIGS, position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255)
)
def test_byte_mutation_fails_or_keeps_signed_content(
    config: dict[str, Any], position: int, byte: int
) -> None:
    pristine = _sign("stt", 5, 7, config)
    original = verify_envelope(pristine, trust=TRUST, service="stt")
    raw = bytearray(pristine)
    raw[position % len(raw)] = byte
    try:
        env = verify_envelope(bytes(raw), trust=TRUST, service="stt")
    except EnvelopeError:
        return
    # Whatever verified must carry exactly the signed content (e.g. a whitespace change).
    assert (env.service, env.version, env.epoch, env.key_id) == (
        original.service,
        original.version,
        original.epoch,
        original.key_id,
    )
    assert env.config == original.config
    assert env.issued_at == original.issued_at


@PROPS
@given(signed_for=NAMES, received_as=NAMES, config=CONFIGS)
def test_message_for_one_service_is_refused_by_another(
    signed_for: str, received_as: str, config: dict[str, Any]
) -> None:
    raw = _sign(signed_for, 1, 1, config)
    if signed_for == received_as:
        assert verify_envelope(raw, trust=TRUST, service=received_as).service == signed_for
        return
    try:
        verify_envelope(raw, trust=TRUST, service=received_as)
    except ServiceMismatch:
        return
    raise AssertionError("a message signed for another service was accepted")


@PROPS
@given(
    accepted=st.tuples(POSITIVE, POSITIVE),
    offered=st.tuples(POSITIVE, POSITIVE),
)
def test_older_positions_are_refused(accepted: tuple[int, int], offered: tuple[int, int]) -> None:
    raw = _sign("stt", offered[1], offered[0], {})
    if offered < accepted:
        try:
            verify_envelope(raw, trust=TRUST, service="stt", last=accepted)
        except Rollback:
            return
        raise AssertionError("an older version was accepted")
    if offered > accepted:
        assert verify_envelope(raw, trust=TRUST, service="stt", last=accepted).position == offered
