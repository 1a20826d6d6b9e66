"""The implementation against every keyset vector (tests/vectors/keysets.json).

Keysets are checked with :func:`verify_keyset` (root public key, keyset in force, clock);
envelopes under a keyset go through the library's real decision path (``ConfigState``),
which holds the keyset's rules: only listed keys, void epochs refused and no longer a
replay floor.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
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


def _python_keyset(case: dict[str, Any]) -> tuple[str, str | None]:
    current = verify_keyset(case["current"].encode(), root=ROOT) if case["current"] else None
    try:
        verify_keyset(case["message"].encode(), root=ROOT, current=current, now=NOW)
    except EnvelopeError as exc:
        return "refuse", exc.reason
    return "accept", None


def _python_envelope(case: dict[str, Any]) -> tuple[str, str | None]:
    keyset = verify_keyset(case["keyset"].encode(), root=ROOT, now=NOW)
    service = VECTORS["service"]
    pipeline = ConfigPipeline(service=service, model=SttVectorConfig, trust=keyset.trust)
    last = tuple(case["last"]) if case.get("last") else None
    state = ConfigState(pipeline, current=None, source="defaults", position=last)  # type: ignore[arg-type]
    state.void_from = keyset.void_epochs_from
    decision = asyncio.run(state.offer(case["message"].encode()))
    return ("accept", None) if decision.status == "applied" else ("refuse", decision.reason)


def test_node_verifier_agrees_on_every_keyset_vector() -> None:
    """The independent Node verifier (tests/verifier-node, written from docs/protocol.md)
    reaches the same verdict and reason as config_lib and the vector on every case."""
    node = shutil.which("node")
    assert node, "Node 20 is required (tests/verifier-node): install it, then `make test`"
    script = Path(__file__).parents[1] / "verifier-node" / "verify.js"
    assert (script.parent / "node_modules" / "canonicalize").is_dir(), "run `make test` first"
    done = subprocess.run(
        [node, str(script), str(FOLDER / "keysets.json")],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = {
        r["name"]: (r["verdict"], r["reason"])
        for r in map(json.loads, done.stdout.split("\n")[:-1])
    }
    expected: dict[str, tuple[str, str | None]] = {}
    python: dict[str, tuple[str, str | None]] = {}
    for case in VECTORS["cases"]:
        expected[case["name"]] = _verdict(case["expect"])
        python[case["name"]] = _python_keyset(case)
    for case in VECTORS["envelopes"]:
        expected[f"envelope:{case['name']}"] = _verdict(case["expect"])
        python[f"envelope:{case['name']}"] = _python_envelope(case)
    assert len(found) == len(expected) == 29
    differ = [n for n in expected if not found[n] == python[n] == expected[n]]
    assert not differ, {n: (expected[n], python[n], found[n]) for n in differ}


def _verdict(expect: str) -> tuple[str, str | None]:
    return ("accept", None) if expect == "ok" else ("refuse", expect)
