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
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import rfc8785
from cryptography.exceptions import InvalidSignature

from ._encoding import decode_base64
from ._exceptions import (
    BadCiphertext,
    BadSignature,
    Duplicate,
    EnvelopeTooLarge,
    InvalidName,
    MalformedEnvelope,
    OutOfRange,
    Rollback,
    ServiceMismatch,
    TooDeep,
    Unsigned,
    UnsupportedFormat,
)
from ._keys import SigningKey, TrustStore
from ._secrets import ciphertext_problem
from ._topics import validate_name
from ._verdicts import PARSED, verify_once

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "MAX_POSITION",
    "Envelope",
    "Limits",
    "Position",
    "canonical_bytes",
    "check_ciphertexts",
    "sign_envelope",
    "verify_envelope",
]

FORMAT_VERSION: Final = 1
DEFAULT_MAX_BYTES: Final = 256 * 1024
MAX_INT: Final = 2**53 - 1  # the largest integer RFC 8785 (I-JSON) represents exactly
# Versions and epochs stay below 2^48: far beyond any real use (an epoch is Unix seconds,
# ~2^31), and far enough below 2^53 that a manager bug near the top can be recovered from.
MAX_POSITION: Final = 2**48 - 1
# Containers open at once, the top-level object counting as 1 (docs/protocol.md, "Nesting").
# The manager's API accepts bodies 65 levels deep; an envelope adds one level and a secret
# field (a string becoming an object) one more: 100 leaves room and bounds every parser.
MAX_DEPTH: Final = 100
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
_PLAIN_DEPTH: Final = 64  # deeper documents take rfc8785's path (well past the protocol's limit)
_NOT_PLAIN: Final = object()  # _json_form's answer for what json.dumps would not write as RFC 8785


def _json_form(value: Any, depth: int = 0) -> Any:
    """``value`` in a form whose RFC 8785 text ``json.dumps`` writes byte for byte, or
    ``_NOT_PLAIN``.

    Strings, booleans, null, integers in the I-JSON range, lists and dicts with string
    keys in which no character is above U+D7FF (there, sorting by code point, as Python
    does, and by UTF-16 code unit, as RFC 8785 does, agree) are written alike. Floats:
    RFC 8785 writes a float as ECMAScript does, which is Python's ``repr`` except for the
    trailing ``.0`` of a whole number and for the exponent forms. So a whole float below
    2^53 becomes the ``int`` of the same value (``1.0`` -> ``1``, ``-0.0`` -> ``0``: the
    containers holding one are copied, never changed), a fraction of at least 1e-4 (which
    ``repr`` writes without an exponent) stays, and any other float is not plain. Nor are
    subclasses (enums...), nor anything nested deeper than ``_PLAIN_DEPTH`` levels: those
    go to ``rfc8785``, whose own refusals callers already handle (this check must never
    recurse out of the stack itself).
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if -_SAFE_INT <= value <= _SAFE_INT else _NOT_PLAIN
    if kind is float:
        size = abs(value)
        if value.is_integer():
            return int(value) if size <= _SAFE_INT else _NOT_PLAIN
        return value if 1e-4 <= size <= _SAFE_INT else _NOT_PLAIN  # not nan, not infinite
    if depth >= _PLAIN_DEPTH:
        return _NOT_PLAIN
    if kind is dict:
        copied: dict[str, Any] | None = None
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or max(key) <= "\ud7ff"):
                return _NOT_PLAIN
            form = _json_form(item, depth + 1)
            if form is not item:
                if form is _NOT_PLAIN:
                    return _NOT_PLAIN
                if copied is None:
                    copied = dict(value)
                copied[key] = form
        return value if copied is None else copied
    if kind is list or kind is tuple:
        forms = [_json_form(item, depth + 1) for item in value]
        if any(form is _NOT_PLAIN for form in forms):
            return _NOT_PLAIN
        if kind is list and all(form is item for form, item in zip(forms, value, strict=True)):
            return value
        return forms
    return _NOT_PLAIN


# One encoder, built once: json.dumps with arguments builds a new one on every call.
_CANONICAL_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value``.

    JSON in the common form (see :func:`_json_form`: whole floats, fractions of at least
    1e-4, no subclasses) is written by the C encoder of ``json``, whose output for it is
    exactly RFC 8785's (same escapes, keys sorted the same way, no spaces); anything else
    goes through ``rfc8785`` (tests compare the two on generated documents, on floats of
    every magnitude and on the vectors).
    """
    try:
        form = _json_form(value)
    except RecursionError:  # nested too deep for the check: rfc8785 decides (and refuses)
        form = _NOT_PLAIN
    if form is not _NOT_PLAIN:
        text = _CANONICAL_ENCODER.encode(form)
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


