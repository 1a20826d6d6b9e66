"""The keyset: the root-signed list of the keys allowed to sign configs.

A root key, kept offline by the operator, signs a small versioned document listing the
current signing keys, with an expiry; the manager publishes it retained on
``config/keyset``. A service needs only the root public key: it accepts a newer keyset
signed by the root, persists it beside its LKG file and from then on trusts exactly the
keys it lists (envelopes and freshness records signed by any other key are refused as
``unknown_key``)::

    {"format": 1, "type": "keyset", "version": 3,
     "issued_at": "2026-11-30T01:00:00.000000Z", "expires_at": "2027-02-28T01:00:00.000000Z",
     "keys": [{"key_id": "34750f98bd59fcfc", "public_key": "<base64, 32 bytes>"}],
     "void_epochs_from": null, "root_key_id": "9e1b...", "signature": "..."}

``void_epochs_from`` (an integer, or null) is the root-signed epoch floor reset: every
position whose epoch is at or above it is void (see docs/protocol.md, *Keyset*).
Signed like an envelope: Ed25519 over the RFC 8785 form of every member but ``signature``.

This module is pure: :func:`verify_keyset` takes the clock as an argument.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._encoding import decode_base64
from ._envelope import (
    FORMAT_VERSION,
    MAX_POSITION,
    Limits,
    canonical_bytes,
    check_members,
    decode_signature,
    format_time,
    int_field,
    parse_document,
    parse_time,
    str_field,
)
from ._exceptions import (
    BadSignature,
    KeysetError,
    MalformedEnvelope,
)
from ._keys import SigningKey, TrustStore, key_id_for

__all__ = [
    "KEYSET_MAX_BYTES",
    "KEYSET_MAX_KEYS",
    "Keyset",
    "sign_keyset",
    "verify_keyset",
]

KEYSET_MAX_BYTES: Final = 16 * 1024
KEYSET_MAX_KEYS: Final = 16
KEYSET_TYPE: Final = "keyset"
_FIELDS: Final = (
    "format",
    "type",
    "version",
    "issued_at",
    "expires_at",
    "keys",
    "void_epochs_from",
    "root_key_id",
    "signature",
)
_LIMITS: Final = Limits(max_bytes=KEYSET_MAX_BYTES)


@dataclass(frozen=True, slots=True)
class Keyset:
    """A verified keyset. ``trust`` holds exactly the signing keys it lists."""

    version: int
    issued_at: datetime
    expires_at: datetime
    trust: TrustStore = field(repr=False)
    void_epochs_from: int | None
    root_key_id: str
    raw: bytes = field(repr=False)

    @property
    def key_ids(self) -> list[str]:
        return list(self.trust)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def voids(self, epoch: int) -> bool:
        """True if ``epoch`` lies in the range the root declared void (floor reset)."""
        return self.void_epochs_from is not None and epoch >= self.void_epochs_from


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign_keyset(
    *,
    version: int,
    keys: Iterable[Ed25519PublicKey],
    root: SigningKey,
    expires_in: timedelta,
    issued_at: datetime | None = None,
    void_epochs_from: int | None = None,
) -> bytes:
    """Build and sign a keyset with the root key; returns the bytes to publish."""
    issued = issued_at or datetime.now(UTC)
    entries: dict[str, Ed25519PublicKey] = {key_id_for(k): k for k in keys}
    doc: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "type": KEYSET_TYPE,
        "version": version,
        "issued_at": format_time(issued),
        "expires_at": format_time(issued + expires_in),
        "keys": [
            {"key_id": kid, "public_key": base64.b64encode(_raw_public(k)).decode()}
            for kid, k in sorted(entries.items())
        ],
        "void_epochs_from": void_epochs_from,
        "root_key_id": root.key_id,
    }
    _check_shape(doc)
    doc["signature"] = base64.b64encode(root.sign(canonical_bytes(doc))).decode()
    return json.dumps(doc, separators=(", ", ": ")).encode()


def _public_key(entry: Any) -> Ed25519PublicKey:
    if not isinstance(entry, dict) or set(entry) != {"key_id", "public_key"}:
        raise MalformedEnvelope('each of \'keys\' must be {"key_id", "public_key"}')
    text = entry["public_key"]
    kid = entry["key_id"]
    if not isinstance(text, str) or not isinstance(kid, str):
        raise MalformedEnvelope("'key_id' and 'public_key' must be strings")
    raw = decode_base64(text)
    if raw is None or len(raw) != 32:
        raise MalformedEnvelope("'public_key' must be the canonical base64 of 32 bytes")
    key = Ed25519PublicKey.from_public_bytes(raw)
    if key_id_for(key) != kid:
        raise MalformedEnvelope(f"'key_id' {kid!r} is not the id of its public key")
    return key


def _check_shape(doc: dict[str, Any]) -> tuple[int, datetime, datetime, TrustStore, int | None]:
    """Types of every member but the signature; raises MalformedEnvelope (or OutOfRange)."""
    if doc.get("type") != KEYSET_TYPE:
        raise MalformedEnvelope("'type' must be \"keyset\"")
    version = int_field(doc, "version")
    if version < 1:
        raise MalformedEnvelope("'version' must be at least 1")
    issued = parse_time(doc, "issued_at")
    expires = parse_time(doc, "expires_at")
    if expires <= issued:
        raise MalformedEnvelope("'expires_at' must be later than 'issued_at'")
    entries = doc["keys"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= KEYSET_MAX_KEYS:
        raise MalformedEnvelope(f"'keys' must be a list of 1 to {KEYSET_MAX_KEYS} keys")
    trust = TrustStore()
    for entry in entries:
        key = _public_key(entry)
        if key_id_for(key) in trust:
            raise MalformedEnvelope("'keys' lists the same key twice")
        trust.add(key)
    void = doc["void_epochs_from"]
    if void is not None:
        void = int_field(doc, "void_epochs_from")
        if void < 1 or void > MAX_POSITION:
            raise MalformedEnvelope("'void_epochs_from' must be null or an epoch 1..2^48-1")
    str_field(doc, "root_key_id")
    return version, issued, expires, trust, void


def verify_keyset(
    raw: bytes,
    *,
    root: TrustStore,
    current: Keyset | None = None,
    now: datetime | None = None,
) -> Keyset:
    """Verify a keyset's bytes with the root public key(s) in ``root``.

    Shape, root key id and signature first (reasons ``too_large``, ``malformed``,
    ``unsupported_format``, ``unsigned``, ``unknown_key``, ``bad_signature``); then,
    when ``now`` is given, ``keyset_expired``; then, against ``current`` (the keyset in
    force), ``keyset_duplicate`` (the same bytes: ignore quietly) or ``keyset_rollback``
    (a lower version, or the same version with other contents).
    """
    doc, content = parse_document(raw, _LIMITS)  # P1-P5: size, UTF-8, depth, I-JSON, object
    check_members(doc, what="keyset", fields=_FIELDS)
    version, issued, expires, trust, void = _check_shape(doc)
    root_id = str_field(doc, "root_key_id")
    sig_text = doc["signature"]
    if not isinstance(sig_text, str):
        raise MalformedEnvelope("'signature' must be a base64 string")
    signature = decode_signature(sig_text)
    public = root.get(root_id)  # UnknownKey: not our root
    try:
        public.verify(signature, content)
    except InvalidSignature:
        raise BadSignature(f"keyset signature does not verify with root key {root_id}") from None
    if now is not None and now >= expires:
        raise KeysetError(
            f"keyset version {version} expired at {format_time(expires)}", "keyset_expired"
        )
    if current is not None:
        if raw == current.raw:
            raise KeysetError(f"keyset version {version} already in force", "keyset_duplicate")
        if version <= current.version:
            raise KeysetError(
                f"keyset version {version} is not newer than version {current.version} in force",
                "keyset_rollback",
            )
    return Keyset(
        version=version,
        issued_at=issued,
        expires_at=expires,
        trust=trust,
        void_epochs_from=void,
        root_key_id=root_id,
        raw=bytes(raw),
    )
