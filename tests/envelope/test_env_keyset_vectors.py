"""The implementation against every keyset vector (tests/vectors/keysets.json).

Keysets are checked with :func:`verify_keyset` (root public key, keyset in force, clock);
envelopes under a keyset go through the library's real decision path (``ConfigState``),
which holds the keyset's rules: only listed keys, void epochs refused and no longer a
replay floor.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, SecretStr

from config_lib import (
    ConfigPipeline,
    EnvelopeError,
    TrustStore,
    derive_data_key,
    verify_keyset,
)
from config_lib._state import ConfigState

FOLDER = Path(__file__).parents[1] / "vectors"
VECTORS = json.loads((FOLDER / "keysets.json").read_text())
MASTER = bytes.fromhex(
    json.loads((FOLDER / "envelopes.json").read_text())["secrets"]["master_key_hex"]
)
ROOT = TrustStore(
    [Ed25519PublicKey.from_public_bytes(bytes.fromhex(VECTORS["keys"]["root"]["public_hex"]))]
)
NOW = datetime.fromisoformat(VECTORS["now"])


class SttVectorConfig(BaseModel):
    beam_size: int
    language: str
    temperature: float
    api_key: SecretStr | None = None


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_keyset_vector(case: dict[str, Any]) -> None:
    current = verify_keyset(case["current"].encode(), root=ROOT) if case["current"] else None
    raw = case["message"].encode()
    if case["expect"] == "ok":
        keyset = verify_keyset(raw, root=ROOT, current=current, now=NOW)
        assert keyset.key_ids == case["key_ids"]
        assert keyset.void_epochs_from == case["void_epochs_from"]
        return
    with pytest.raises(EnvelopeError) as info:
        verify_keyset(raw, root=ROOT, current=current, now=NOW)
    assert info.value.reason == case["expect"]


@pytest.mark.parametrize(
    "case", VECTORS["envelopes"], ids=[c["name"] for c in VECTORS["envelopes"]]
)
async def test_envelope_under_keyset_vector(case: dict[str, Any]) -> None:
    keyset = verify_keyset(case["keyset"].encode(), root=ROOT, now=NOW)
    service = VECTORS["service"]
    pipeline = ConfigPipeline(
        service=service,
        model=SttVectorConfig,
        trust=keyset.trust,
        data_keys=[derive_data_key(MASTER, service)],
    )
    last = tuple(case["last"]) if case.get("last") else None
    state = ConfigState(pipeline, current=None, source="defaults", position=last)  # type: ignore[arg-type]
    state.void_from = keyset.void_epochs_from
    decision = await state.offer(case["message"].encode())
    if case["expect"] == "ok":
        assert decision.status == "applied", decision.detail
    else:
        assert (decision.status, decision.reason) == ("rejected", case["expect"])