# The only accepted form: RFC 3339 restricted to UTC, six fraction digits and an upper-case
# "T" and "Z" (no offsets, no lower case, no leap second; years 0001-9999).
_TIME_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


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
    """Canonical standard base64 of exactly 64 bytes; raises BadSignature otherwise."""
    signature = decode_base64(text)
    if signature is None:
        raise BadSignature("signature is not canonical base64")
    if len(signature) != 64:
        raise BadSignature(f"signature is {len(signature)} bytes, an Ed25519 signature is 64")
    return signature


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
    must then be empty). Raises ValueError for anything a verifier would refuse.
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
    try:
        check_ciphertexts(doc["config"])
        content = canonical_bytes(doc)
    except (MalformedEnvelope, rfc8785.CanonicalizationError, UnicodeError) as exc:
        raise ValueError(f"config does not conform to the protocol: {exc}") from None
    doc["signature"] = base64.b64encode(key.sign(content)).decode()
    # One line, keys in a fixed readable order: easy to read in mosquitto_sub and to pipe to jq.
    raw = json.dumps(doc, ensure_ascii=False, separators=(", ", ": "), allow_nan=False).encode()
    if nesting_depth(raw.decode()) > MAX_DEPTH:
        raise ValueError(f"config is nested deeper than {MAX_DEPTH} levels")
    return raw


# --- parsing (docs/protocol.md, "Parsing") ---------------------------------------------

