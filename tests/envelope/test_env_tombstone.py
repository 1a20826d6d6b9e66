"""Tombstones (docs/protocol.md, "Tombstone"): a signed envelope with "retired": true and an
empty config. Pure: bytes in, verdict out."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import BaseModel

from config_lib import (
    BadSignature,
    ConfigPipeline,
    MalformedEnvelope,
    ServiceRetired,
    SigningKey,
    TrustStore,
    canonical_bytes,
    sign_envelope,
    verify_envelope,
)
from config_lib._state import ConfigState

KEY = SigningKey.generate()
TRUST = TrustStore([KEY.public_key])


class Model(BaseModel):
    n: int = 1


def _resign(doc: dict[str, object]) -> bytes:
    doc = {k: v for k, v in doc.items() if k != "signature"}
    doc["signature"] = base64.b64encode(KEY.sign(canonical_bytes(doc))).decode()
    return json.dumps(doc).encode()


def test_a_tombstone_verifies_and_says_retired() -> None:
    raw = sign_envelope(service="stt", version=8, epoch=5, config={}, key=KEY, retired=True)
    envelope = verify_envelope(raw, trust=TRUST, service="stt")
    assert envelope.retired is True
    assert envelope.position == (5, 8)
    ordinary = sign_envelope(service="stt", version=8, epoch=5, config={"n": 2}, key=KEY)
    assert verify_envelope(ordinary, trust=TRUST, service="stt").retired is False


def test_retired_is_covered_by_the_signature() -> None:
    raw = sign_envelope(service="stt", version=8, epoch=5, config={}, key=KEY)
    doc = json.loads(raw)
    doc["retired"] = True  # added after signing
    with pytest.raises(BadSignature):
        verify_envelope(json.dumps(doc).encode(), trust=TRUST, service="stt")


@pytest.mark.parametrize(
    ("retired", "config"), [(False, {}), ("yes", {}), (1, {}), (True, {"n": 2})]
)
def test_a_malformed_tombstone_is_refused(retired: object, config: dict[str, object]) -> None:
    raw = sign_envelope(service="stt", version=8, epoch=5, config=config, key=KEY)
    doc = json.loads(raw)
    doc["retired"] = retired
    with pytest.raises(MalformedEnvelope):
        verify_envelope(_resign(doc), trust=TRUST, service="stt")
    with pytest.raises(ValueError, match="empty config"):
        sign_envelope(service="stt", version=8, epoch=5, config={"n": 2}, key=KEY, retired=True)


async def test_the_state_keeps_its_config_and_refuses_older_envelopes_after_a_tombstone() -> None:
    pipeline = ConfigPipeline(service="stt", model=Model, trust=TRUST)
    state = ConfigState(pipeline, current=None, source="defaults")
    first = sign_envelope(service="stt", version=3, epoch=5, config={"n": 3}, key=KEY)
    assert (await state.offer(first)).status == "applied"
    with pytest.raises(ServiceRetired):
        pipeline.accept(
            sign_envelope(service="stt", version=4, epoch=5, config={}, key=KEY, retired=True)
        )
    tomb = sign_envelope(service="stt", version=4, epoch=5, config={}, key=KEY, retired=True)
    decision = await state.offer(tomb)
    assert decision.status == "retired"
    assert state.current == Model(n=3)
    assert state.position == (5, 3)
    assert (await state.offer(tomb)).status == "duplicate"  # republished tombstone: quiet
    older = sign_envelope(service="stt", version=4, epoch=4, config={"n": 9}, key=KEY)
    assert (await state.offer(older)).status == "rejected"
    newer = sign_envelope(service="stt", version=5, epoch=5, config={"n": 5}, key=KEY)
    assert (await state.offer(newer)).status == "applied"
