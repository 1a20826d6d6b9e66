"""The signed config envelope: the one module that builds and parses the wire format.

An envelope is a UTF-8 JSON object (see docs/protocol.md)::

    {"format": 1, "service": "stt", "version": 7, "epoch": 1795000000,
     "issued_at": "2026-11-23T13:00:00.000000Z", "key_id": "3f9a0c1d2b4e5f60",
     "config": {...}, "signature": "<base64 Ed25519 signature>"}

The signature is Ed25519 over the RFC 8785 (JCS) canonical form of the object without
its ``signature`` member. :func:`verify_envelope` is pure: bytes in, a verified
:class:`Envelope` out, or a specific :class:`EnvelopeError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import rfc8785
from cryptography.exceptions import InvalidSignature

from ._exceptions import (
    BadSignature,
    Duplicate,
    EnvelopeTooLarge,
    InvalidName,
    MalformedEnvelope,
    OutOfRange,
    Rollback,
    ServiceMismatch,
    Unsigned,
    UnsupportedFormat,
)
from ._keys import SigningKey, TrustStore
from ._topics import validate_name

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMAT_VERSION",
    "MAX_POSITION",
    "Envelope",
    "Limits",
    "Position",
    "canonical_bytes",
    "sign_envelope",
    "verify_envelope",
]

FORMAT_VERSION: Final = 1
DEFAULT_MAX_BYTES: Final = 256 * 1024
MAX_INT: Final = 2**53 - 1  # the largest integer RFC 8785 (I-JSON) represents exactly
# Versions and epochs stay below 2^48: far beyond any real use (an epoch is Unix seconds,
# ~2^31), and far enough below 2^53 that a manager bug near the top can be recovered from.
MAX_POSITION: Final = 2**48 - 1
_FIELDS: Final = (
    "format",
    "service",
    "version",
    "epoch",
    "issued_at",
    "key_id",
    "config",
    "signature",
)
# A tombstone (docs/protocol.md, "Tombstone") adds "retired": true and an empty config.
_OPTIONAL_FIELDS: Final = ("retired",)

Position = tuple[int, int]
"""``(epoch, version)``: envelopes are ordered by epoch first, then version."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits applied to received envelopes."""

    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified envelope. Only :func:`verify_envelope` and :func:`sign_envelope` make them."""

    service: str
    version: int
    epoch: int
    issued_at: datetime
    key_id: str
    config: Mapping[str, Any] = field(repr=False)
    raw: bytes = field(repr=False)
    format: int = FORMAT_VERSION
    retired: bool = False  # a tombstone: the service is retired, ``config`` is empty

    @property
    def position(self) -> Position:
        return (self.epoch, self.version)


_SAFE_INT: Final = 2**53 - 1  # RFC 8785 (I-JSON): integers beyond it are refused


def _plain_json(value: Any) -> bool:
    """Whether ``value`` is JSON whose RFC 8785 form ``json.dumps`` writes byte for byte.

    Strings, booleans, null, integers in the I-JSON range, lists and dicts with string
    keys in which no character is above U+D7FF (there, sorting by code point, as Python
    does, and by UTF-16 code unit, as RFC 8785 does, agree). Floats are not (ECMAScript's
    number form differs from Python's), nor subclasses (enums...).
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_SAFE_INT <= value <= _SAFE_INT)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or max(key) <= "\ud7ff"):
                return False
            if not _plain_json(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain_json(item) for item in value)
    return False


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value``.

    Plain JSON (the common case: no floats) is written by the C encoder of ``json``, whose
    output for it is exactly RFC 8785's (same escapes, keys sorted the same way, no
    spaces); anything else goes through ``rfc8785`` (tests compare the two on generated
    documents and on the vectors).
    """
    if _plain_json(value):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it with its own error
    return rfc8785.dumps(value)


def check_position(*, version: int, epoch: int) -> None:
    """Refuse (ValueError) to sign a version or epoch outside 0..2^48-1."""
    for name, number in (("version", version), ("epoch", epoch)):
        if (
            isinstance(number, bool)
            or not isinstance(number, int)
            or not 0 <= number <= MAX_POSITION
        ):
            raise ValueError(f"{name} must be an integer in 0..2^48-1, got {number!r}")


def format_time(ts: datetime) -> str:
    """The one RFC 3339 form the protocol writes: UTC, microseconds, ``Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TIME_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def parse_time(doc: Mapping[str, Any], name: str) -> datetime:
    """Parse member ``name`` written exactly as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    value = doc[name]
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        raise MalformedEnvelope(f"{name!r} must be a time written as YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise MalformedEnvelope(f"{name!r} is not a valid date and time") from None


def decode_signature(text: str) -> bytes:
    """Standard base64 of exactly 64 bytes; raises BadSignature otherwise."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("signature is not valid base64") from None


