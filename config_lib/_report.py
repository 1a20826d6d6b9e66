"""Applied reports: what one instance has in force, published retained on its applied topic.

A report is a small JSON object, for example::

    {"instance": "host1-stt", "service": "stt", "status": "applied", "version": 7,
     "epoch": 1795000000, "source": "broker", "reason": null,
     "attempted_version": 7, "attempted_epoch": 1795000000,
     "time": "2026-11-23T13:00:00.000000Z"}

``status`` is ``applied``, ``rejected``, ``failed``, ``offline`` or ``retired`` (a signed
tombstone said the service is retired; the last config stays in force); ``version``/``epoch``
are those in force (null when running on env/defaults); ``reason`` is a short code (the
exception's ``reason``, ``callback_failed``...) and ``detail`` one human sentence; neither
ever carries a config value. An ``applied`` report with reason ``lkg_not_saved`` means
the config is in force but its LKG file could not be written (disk full, read-only).
A callback that fails on purpose raises an exception with a ``reason`` attribute: its code
and message are reported (the operator needs them, e.g. "model folder /x does not
exist"); any other exception is reported by type only, since its message could quote
anything.
``attempted_*`` name the envelope that was decided on, when it was verified.
``freshness`` is ``waiting``, ``stale`` or ``fresh`` (see docs/protocol.md, freshness).

Signed (docs/protocol.md, "Report signature"): each instance holds its own Ed25519 key
(:func:`load_or_create_report_key`, beside its LKG file, mode 0600) and adds three
members to every report it publishes: ``public_key`` (standard base64 of the 32 raw
bytes), ``key_id`` (as for every key: 16 hex digits of its SHA-256) and ``signature``
(standard base64 of the Ed25519 signature over the RFC 8785 form of every other member),
so the payload stays one readable line in ``mosquitto_sub``. :func:`verify_report` is the
pure check the manager runs; pinning the key per instance is the manager's part.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._change import ConfigSource
from ._encoding import decode_base64
from ._envelope import Limits, canonical_bytes, parse_document, parse_time
from ._exceptions import ConfigLibError, EnvelopeTooLarge, KeyFileError, ReportError
from ._keys import SigningKey, load_or_create_signing_key

__all__ = [
    "REPORT_MAX_BYTES",
    "AppliedReport",
    "ReportStatus",
    "VerifiedReport",
    "load_or_create_report_key",
    "sign_report",
    "verify_report",
]

REPORT_MAX_BYTES: Final = 16 * 1024
# Added to a report by its signer; everything else in the object is covered by the signature.
_SIGNATURE_MEMBERS: Final = ("public_key", "key_id", "signature")
_REQUIRED_STRINGS: Final = ("instance", "service", "status", "time", "public_key", "key_id")
logger = logging.getLogger("config_lib.report")

ReportStatus = Literal["applied", "rejected", "failed", "offline", "retired"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class AppliedReport:
    instance: str
    service: str
    status: ReportStatus
    version: int | None
    epoch: int | None
    source: ConfigSource
    reason: str | None = None
    detail: str | None = None
    attempted_version: int | None = None
    attempted_epoch: int | None = None
    freshness: str | None = None
    time: str = ""

    @classmethod
    def now(cls, **members: Any) -> AppliedReport:
        """A report with ``members`` and the current time (one construction)."""
        return cls(**members, time=_now())

    def stamped(self, **changes: Any) -> AppliedReport:
        """A copy with ``changes`` and the current time."""
        return replace(self, **changes, time=_now())

    def to_bytes(self, key: SigningKey | None = None) -> bytes:
        """The report as published: one JSON line, signed with ``key`` when given."""
        # Every member is a str, int or None: a shallow dict is asdict() without its
        # recursive deep copy (a report is built per library and update).
        doc: dict[str, Any] = {name: getattr(self, name) for name in _MEMBERS}
        if not doc["time"]:
            doc["time"] = _now()
        if key is not None:
            return sign_report(doc, key)
        return json.dumps(doc, ensure_ascii=False, separators=(", ", ": ")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> AppliedReport:
        """Parse a report (for tests and tools; no verification, see :func:`verify_report`);
        raises ValueError if it is not one."""
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("an applied report is a JSON object")
        for name in _SIGNATURE_MEMBERS:
            doc.pop(name, None)
        try:
            return cls(**doc)
        except TypeError as exc:
            raise ValueError(f"not an applied report: {exc}") from None


_MEMBERS: Final = tuple(f.name for f in fields(AppliedReport))


@dataclass(frozen=True, slots=True)
class VerifiedReport:
    """A report whose signature verified with the key it names (not yet pinned: the
    manager compares ``public_key`` with the key it pinned for the instance)."""

    service: str
    instance: str
    public_key: str  # standard base64 of the 32 raw bytes
    key_id: str
    time: datetime
    document: dict[str, Any] = field(repr=False)  # every member but ``signature``


def sign_report(doc: Mapping[str, Any], key: SigningKey) -> bytes:
    """Sign a report object: adds ``public_key``, ``key_id`` and ``signature`` (over the
    RFC 8785 form of every other member) and returns the one-line JSON to publish."""
    signed = {k: v for k, v in doc.items() if k not in _SIGNATURE_MEMBERS}
    signed["public_key"] = key.public_b64
    signed["key_id"] = key.key_id
    signed["signature"] = base64.b64encode(key.sign(canonical_bytes(signed))).decode()
    return json.dumps(signed, ensure_ascii=False, separators=(", ", ": ")).encode()


def _strict_b64(text: str, size: int, what: str) -> bytes:
    """Canonical standard base64 (padded, no whitespace) of exactly ``size`` bytes."""
    data = decode_base64(text)
    if data is None or len(data) != size:
        raise ReportError(f"{what} is not the canonical base64 of {size} bytes", "bad_signature")
    return data


def verify_report(
    raw: bytes, *, service: str, instance: str, max_bytes: int = REPORT_MAX_BYTES
) -> VerifiedReport:
    """Verify an applied report received on ``config/applied/<service>/<instance>``.

    Pure: bytes in, a :class:`VerifiedReport` out, or :class:`ReportError` whose
    ``reason`` is ``too_large``, ``malformed``, ``unsigned``, ``bad_signature`` or
    ``identity_mismatch`` (checked in that order; see docs/protocol.md).
    """
    try:
        # Parsing as for every signed message (docs/protocol.md, "Parsing"): any failure,
        # numbers outside I-JSON and nesting included, is "malformed" for a report.
        doc, signed = parse_document(raw, Limits(max_bytes=max_bytes))
    except EnvelopeTooLarge as exc:
        raise ReportError(str(exc), "too_large") from None
    except ConfigLibError as exc:
        raise ReportError(str(exc).replace("envelope", "report"), "malformed") from None
    signature = doc.get("signature")
    if signature is None or signature == "":
        raise ReportError("the report carries no signature", "unsigned")
    if not isinstance(signature, str):
        raise ReportError("'signature' must be a string", "malformed")
    for name in _REQUIRED_STRINGS:
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise ReportError(f"{name!r} must be a non-empty string", "malformed")
    try:
        when = parse_time(doc, "time")
    except ConfigLibError as exc:
        raise ReportError(str(exc), "malformed") from None
    body = {k: v for k, v in doc.items() if k != "signature"}
    public = _strict_b64(doc["public_key"], 32, "public_key")
    if doc["key_id"] != hashlib.sha256(public).hexdigest()[:16]:
        raise ReportError("'key_id' is not the id of 'public_key'", "bad_signature")
    sig = _strict_b64(signature, 64, "signature")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, signed)
    except (InvalidSignature, ValueError):
        raise ReportError("the signature does not verify", "bad_signature") from None
    if (doc["service"], doc["instance"]) != (service, instance):
        raise ReportError(
            f"signed for {doc['service']}/{doc['instance']}, received on {service}/{instance}",
            "identity_mismatch",
        )
    return VerifiedReport(
        service=service,
        instance=instance,
        public_key=doc["public_key"],
        key_id=doc["key_id"],
        time=when,
        document=body,
    )


def load_or_create_report_key(path: Path | None) -> SigningKey:
    """The instance's report key at ``path``, created (mode 0600, atomically) on first use.

    ``path`` None (no LKG folder) or an unusable file gives a key held in memory only,
    with one error log: the manager then sees a new key at every start (shown as forged,
    ``key_mismatch``, until an admin approves it), never a silent fallback.
    """
    if path is None:
        return SigningKey.generate()
    try:
        key, created = load_or_create_signing_key(path)
    except (KeyFileError, OSError) as exc:
        logger.error(
            "report key unusable, signing reports with a key held in memory (the manager "
            "will show them as forged until an admin approves it): path=%s error=%s",
            path,
            exc,
            extra={"report_key_path": str(path)},
        )
        return SigningKey.generate()
    if created:
        logger.info("report key created: path=%s key_id=%s", path, key.key_id)
    return key
