"""Signed freshness: the manager's statement of what is current, with an expiry.

python-tuf's timestamp role is the model. Every ``interval`` the manager signs, per
service, a small record naming the current ``(epoch, version)`` and the SHA-256 of the
exact envelope bytes it publishes, with ``issued_at`` and ``expires_at``, and publishes it
retained on ``config/freshness/<service>``::

    {"format": 1, "type": "freshness", "service": "stt", "epoch": 1795000000,
     "version": 7, "envelope_sha256": "<64 hex>", "issued_at": "2026-11-23T12:00:00.000000Z",
     "expires_at": "2026-11-23T12:02:00.000000Z", "key_id": "...", "signature": "..."}

``version`` 0 (with ``envelope_sha256`` null) says the manager holds no config for the
service yet. Signed like an envelope: Ed25519 over the RFC 8785 form of every member but
``signature``; ``type`` keeps a record's signature from ever passing as an envelope's.

This module is pure: :func:`verify_freshness` checks bytes (no clock);
:class:`FreshnessGate` applies the time rules with the clock passed in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from ._envelope import (
    FORMAT_VERSION,
    Envelope,
    Limits,
    Position,
    canonical_bytes,
    check_header,
    check_signature,
    format_time,
    int_field,
    parse_shared,
    parse_time,
)
from ._exceptions import (
    BadIssuedAt,
    DigestMismatch,
    FreshnessError,
    MalformedEnvelope,
    Outdated,
    ServiceMismatch,
)
from ._keys import SigningKey, TrustStore
from ._topics import validate_name
from ._verdicts import PARSED

__all__ = [
    "FRESHNESS_MAX_BYTES",
    "FreshnessGate",
    "FreshnessRecord",
    "FreshnessState",
    "envelope_digest",
    "sign_freshness",
    "verify_freshness",
]

FRESHNESS_MAX_BYTES: Final = 4096
RECORD_TYPE: Final = "freshness"
_FIELDS: Final = (
    "format",
    "type",
    "service",
    "epoch",
    "version",
    "envelope_sha256",
    "issued_at",
    "expires_at",
    "key_id",
    "signature",
)
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
FreshnessState = Literal["waiting", "stale", "fresh"]
_RECORD_LIMITS: Final = Limits(max_bytes=FRESHNESS_MAX_BYTES)


def envelope_digest(raw: bytes) -> str:
    """Lowercase hex SHA-256 of the exact envelope bytes as published."""
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class FreshnessRecord:
    """A verified freshness record. ``position`` is None when the manager has no config."""

    service: str
    epoch: int
    version: int
    envelope_sha256: str | None
    issued_at: datetime
    expires_at: datetime
    key_id: str
    raw: bytes = field(repr=False)

    @property
    def position(self) -> Position | None:
        return None if self.version == 0 else (self.epoch, self.version)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def sign_freshness(
    *,
    service: str,
    epoch: int,
    version: int,
    envelope_sha256: str | None,
    key: SigningKey,
    expires_in: timedelta,
    issued_at: datetime | None = None,
) -> bytes:
    """Build and sign a freshness record; returns the bytes to publish."""
    validate_name(service)
    issued = issued_at or datetime.now(UTC)
    doc: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "type": RECORD_TYPE,
        "service": service,
        "epoch": epoch,
        "version": version,
        "envelope_sha256": envelope_sha256,
        "issued_at": format_time(issued),
        "expires_at": format_time(issued + expires_in),
        "key_id": key.key_id,
    }
    _check_shape(doc)
    doc["signature"] = base64.b64encode(key.sign(canonical_bytes(doc))).decode()
    return json.dumps(doc, separators=(", ", ": ")).encode()


def _check_shape(doc: dict[str, Any]) -> tuple[int, int, str | None, datetime, datetime]:
    """Types of every member but the signature; raises MalformedEnvelope."""
    if doc.get("type") != RECORD_TYPE:
        raise MalformedEnvelope("'type' must be \"freshness\"")
    epoch = int_field(doc, "epoch")
    version = int_field(doc, "version")
    digest = doc["envelope_sha256"]
    if version == 0:
        if digest is not None:
            raise MalformedEnvelope("'envelope_sha256' must be null when 'version' is 0")
    elif not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise MalformedEnvelope("'envelope_sha256' must be 64 lowercase hex digits")
    issued = parse_time(doc, "issued_at")
    expires = parse_time(doc, "expires_at")
    if expires <= issued:
        raise MalformedEnvelope("'expires_at' must be later than 'issued_at'")
    return epoch, version, digest, issued, expires


def verify_freshness(
    raw: bytes,
    *,
    trust: TrustStore,
    service: str,
    limits: Limits = _RECORD_LIMITS,
) -> FreshnessRecord:
    """Verify a freshness record's bytes for ``service`` (shape, key, signature, service).

    Raises the same :class:`~config_lib.EnvelopeError` subclasses as an envelope
    (``too_large``, ``malformed``, ``unsupported_format``, ``unsigned``, ``unknown_key``,
    ``bad_signature``, ``service_mismatch``). Time rules are :class:`FreshnessGate`'s.
    """
    raw = bytes(raw)
    doc, content = parse_shared(raw, limits)
    # The shape checks depend on the bytes alone: once per exact bytes in this process.
    shape = PARSED.get("freshness-shape", raw)
    if not isinstance(shape, tuple):
        shape = (check_header(doc, what="freshness record", fields=_FIELDS), *_check_shape(doc))
        PARSED.put("freshness-shape", raw, shape)
    signed_service, epoch, version, digest, issued, expires = shape
    key_id = check_signature(doc, content, trust=trust, what="freshness record")
    if signed_service != service:
        raise ServiceMismatch(f"record is signed for {signed_service!r}, expected {service!r}")
    return FreshnessRecord(
        service=signed_service,
        epoch=epoch,
        version=version,
        envelope_sha256=digest,
        issued_at=issued,
        expires_at=expires,
        key_id=key_id,
        raw=bytes(raw),
    )


class FreshnessGate:
    """The newest valid record seen, and the time rules. Pure: ``now`` is passed in.

    * :meth:`offer` keeps a record if it is unexpired, not from the future (beyond
      ``skew``) and not older than the one kept (``issued_at``); else raises
      :class:`FreshnessError` with reason ``expired``, ``not_yet_valid`` or
      ``record_rollback`` (an equal ``issued_at`` is ``record_duplicate``).
    * :meth:`check` refuses an envelope older than the kept record's position
      (:class:`Outdated`, ``stale``), one at that position with other bytes
      (:class:`DigestMismatch`) and one whose ``issued_at`` is later than ``now + skew``
      or, at the record's position, later than the record's ``issued_at + skew``
      (:class:`BadIssuedAt`). An expired record no longer refuses anything older, but
      nothing is ever accepted below a position already in force (that is the verifier's
      rollback rule).
    """

    def __init__(self, *, skew: timedelta = timedelta(seconds=30)) -> None:
        self.skew = skew
        self.record: FreshnessRecord | None = None
        # The highest position a record ever named: never go below it, even after expiry.
        self.floor: Position | None = None

    def offer(self, record: FreshnessRecord, now: datetime) -> FreshnessRecord:
        if record.expired(now):
            raise FreshnessError(
                f"freshness record expired at {format_time(record.expires_at)}", "expired"
            )
        if record.issued_at > now + self.skew:
            raise FreshnessError(
                f"freshness record issued at {format_time(record.issued_at)}, later than "
                f"now + {self.skew.total_seconds():.0f}s (clock skew?)",
                "not_yet_valid",
            )
        kept = self.record
        if kept is not None:
            if record.issued_at < kept.issued_at:
                raise FreshnessError(
                    "freshness record is older than the one already seen", "record_rollback"
                )
            if record.issued_at == kept.issued_at and record.raw == kept.raw:
                raise FreshnessError("freshness record already seen", "record_duplicate")
        self.record = record
        if record.position is not None and (self.floor is None or record.position > self.floor):
            self.floor = record.position
        return record

    def void(self, from_epoch: int) -> None:
        """The root's floor reset: forget a kept record and a floor at a void epoch."""
        if self.floor is not None and self.floor[0] >= from_epoch:
            self.floor = None
        if self.record is not None and self.record.epoch >= from_epoch:
            self.record = None

    def fresh_record(self, now: datetime) -> FreshnessRecord | None:
        """The kept record if it has not expired."""
        record = self.record
        return record if record is not None and not record.expired(now) else None

    def check_issued_at(self, envelope: Envelope, now: datetime) -> None:
        """Raise :class:`BadIssuedAt` if ``envelope`` is dated later than ``now + skew``."""
        if envelope.issued_at > now + self.skew:
            raise BadIssuedAt(
                f"envelope issued at {format_time(envelope.issued_at)}, later than now + "
                f"{self.skew.total_seconds():.0f}s"
            )

    def check(self, envelope: Envelope, now: datetime) -> None:
        """Raise if ``envelope`` may not be applied given the records seen (see class doc)."""
        self.check_issued_at(envelope, now)
        floor = self.floor
        if floor is not None and envelope.position < floor:
            raise Outdated(
                f"version {envelope.version} (epoch {envelope.epoch}) is older than version "
                f"{floor[1]} (epoch {floor[0]}) named by a signed freshness record"
            )
        record = self.record
        if record is None or envelope.position != record.position:
            return
        if envelope_digest(envelope.raw) != record.envelope_sha256:
            raise DigestMismatch(
                f"version {envelope.version} (epoch {envelope.epoch}) is not the envelope the "
                f"freshness record names"
            )
        if envelope.issued_at > record.issued_at + self.skew:
            raise BadIssuedAt(
                f"envelope issued at {format_time(envelope.issued_at)}, after the freshness "
                f"record naming it ({format_time(record.issued_at)}) + skew"
            )

    def state(self, position: Position | None, now: datetime) -> FreshnessState:
        """``fresh`` if an unexpired record names nothing newer than ``position``."""
        record = self.fresh_record(now)
        if record is None:
            return "stale"
        if record.position is None:
            return "fresh"
        return "fresh" if position is not None and position >= record.position else "stale"
