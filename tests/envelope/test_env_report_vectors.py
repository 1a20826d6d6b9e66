"""The report verifier and the manager's pin and replay rules against every report vector
(tests/vectors/reports.json; docs/protocol.md, "Report signature")."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from config_lib import ReportError, verify_report
from config_manager.instances import InstanceReport, InstanceTracker, PinnedKey

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "reports.json").read_text())
SERVICE, INSTANCE = VECTORS["service"], VECTORS["instance"]


def test_report_key_ids_are_derived_as_documented() -> None:
    for key in VECTORS["keys"].values():
        raw = bytes.fromhex(key["public_hex"])
        assert key["key_id"] == hashlib.sha256(raw).hexdigest()[:16]
        assert base64.b64decode(key["public_b64"]) == raw


def _verdict(case: dict[str, Any]) -> str:
    """What the manager shows for this case: "ok" or the forged reason."""
    tracker = InstanceTracker()
    if case["pinned"] is not None:
        public = case["pinned"]
        key_id = hashlib.sha256(base64.b64decode(public)).hexdigest()[:16]
        tracker.load_pins([PinnedKey(SERVICE, INSTANCE, public, key_id, "2026-11-23")])
    if case["high"] is not None:
        tracker.load(
            [
                InstanceReport(
                    service=SERVICE,
                    instance=INSTANCE,
                    status="applied",
                    version=7,
                    epoch=1,
                    reason=None,
                    detail=None,
                    time=case["high"],
                    received_at=0.0,
                    signed_high=case["high"],
                )
            ]
        )
    shown = tracker.handle(f"config/applied/{SERVICE}/{INSTANCE}", case["message"].encode(), 1.0)
    assert shown is not None
    return shown.forged_reason if shown.forged else "ok"


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_report_vector(case: dict[str, Any]) -> None:
    raw = case["message"].encode()
    max_bytes = case.get("max_bytes", VECTORS["max_bytes"])
    signature_reasons = ("too_large", "malformed", "unsigned", "bad_signature")
    if case["expect"] in (*signature_reasons, "identity_mismatch"):
        with pytest.raises(ReportError) as info:
            verify_report(raw, service=SERVICE, instance=INSTANCE, max_bytes=max_bytes)
        assert info.value.reason == case["expect"]
    else:
        verified = verify_report(raw, service=SERVICE, instance=INSTANCE, max_bytes=max_bytes)
        assert verified.document == {k: v for k, v in json.loads(raw).items() if k != "signature"}
    if "max_bytes" not in case:  # the manager uses the default limit
        assert _verdict(case) == case["expect"]