# A string, as the depth scan sees it: from a quote to the next unescaped quote, or to
# the end of the text when unterminated. It always matches from a quote, so it is linear.
_SCAN_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_BRACKETS: Final = re.compile(r"[\[\]{}]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings, scanned on the text (any text)."""
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return 0  # cannot exceed the limit: skip the scan (the usual case)
    depth = peak = 0
    for bracket in _BRACKETS.findall(_SCAN_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            peak = max(peak, depth)
        elif depth:  # a closer with nothing open is ignored
            depth -= 1
    return peak


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise MalformedEnvelope(f"duplicate key {key!r} in JSON object")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise MalformedEnvelope(f"{name} is not valid JSON")


def _check_strings(value: Any) -> None:
    """Refuse strings (members' names too) holding an escaped lone surrogate (I-JSON)."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise MalformedEnvelope("a string holds a lone surrogate (not Unicode text)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def parse_document(raw: bytes, limits: Limits) -> tuple[dict[str, Any], bytes]:
    """Steps P1-P5 of verification: size, UTF-8, nesting depth, strict I-JSON, an object.

    Returns the document and the RFC 8785 form of every member but ``signature`` (what a
    signature covers): canonicalising here is how numbers outside I-JSON (integers beyond
    +-(2^53-1), doubles that overflow) are refused at P4, at no extra cost for a valid
    message, whose canonical form is needed anyway.
    """
    if len(raw) > limits.max_bytes:
        raise EnvelopeTooLarge(f"message is {len(raw)} bytes, the limit is {limits.max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEnvelope("message is not UTF-8") from None
    if nesting_depth(text) > MAX_DEPTH:
        raise TooDeep(f"message is nested deeper than {MAX_DEPTH} levels")
    try:
        doc = json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, MalformedEnvelope):
            raise
        raise MalformedEnvelope(f"message is not JSON: {exc}") from None
    if "\\u" in text:  # only an escape can make a lone surrogate in valid UTF-8
        _check_strings(doc)
    if not isinstance(doc, dict):
        raise MalformedEnvelope("message must be a JSON object")
    signature = doc.get("signature")
    try:
        if not isinstance(signature, str | None):
            canonical_bytes(signature)  # numbers in a (wrong-typed) signature count too
        content = canonical_bytes({k: v for k, v in doc.items() if k != "signature"})
    except rfc8785.CanonicalizationError as exc:
        raise MalformedEnvelope(f"a number is outside I-JSON (RFC 7493): {exc}") from None
    return doc, content


def parse_shared(raw: bytes, limits: Limits) -> tuple[dict[str, Any], bytes]:
    """:func:`parse_document`, remembered per exact bytes in this process
    (config_lib._verdicts): libraries receiving the same message parse and canonicalise
    it once. The size limit is checked first, every call; the document returned is
    shared, so callers must not change it."""
    if len(raw) > limits.max_bytes:
        raise EnvelopeTooLarge(f"message is {len(raw)} bytes, the limit is {limits.max_bytes}")
    parsed = PARSED.get("document", raw)
    if parsed is None:
        parsed = parse_document(raw, limits)
        PARSED.put("document", raw, parsed)
    return parsed  # type: ignore[return-value]


def check_order(position: Position, last: Position | None) -> None:
    """Refuse ``position`` if it equals (:class:`Duplicate`) or precedes (:class:`Rollback`)
    ``last``, the last accepted position."""
    if last is None:
        return
    epoch, version = position
    if position == tuple(last):
        raise Duplicate(f"version {version} (epoch {epoch}) is already in force")
    if position < tuple(last):
        raise Rollback(
            f"version {version} (epoch {epoch}) is older than the accepted "
            f"version {last[1]} (epoch {last[0]})"
        )


def int_field(doc: Mapping[str, Any], name: str) -> int:
    """A non-negative integer member; at or above 2^48 is ``out_of_range`` (see the doc)."""
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedEnvelope(f"{name!r} must be an integer in 0..2^53-1")
    if value > MAX_POSITION:
        raise OutOfRange(f"{name!r} is {value}, at or above 2^48: refused (see docs/protocol.md)")
    return value


def str_field(doc: Mapping[str, Any], name: str) -> str:
    value = doc[name]
    if not isinstance(value, str) or not value:
        raise MalformedEnvelope(f"{name!r} must be a non-empty string")
    return value


def check_header(
    doc: Mapping[str, Any],
    *,
    what: str,
    fields: tuple[str, ...],
    optional: tuple[str, ...] = (),
) -> str:
    """Steps 3-5a shared by every signed message: ``format``, ``signature`` present, the
    exact member set and a valid ``service`` name. Returns the signed service name."""
    check_members(doc, what=what, fields=fields, optional=optional)
    signed_service = str_field(doc, "service")
    try:
        validate_name(signed_service)
    except InvalidName as exc:
        raise MalformedEnvelope(str(exc)) from None
    return signed_service


def check_members(
    doc: Mapping[str, Any],
    *,
    what: str,
    fields: tuple[str, ...],
    optional: tuple[str, ...] = (),
) -> None:
    """Steps 3-5 shared by every signed message, keysets included: ``format``,
    ``signature`` present and the exact member set."""
    fmt = doc.get("format")
    if isinstance(fmt, bool) or not isinstance(fmt, int):
        raise MalformedEnvelope("'format' must be an integer")
    if fmt != FORMAT_VERSION:
        raise UnsupportedFormat(f"{what} format {fmt} is not supported (this library speaks 1)")
    if "signature" not in doc or doc["signature"] in ("", None):
        raise Unsigned(f"{what} has no signature")
    missing = [f for f in fields if f not in doc]
    if missing:
        raise MalformedEnvelope(f"{what} lacks {', '.join(map(repr, missing))}")
    extra = sorted(set(doc) - set(fields) - set(optional))
    if extra:
        raise MalformedEnvelope(f"unexpected {what} field(s) {', '.join(map(repr, extra))}")


def check_signature(doc: Mapping[str, Any], content: bytes, *, trust: TrustStore, what: str) -> str:
    """Steps 6-8 shared by every signed message: ``signature`` is canonical base64 of 64
    bytes, ``key_id`` is trusted, and the signature verifies over ``content`` (the RFC 8785
    form of every other member, from :func:`parse_document`). Returns the key id."""
    key_id = str_field(doc, "key_id")
    sig_text = doc["signature"]
    if not isinstance(sig_text, str):
        raise MalformedEnvelope("'signature' must be a base64 string")
    signature = decode_signature(sig_text)
    public_key = trust.get(key_id)  # raises UnknownKey; asked for every message
    try:
        verify_once(public_key, signature, content)  # the math, once per process
    except InvalidSignature:
        raise BadSignature(f"{what} signature does not verify with key {key_id}") from None
    return key_id


def check_ciphertexts(value: Any) -> None:
    """Every object in ``value`` with an ``encrypted`` member is exactly a ciphertext
    object (docs/protocol.md, "Secret fields"); raises BadCiphertext otherwise."""
    if isinstance(value, dict):
        if "encrypted" in value:
            problem = ciphertext_problem(value)
            if problem:
                raise BadCiphertext(f"not a ciphertext object this library knows: {problem}")
            return
        for item in value.values():
            check_ciphertexts(item)
    elif isinstance(value, list):
        for item in value:
            check_ciphertexts(item)


class _Shape(tuple[str, int, int, datetime, bool]):
    """(service, version, epoch, issued_at, retired) of a well-formed envelope."""


def _check_envelope_shape(doc: Mapping[str, Any], raw: bytes) -> _Shape:
    """Steps 3-5 of an envelope (everything before the key and signature)."""
    signed_service = check_header(doc, what="envelope", fields=_FIELDS, optional=_OPTIONAL_FIELDS)
    version = int_field(doc, "version")
    epoch = int_field(doc, "epoch")
    str_field(doc, "key_id")
    issued_at = parse_time(doc, "issued_at")
    if not isinstance(doc["config"], dict):
        raise MalformedEnvelope("'config' must be a JSON object")
    retired = "retired" in doc
    if retired and doc["retired"] is not True:
        raise MalformedEnvelope("'retired' must be true when present")
    if retired and doc["config"]:
        raise MalformedEnvelope("a tombstone ('retired': true) must carry an empty config")
    if b"encrypted" in raw or b"\\u" in raw:  # else no member can be named "encrypted"
        check_ciphertexts(doc["config"])
    return _Shape((signed_service, version, epoch, issued_at, retired))


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
    raw = bytes(raw)
    doc, content = parse_shared(raw, limits)
    # The shape checks depend on the bytes alone: once per exact bytes in this process.
    shape = PARSED.get("envelope-shape", raw)
    if not isinstance(shape, _Shape):
        shape = _check_envelope_shape(doc, raw)
        PARSED.put("envelope-shape", raw, shape)
    signed_service, version, epoch, issued_at, retired = shape
    key_id = check_signature(doc, content, trust=trust, what="envelope")

    if signed_service != service:
        raise ServiceMismatch(f"envelope is signed for {signed_service!r}, expected {service!r}")
    check_order((epoch, version), last)
    return Envelope(
        service=signed_service,
        version=version,
        epoch=epoch,
        issued_at=issued_at,
        key_id=key_id,
        config=doc["config"],
        raw=raw,
        retired=retired,
    )
