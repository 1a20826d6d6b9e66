"""config_lib against every shipped test vector (tests/vectors/envelopes.json).

Each case names its kind, its verdict and its reason code; ``VERIFIERS`` runs one kind.
The same file is checked by the Node verifier (tests/envelope/test_env_node_verifier.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from config_lib import (
    REPORT_MAX_BYTES,
    ConfigLibError,
    DataKey,
    FreshnessGate,
    Limits,
    ReportError,
    TrustStore,
    decrypt_secrets,
    derive_data_key,
    validate_name,
    verify_envelope,
    verify_freshness,
    verify_report,
)
from config_manager.instances import InstanceReport, InstanceTracker, PinnedKey

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "envelopes.json").read_text()
)
SERVICE: str = VECTORS["service"]
TRUSTED = Ed25519PublicKey.from_public_bytes(
    bytes.fromhex(VECTORS["keys"]["trusted"]["public_hex"])
)


def _raw(case: dict[str, Any]) -> bytes:
    if "message_b64" in case:
        return base64.b64decode(case["message_b64"])
    return str(case["message"]).encode()


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _gate(case: dict[str, Any], key: str) -> FreshnessGate:
    """A gate that has accepted the case's earlier records (each must be accepted)."""
    gate = FreshnessGate(skew=timedelta(seconds=case.get("skew_s", 30)))
    for prior in case.get(key, []):
        record = verify_freshness(prior["message"].encode(), trust=_trust(), service=SERVICE)
        gate.offer(record, _time(prior["at"]))
    return gate


def _trust() -> TrustStore:
    return TrustStore([TRUSTED])


def verify_envelope_case(case: dict[str, Any]) -> None:
    last = tuple(case["last"]) if case.get("last") else None
    limits = Limits(max_bytes=case.get("max_bytes", VECTORS["max_bytes"]))
    raw = _raw(case)
    envelope = verify_envelope(raw, trust=_trust(), service=SERVICE, last=last, limits=limits)  # type: ignore[arg-type]
    doc = json.loads(raw)
    assert envelope.config == doc["config"]
    assert envelope.retired is doc.get("retired", False)
    assert envelope.position == (doc["epoch"], doc["version"])
    if "now" in case:
        _gate(case, "records").check(envelope, _time(case["now"]))


def verify_freshness_case(case: dict[str, Any]) -> None:
    gate = _gate(case, "prior")
    record = verify_freshness(_raw(case), trust=_trust(), service=SERVICE)
    gate.offer(record, _time(case["now"]))


def verify_report_request_case(case: dict[str, Any]) -> None:
    """Unsigned and reserved: the payload is never read, so every one is acted on."""


def verify_name_case(case: dict[str, Any]) -> None:
    assert validate_name(case["message"]) == case["message"]


def verify_trust_store_case(case: dict[str, Any]) -> None:
    store = TrustStore.from_pem(_raw(case))
    assert list(store) == case["key_ids"]


def verify_secret_case(case: dict[str, Any]) -> None:
    key = DataKey.from_bytes(SERVICE, bytes.fromhex(VECTORS["secrets"]["stt_data_key_hex"]))
    path = case["path"]
    assert path.count("/") == 1
    values = {path[1:]: json.loads(case["message"])}
    plain = decrypt_secrets(values, service=case["service"], keys=[key])
    assert plain == {path[1:]: case["plaintext"]}


def verify_report_case(case: dict[str, Any]) -> None:
    """The signature's checks (config_lib), then the manager's pin and replay floor: what
    its instance tracker shows for the report, given the case's pinned key and floor."""
    raw, instance = _raw(case), case["instance"]
    verify_report(
        raw, service=SERVICE, instance=instance, max_bytes=case.get("max_bytes", REPORT_MAX_BYTES)
    )
    tracker = InstanceTracker()
    if case["pinned"] is not None:
        key_id = hashlib.sha256(base64.b64decode(case["pinned"])).hexdigest()[:16]
        tracker.load_pins([PinnedKey(SERVICE, instance, case["pinned"], key_id, "-")])
    if case["high"] is not None:
        genuine = InstanceReport(
            service=SERVICE, instance=instance, status="applied", version=7, epoch=1,
            reason=None, detail=None, time=case["high"], received_at=0.0,
            signed_high=case["high"],
        )  # fmt: skip
        tracker.load([genuine])
    shown = tracker.handle(f"config/applied/{SERVICE}/{instance}", raw, 1.0)
    assert shown is not None
    if shown.forged:
        raise ReportError("forged", shown.forged_reason)
    assert shown.version == json.loads(raw).get("version")


VERIFIERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "envelope": verify_envelope_case,
    "freshness": verify_freshness_case,
    "report_request": verify_report_request_case,
    "name": verify_name_case,
    "trust_store": verify_trust_store_case,
    "secret": verify_secret_case,
    "report": verify_report_case,
}


def run_case(case: dict[str, Any]) -> tuple[str, str | None]:
    """(verdict, reason) of config_lib for ``case``: what the vector must name."""
    try:
        VERIFIERS[case["kind"]](case)
    except ConfigLibError as exc:
        return "refuse", exc.reason
    return "accept", None


def test_key_ids_are_derived_as_documented() -> None:
    for key in VECTORS["keys"].values():
        digest = hashlib.sha256(bytes.fromhex(key["public_hex"])).hexdigest()
        assert key["key_id"] == digest[:16]


def test_data_key_derivation_and_secret_vector() -> None:
    sec = VECTORS["secrets"]
    key = derive_data_key(bytes.fromhex(sec["master_key_hex"]), SERVICE)
    assert key.key.hex() == sec["stt_data_key_hex"]
    assert key.key_id == sec["stt_data_key_id"]
    values = {sec["path"].lstrip("/"): sec["object"]}
    assert decrypt_secrets(values, service="stt", keys=[key]) == {"api_key": sec["plaintext"]}


def test_vector_set_is_large_mostly_negative_and_names_every_reason() -> None:
    cases = VECTORS["cases"]
    refused = [c for c in cases if c["verdict"] == "refuse"]
    assert len(cases) >= 150
    assert len(refused) > len(cases) / 2
    assert all(c["reason"] for c in refused)
    assert all(c["reason"] is None for c in cases if c["verdict"] == "accept")
    assert {c["kind"] for c in cases} == set(VERIFIERS)
    assert VECTORS["reasons"] == sorted({c["reason"] for c in refused})


def test_vectors_are_what_the_generator_writes() -> None:
    """envelopes.json is generated, never edited by hand (deterministic generator)."""
    from tests.vectors import generate

    assert generate.build() == VECTORS


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_vector(case: dict[str, Any]) -> None:
    assert run_case(case) == (case["verdict"], case["reason"])
