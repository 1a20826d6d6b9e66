"""The implementation against every shipped test vector (tests/vectors/envelopes.json)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from config_lib import (
    EnvelopeError,
    Limits,
    TrustStore,
    decrypt_secrets,
    derive_data_key,
    verify_envelope,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "envelopes.json").read_text())
TRUSTED = Ed25519PublicKey.from_public_bytes(
    bytes.fromhex(VECTORS["keys"]["trusted"]["public_hex"])
)


def test_key_ids_are_derived_as_documented() -> None:
    for key in VECTORS["keys"].values():
        digest = hashlib.sha256(bytes.fromhex(key["public_hex"])).hexdigest()
        assert key["key_id"] == digest[:16]


def test_data_key_derivation_and_secret_vector() -> None:
    sec = VECTORS["secrets"]
    key = derive_data_key(bytes.fromhex(sec["master_key_hex"]), VECTORS["service"])
    assert key.key.hex() == sec["stt_data_key_hex"]
    assert key.key_id == sec["stt_data_key_id"]
    values = {sec["path"].lstrip("/"): sec["object"]}
    assert decrypt_secrets(values, service="stt", keys=[key]) == {"api_key": sec["plaintext"]}


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_vector(case: dict[str, Any]) -> None:
    last = tuple(case["last"]) if case.get("last") else None
    limits = Limits(max_bytes=case.get("max_bytes", Limits().max_bytes))
    raw = case["message"].encode()
    trust = TrustStore([TRUSTED])
    if case["expect"] == "ok":
        env = verify_envelope(
            raw, trust=trust, service=VECTORS["service"], last=last, limits=limits
        )  # type: ignore[arg-type]
        assert env.config == json.loads(raw)["config"]
        assert env.retired is json.loads(raw).get("retired", False)
        return
    with pytest.raises(EnvelopeError) as info:
        verify_envelope(raw, trust=trust, service=VECTORS["service"], last=last, limits=limits)  # type: ignore[arg-type]
    assert info.value.reason == case["expect"]