def sign_envelope(
    *,
    service: str,
    version: int,
    epoch: int,
    config: Mapping[str, Any],
    key: SigningKey,
    issued_at: datetime | None = None,
    retired: bool = False,
) -> bytes:
    """Build and sign an envelope; returns the bytes to publish.

    ``config`` must already be JSON-ready with secrets encrypted
    (see :func:`config_lib.encrypt_secrets`). ``retired`` makes a tombstone (``config``
    must then be empty).
    """
    if retired and config:
        raise ValueError("a tombstone carries an empty config")
    validate_name(service)
    check_position(version=version, epoch=epoch)
    doc: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "service": service,
        "version": version,
        "epoch": epoch,
        "issued_at": format_time(issued_at or datetime.now(UTC)),
        "key_id": key.key_id,
        "config": dict(config),
    }
    if retired:
        doc["retired"] = True
    signature = key.sign(canonical_bytes(doc))
    doc["signature"] = base64.b64encode(signature).decode()
    # One line, keys in a fixed readable order: easy to read in mosquitto_sub and to pipe to jq.
    return json.dumps(doc, ensure_ascii=False, separators=(", ", ": "), allow_nan=False).encode()


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise MalformedEnvelope(f"duplicate key {key!r} in JSON object")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise MalformedEnvelope(f"{name} is not valid JSON")


def parse_document(raw: bytes, limits: Limits) -> dict[str, Any]:
    if len(raw) > limits.max_bytes:
        raise EnvelopeTooLarge(f"message is {len(raw)} bytes, the limit is {limits.max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEnvelope("message is not UTF-8") from None
    try:
        doc = json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, MalformedEnvelope):
            raise
        raise MalformedEnvelope(f"message is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedEnvelope("envelope must be a JSON object")
    return doc


def int_field(doc: Mapping[str, Any], name: str) -> int:
    """A non-negative integer member; at or above 2^48 is ``out_of_range`` (see the doc)."""
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise MalformedEnvelope(f"{name!r} must be an integer in 0..2^53-1")
    if value > MAX_POSITION:
        raise OutOfRange(f"{name!r} is {value}, at or above 2^48: refused (see docs/protocol.md)")
    return value


def str_field(doc: Mapping[str, Any], name: str) -> str:
    value = doc[name]
    if not isinstance(value, str) or not value:
        raise MalformedEnvelope(f"{name!r} must be a non-empty string")
    return value


def verify_envelope(
    raw: bytes,
    *,
    trust: TrustStore,
    service: str,
    last: Position | None = None,
    limits: Limits = Limits(),
) -> Envelope:
    """Verify raw message bytes for ``service``; return the verified envelope or raise.

    Checks, in order: size, UTF-8 JSON object, format, shape, key id, signature,
    service, then ``(epoch, version)`` against ``last`` (the last accepted position):
    older raises :class:`Rollback`, equal raises :class:`Duplicate`.
    """
    doc = parse_document(raw, limits)
    fmt = doc.get("format")
    if isinstance(fmt, bool) or not isinstance(fmt, int):
        raise MalformedEnvelope("'format' must be an integer")
    if fmt != FORMAT_VERSION:
        raise UnsupportedFormat(f"envelope format {fmt} is not supported (this library speaks 1)")
    if "signature" not in doc or doc["signature"] in ("", None):
        raise Unsigned("envelope has no signature")
    missing = [f for f in _FIELDS if f not in doc]
    if missing:
        raise MalformedEnvelope(f"envelope lacks {', '.join(map(repr, missing))}")
    extra = sorted(set(doc) - set(_FIELDS) - set(_OPTIONAL_FIELDS))
    if extra:
        raise MalformedEnvelope(f"unexpected envelope field(s) {', '.join(map(repr, extra))}")
    signed_service = str_field(doc, "service")
    try:
        validate_name(signed_service)
    except InvalidName as exc:
        raise MalformedEnvelope(str(exc)) from None
    version = int_field(doc, "version")
    epoch = int_field(doc, "epoch")
    key_id = str_field(doc, "key_id")
    issued_text = str_field(doc, "issued_at")
    try:
        issued_at = datetime.fromisoformat(issued_text)
    except ValueError:
        raise MalformedEnvelope("'issued_at' must be an RFC 3339 time") from None
    if issued_at.tzinfo is None:
        raise MalformedEnvelope("'issued_at' must carry a time zone (use Z)")
    if not isinstance(doc["config"], dict):
        raise MalformedEnvelope("'config' must be a JSON object")
    retired = "retired" in doc
    if retired and doc["retired"] is not True:
        raise MalformedEnvelope("'retired' must be true when present")
    if retired and doc["config"]:
        raise MalformedEnvelope("a tombstone ('retired': true) must carry an empty config")
    sig_text = doc["signature"]
    if not isinstance(sig_text, str):
        raise MalformedEnvelope("'signature' must be a base64 string")
    signature = decode_signature(sig_text)

    public_key = trust.get(key_id)  # raises UnknownKey
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    try:
        content = canonical_bytes(unsigned)
    except rfc8785.CanonicalizationError as exc:
        raise MalformedEnvelope(f"envelope cannot be canonicalised: {exc}") from None
    try:
        public_key.verify(signature, content)
    except InvalidSignature:
        raise BadSignature(f"signature does not verify with key {key_id}") from None

    if signed_service != service:
        raise ServiceMismatch(f"envelope is signed for {signed_service!r}, expected {service!r}")
    position = (epoch, version)
    if last is not None:
        if position == tuple(last):
            raise Duplicate(f"version {version} (epoch {epoch}) is already in force")
        if position < tuple(last):
            raise Rollback(
                f"version {version} (epoch {epoch}) is older than the accepted "
                f"version {last[1]} (epoch {last[0]})"
            )
    return Envelope(
        service=signed_service,
        version=version,
        epoch=epoch,
        issued_at=issued_at,
        key_id=key_id,
        config=doc["config"],
        raw=bytes(raw),
        retired=retired,
    )
