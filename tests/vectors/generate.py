"""Regenerate tests/vectors/envelopes.json (deterministic: fixed keys, times and nonces).

    .venv/bin/python tests/vectors/generate.py

The vectors are for other implementations too: see docs/protocol.md ("Test vectors").
Every case names its ``kind`` (which verifier runs it), its ``verdict`` (``accept`` or
``refuse``) and, when refused, its ``reason`` code. Two verifiers check every case:
tests/envelope/test_env_vectors.py (config_lib) and tests/verifier-node/ (Node, written
from docs/protocol.md alone).

To add a message kind: write one ``<kind>_cases(ctx)`` function returning its cases, add
it to ``KINDS``, teach both verifiers the kind (``VERIFIERS`` in each) and document it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config_lib import (
    MAX_DEPTH,
    SigningKey,
    canonical_bytes,
    derive_data_key,
    sign_envelope,
    sign_freshness,
    sign_keyset,
    sign_report,
)
from config_lib._secrets import _aad

OUT = Path(__file__).with_name("envelopes.json")
KEYSETS_OUT = Path(__file__).with_name("keysets.json")
SERVICE = "stt"
ISSUED = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
EPOCH = 1795000000
Case = dict[str, Any]


def t(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _key(seed: int) -> tuple[SigningKey, dict[str, str]]:
    raw = bytes([seed]) * 32
    private = Ed25519PrivateKey.from_private_bytes(raw)
    key = SigningKey.from_pem(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, {"private_seed_hex": raw.hex(), "public_hex": public.hex(), "key_id": key.key_id}


def dumps(doc: Any) -> str:
    """How the manager writes a message: one line, ``", "`` and ``": "`` separators."""
    return json.dumps(doc, ensure_ascii=False, separators=(", ", ": "))


def case(name: str, kind: str, message: str | bytes, reason: str | None, **context: Any) -> Case:
    """One vector; ``reason`` None means accepted. A message that is not UTF-8 text
    travels as base64 in ``message_b64``."""
    body = (
        {"message_b64": base64.b64encode(message).decode()}
        if isinstance(message, bytes)
        else {"message": message}
    )
    verdict = "accept" if reason is None else "refuse"
    return {"name": name, "kind": kind, **body, "verdict": verdict, "reason": reason, **context}


def accept(name: str, kind: str, message: str, **context: Any) -> Case:
    return case(name, kind, message, None, **context)


def refuse(name: str, kind: str, message: str, reason: str, **context: Any) -> Case:
    return case(name, kind, message, reason, **context)


def refuse_bytes(name: str, kind: str, raw: bytes, reason: str, **context: Any) -> Case:
    return case(name, kind, raw, reason, **context)


@dataclass
class Ctx:
    trusted: SigningKey
    untrusted: SigningKey
    secret: dict[str, str]
    config: dict[str, Any]

    def sign_doc(self, doc: dict[str, Any], key: SigningKey | None = None) -> str:
        """Re-sign ``doc`` (any members, any values) as the manager would, so that only
        the property under test is wrong."""
        key = key or self.trusted
        unsigned = {k: v for k, v in doc.items() if k != "signature"}
        unsigned["signature"] = base64.b64encode(key.sign(canonical_bytes(unsigned))).decode()
        return dumps(unsigned)

    def envelope_doc(self, **members: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": 1,
            "service": SERVICE,
            "version": 7,
            "epoch": EPOCH,
            "issued_at": t(ISSUED),
            "key_id": self.trusted.key_id,
            "config": self.config,
        }
        doc.update(members)
        return doc

    def envelope(self, **kw: Any) -> str:
        args: dict[str, Any] = {
            "service": SERVICE,
            "version": 7,
            "epoch": EPOCH,
            "config": self.config,
            "key": self.trusted,
            "issued_at": ISSUED,
        }
        args.update(kw)
        return sign_envelope(**args).decode()

    def record(self, envelope: str | None = None, **kw: Any) -> str:
        args: dict[str, Any] = {
            "service": SERVICE,
            "epoch": EPOCH,
            "version": 7,
            "envelope_sha256": hashlib.sha256((envelope or self.envelope()).encode()).hexdigest(),
            "key": self.trusted,
            "expires_in": timedelta(seconds=120),
            "issued_at": ISSUED,
        }
        args.update(kw)
        return sign_freshness(**args).decode()

    def record_doc(self, **members: Any) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.record())
        doc.pop("signature")
        doc.update(members)
        return doc


# --- envelopes -----------------------------------------------------------------------


def envelope_cases(ctx: Ctx) -> list[Case]:
    """Envelopes on ``config/updated/<service>``: checks 1-10 of docs/protocol.md."""
    E = "envelope"
    valid = ctx.envelope()
    doc = json.loads(valid)
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    sig = doc["signature"]
    resign = ctx.sign_doc
    env = ctx.envelope_doc
    cases: list[Case] = [
        accept("valid", E, valid),
        accept(
            "valid-newer-epoch-lower-version",
            E,
            ctx.envelope(version=1, epoch=EPOCH + 1),
            last=[EPOCH, 7],
        ),
        accept("valid-newer-version", E, ctx.envelope(version=8), last=[EPOCH, 7]),
        accept("valid-pretty-printed", E, json.dumps(doc, indent=2)),
        accept("valid-members-reordered", E, dumps(dict(sorted(doc.items())))),
        accept("valid-escaped-letters", E, valid.replace('"en"', '"\\u0065n"')),
        accept(
            "valid-escaped-solidus", E, resign(env(config={"path": "a/b"})).replace("a/b", "a\\/b")
        ),
        accept(
            "valid-unicode-values",
            E,
            resign(env(config={"greeting": "h\u00e9llo \U0001f600", "\u00e9": 1})),
        ),
        accept(
            "valid-number-forms",
            E,
            resign(env(config={"a": 1.5, "b": -0.0, "c": 1e21, "d": 1e-7, "e": 0.1, "f": -12})),
        ),
        accept(
            "valid-tricky-doubles",
            E,
            resign(
                env(
                    config={
                        "min_subnormal": 5e-324,
                        "max_double": 1.7976931348623157e308,
                        "micro": 0.000001,
                        "below_micro": 0.0000001,
                        "e20": 123456789012345680000.0,
                        "e21": 1234567890123456800000.0,
                        "above_safe": 9007199254740993.0,
                        "third": 1 / 3,
                        "negative_tiny": -2.2250738585072014e-308,
                        "float_list": [0.1 + 0.2, 1e-5, 4.35, 1e16, 2**70 * 1.0],
                    }
                )
            ),
        ),
        accept(
            "valid-unsorted-unicode-members",
            E,
            resign(env(config={"\U0001f600": 1, "\uff61": 2, "a": 3, "\u00e9": 4, "Z": 5})),
        ),
        accept(
            "valid-exponent-written",
            E,
            resign(env(config={"x": 100.0})).replace('"x": 100.0', '"x": 1E2'),
        ),
        accept(
            "valid-safe-integer-limits",
            E,
            resign(env(config={"max": 2**53 - 1, "min": -(2**53 - 1)})),
        ),
        accept("valid-position-limit", E, ctx.envelope(version=2**48 - 1, epoch=2**48 - 1)),
        accept("valid-position-zero", E, ctx.envelope(version=0, epoch=0)),
        accept("valid-at-size-limit", E, valid, max_bytes=len(valid.encode())),
        accept("valid-empty-config", E, ctx.envelope(config={})),
        accept(
            "valid-brackets-inside-strings", E, resign(env(config={"s": "[" * 150 + "{" * 150}))
        ),
        accept("valid-depth-at-limit", E, resign(env(config=_nest(MAX_DEPTH - 1)))),
        accept(
            "valid-javascript-special-names",
            E,
            resign(env(config={"__proto__": {"a": 1}, "toJSON": "x", "constructor": 2})),
        ),
        accept("valid-deep-arrays", E, resign(env(config={"a": _nest_list(MAX_DEPTH - 2)}))),
        accept("valid-leap-day", E, resign(env(issued_at="2028-02-29T00:00:00.000000Z"))),
        accept("valid-max-time", E, resign(env(issued_at="9999-12-31T23:59:59.999999Z"))),
        accept("valid-min-time", E, resign(env(issued_at="0001-01-01T00:00:00.000000Z"))),
        accept(
            "valid-nested-secret",
            E,
            resign(env(config={"db": {"password": ctx.secret}, "list": [ctx.secret]})),
        ),
        accept(
            "valid-plain-objects-without-encrypted",
            E,
            resign(env(config={"nonce": "x", "ciphertext": "y", "key_id": "z"})),
        ),
        # --- size and parsing (checks 1-2)
        refuse("too-large", E, valid, "too_large", max_bytes=100),
        refuse("too-large-by-one", E, valid, "too_large", max_bytes=len(valid.encode()) - 1),
        refuse("not-json-truncated", E, valid[:-1], "malformed"),
        refuse("empty-message", E, "", "malformed"),
        refuse("top-level-array", E, f"[{valid}]", "malformed"),
        refuse("top-level-string", E, json.dumps(valid), "malformed"),
        refuse("top-level-null", E, "null", "malformed"),
        refuse("trailing-garbage", E, valid + " x", "malformed"),
        refuse("two-objects", E, valid + valid, "malformed"),
        refuse("trailing-comma", E, valid[:-1] + ", }", "malformed"),
        refuse("comment", E, valid.replace("{", "{/* c */", 1), "malformed"),
        refuse(
            "big-integer-before-unknown-key",
            E,
            ctx.envelope(key=ctx.untrusted).replace('"beam_size": 5', f'"beam_size": {2**53}'),
            "malformed",
        ),
        refuse(
            "overflowing-signature-number-before-format",
            E,
            dumps({**unsigned, "format": 2, "signature": 0}).replace(
                '"signature": 0', '"signature": 1e400'
            ),
            "malformed",
        ),
        refuse(
            "lone-surrogate-in-signature",
            E,
            dumps({**unsigned, "signature": "x"}).replace(
                '"signature": "x"', '"signature": "\\ud800"'
            ),
            "malformed",
        ),
        refuse("byte-order-mark", E, "\ufeff" + valid, "malformed"),
        refuse("unterminated-string", E, '{"format": 1, "service": "stt', "malformed"),
        *[
            refuse(name, E, valid.replace(old, new), "malformed")
            for name, old, new in _MALFORMED_EDITS
        ],
        *[
            refuse_bytes(name, E, valid.encode().replace(b'"en"', b'"' + text + b'"'), "malformed")
            for name, text in _NOT_UTF8
        ],
        # --- nesting (check 2a, before parsing)
        refuse("too-deep-signed", E, resign(env(config=_nest(MAX_DEPTH))), "too_deep"),
        refuse(
            "too-deep-arrays-signed",
            E,
            resign(env(config={"a": _nest_list(MAX_DEPTH - 1)})),
            "too_deep",
        ),
        refuse("too-deep-arrays", E, "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "too_deep"),
        refuse("too-deep-unparseable", E, "{" * 5000, "too_deep"),
        refuse("too-deep-after-unterminated-string", E, '{"a": "' + "[" * 200, "malformed"),
        refuse("too-deep-after-escaped-quote", E, '{"a": "\\"' + "[" * 200 + '"}', "malformed"),
        refuse(
            "too-deep-despite-closers-first",
            E,
            "]" * 50 + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
            "too_deep",
        ),
        # --- format and signature presence (checks 3-4)
        refuse("unsupported-format", E, resign({**doc, "format": 2}), "unsupported_format"),
        refuse("format-zero", E, resign({**doc, "format": 0}), "unsupported_format"),
        refuse("format-negative", E, resign({**doc, "format": -1}), "unsupported_format"),
        refuse("format-string", E, resign({**doc, "format": "1"}), "malformed"),
        refuse("format-float", E, valid.replace('"format": 1', '"format": 1.0'), "malformed"),
        refuse("format-true", E, resign({**doc, "format": True}), "malformed"),
        refuse(
            "format-missing",
            E,
            resign({k: v for k, v in doc.items() if k != "format"}),
            "malformed",
        ),
        refuse("format-2-unsigned", E, dumps({**unsigned, "format": 2}), "unsupported_format"),
        refuse("unsigned", E, dumps(unsigned), "unsigned"),
        refuse("signature-empty", E, dumps({**unsigned, "signature": ""}), "unsigned"),
        refuse("signature-null", E, dumps({**unsigned, "signature": None}), "unsigned"),
        refuse("unsigned-and-extra-member", E, dumps({**unsigned, "admin": True}), "unsigned"),
        # --- members and types (check 5)
        *[
            refuse(
                f"missing-{member}",
                E,
                resign({k: v for k, v in doc.items() if k != member}),
                "malformed",
            )
            for member in ("service", "version", "epoch", "issued_at", "key_id", "config")
        ],
        refuse("extra-field", E, resign({**doc, "admin": True}), "malformed"),
        refuse("extra-field-null", E, resign({**doc, "note": None}), "malformed"),
        refuse("service-int", E, resign({**doc, "service": 5}), "malformed"),
        refuse("service-empty", E, resign({**doc, "service": ""}), "malformed"),
        refuse("service-name-with-dot", E, resign({**doc, "service": "stt.v2"}), "malformed"),
        refuse("service-name-with-slash", E, resign({**doc, "service": "stt/x"}), "malformed"),
        refuse("service-name-wildcard", E, resign({**doc, "service": "+"}), "malformed"),
        refuse("service-name-65-chars", E, resign({**doc, "service": "s" * 65}), "malformed"),
        refuse("service-name-leading-dash", E, resign({**doc, "service": "-stt"}), "malformed"),
        refuse("version-negative", E, resign({**doc, "version": -1}), "malformed"),
        refuse("version-float", E, resign({**doc, "version": 7.5}), "malformed"),
        refuse(
            "version-integral-float",
            E,
            valid.replace('"version": 7', '"version": 7.0'),
            "malformed",
        ),
        refuse("version-exponent", E, valid.replace('"version": 7', '"version": 7e0'), "malformed"),
        refuse("version-string", E, resign({**doc, "version": "7"}), "malformed"),
        refuse("version-true", E, resign({**doc, "version": True}), "malformed"),
        refuse("version-null", E, resign({**doc, "version": None}), "malformed"),
        refuse("version-at-2^48", E, resign({**doc, "version": 2**48}), "out_of_range"),
        refuse("version-at-2^53-1", E, resign({**doc, "version": 2**53 - 1}), "out_of_range"),
        refuse(
            "version-at-2^53", E, valid.replace('"version": 7', f'"version": {2**53}'), "malformed"
        ),
        refuse("epoch-at-2^48", E, resign({**doc, "epoch": 2**48}), "out_of_range"),
        refuse("epoch-negative", E, resign({**doc, "epoch": -5}), "malformed"),
        refuse(
            "epoch-float", E, valid.replace(f'"epoch": {EPOCH}', f'"epoch": {EPOCH}.0'), "malformed"
        ),
        refuse(
            "version-out-of-range-before-bad-epoch",
            E,
            resign({**doc, "version": 2**48, "epoch": "x"}),
            "out_of_range",
        ),
        refuse("key-id-empty", E, resign({**doc, "key_id": ""}), "malformed"),
        refuse("key-id-number", E, resign({**doc, "key_id": 5}), "malformed"),
        refuse("config-array", E, resign({**doc, "config": []}), "malformed"),
        refuse("config-null", E, resign({**doc, "config": None}), "malformed"),
        refuse("config-string", E, resign({**doc, "config": "{}"}), "malformed"),
        # --- issued_at: exactly YYYY-MM-DDTHH:MM:SS.ffffffZ (check 5)
        *[
            refuse(f"issued-at-{label}", E, resign({**doc, "issued_at": value}), "malformed")
            for label, value in (
                ("offset-utc", "2026-11-23T12:00:00.000000+00:00"),
                ("offset-other", "2026-11-23T13:00:00.000000+01:00"),
                ("no-zone", "2026-11-23T12:00:00.000000"),
                ("no-fraction", "2026-11-23T12:00:00Z"),
                ("millis", "2026-11-23T12:00:00.000Z"),
                ("nanos", "2026-11-23T12:00:00.000000000Z"),
                ("lowercase-t", "2026-11-23t12:00:00.000000Z"),
                ("lowercase-z", "2026-11-23T12:00:00.000000z"),
                ("space-separator", "2026-11-23 12:00:00.000000Z"),
                ("feb-30", "2026-02-30T12:00:00.000000Z"),
                ("feb-29-non-leap", "2027-02-29T12:00:00.000000Z"),
                ("month-13", "2026-13-01T12:00:00.000000Z"),
                ("day-00", "2026-11-00T12:00:00.000000Z"),
                ("hour-24", "2026-11-23T24:00:00.000000Z"),
                ("minute-60", "2026-11-23T12:60:00.000000Z"),
                ("leap-second", "2026-12-31T23:59:60.000000Z"),
                ("year-0000", "0000-01-01T00:00:00.000000Z"),
                ("trailing-space", "2026-11-23T12:00:00.000000Z "),
                ("unix-seconds", "1795000000"),
                ("fullwidth-digits", "\uff12\uff10\uff12\uff16-11-23T12:00:00.000000Z"),
                ("arabic-indic-digits", "\u0662\u0660\u0662\u0666-11-23T12:00:00.000000Z"),
                ("empty", ""),
                ("number", 1795000000),
                ("null", None),
            )
        ],
        # --- ciphertext objects in config (check 5c)
        *[
            refuse(
                f"ciphertext-{label}", E, resign(env(config={"api_key": value})), "bad_ciphertext"
            )
            for label, value in _bad_ciphertexts(ctx.secret)
        ],
        refuse(
            "ciphertext-bad-inside-array",
            E,
            resign(env(config={"keys": [ctx.secret, {**ctx.secret, "encrypted": "x"}]})),
            "bad_ciphertext",
        ),
        refuse(
            "ciphertext-bad-nested",
            E,
            resign(env(config={"db": {"password": {**ctx.secret, "nonce": "AAEC"}}})),
            "bad_ciphertext",
        ),
        refuse(
            "ciphertext-member-name-escaped",
            E,
            resign(env(config={"x": {"encrypted": True}})).replace(
                '"encrypted"', '"\\u0065ncrypted"'
            ),
            "bad_ciphertext",
        ),
        # --- signature encoding (check 6)
        *[
            refuse(
                f"signature-{label}", E, dumps({**unsigned, "signature": value}), "bad_signature"
            )
            for label, value in _bad_signature_texts(sig)
        ],
        refuse("signature-number", E, dumps({**unsigned, "signature": 123}), "malformed"),
        refuse("signature-array", E, dumps({**unsigned, "signature": [sig]}), "malformed"),
        refuse(
            "signature-bad-base64-unknown-key",
            E,
            dumps({**unsigned, "key_id": "0000000000000000", "signature": "!"}),
            "bad_signature",
        ),
        # --- key and signature (checks 7-8)
        refuse("unknown-key", E, ctx.envelope(key=ctx.untrusted), "unknown_key"),
        refuse("unknown-key-id-form", E, resign({**doc, "key_id": "not-a-key-id"}), "unknown_key"),
        refuse(
            "untrusted-key-claims-trusted-id",
            E,
            dumps({**unsigned, "signature": json.loads(resign(doc, ctx.untrusted))["signature"]}),
            "bad_signature",
        ),
        refuse(
            "tampered-value", E, valid.replace('"beam_size": 5', '"beam_size": 1'), "bad_signature"
        ),
        refuse(
            "tampered-version", E, valid.replace('"version": 7', '"version": 8'), "bad_signature"
        ),
        refuse(
            "tampered-issued-at",
            E,
            valid.replace(t(ISSUED), t(ISSUED + timedelta(microseconds=1))),
            "bad_signature",
        ),
        refuse(
            "tampered-ciphertext",
            E,
            valid.replace(ctx.secret["nonce"], "AAECAwQFBgcICQoM"),
            "bad_signature",
        ),
        refuse(
            "signature-over-sent-bytes",
            E,
            dumps(
                {
                    **unsigned,
                    "signature": base64.b64encode(
                        ctx.trusted.sign(dumps(unsigned).encode())
                    ).decode(),
                }
            ),
            "bad_signature",
        ),
        refuse(
            "signature-zero-bytes",
            E,
            dumps({**unsigned, "signature": base64.b64encode(bytes(64)).decode()}),
            "bad_signature",
        ),
        refuse(
            "signature-of-another-envelope",
            E,
            dumps({**unsigned, "signature": json.loads(ctx.envelope(version=8))["signature"]}),
            "bad_signature",
        ),
        refuse(
            "unknown-key-and-other-service",
            E,
            ctx.envelope(key=ctx.untrusted, service="orchestrator"),
            "unknown_key",
        ),
        refuse(
            "tampered-and-other-service",
            E,
            ctx.envelope(service="orchestrator").replace('"beam_size": 5', '"beam_size": 6'),
            "bad_signature",
        ),
        # --- service and position (checks 9-10)
        refuse("other-service", E, ctx.envelope(service="orchestrator"), "service_mismatch"),
        refuse(
            "other-service-older",
            E,
            ctx.envelope(service="orchestrator", version=1),
            "service_mismatch",
            last=[EPOCH, 7],
        ),
        refuse("rollback", E, ctx.envelope(version=6), "rollback", last=[EPOCH, 7]),
        refuse(
            "rollback-older-epoch-higher-version",
            E,
            ctx.envelope(version=99, epoch=EPOCH - 1),
            "rollback",
            last=[EPOCH, 7],
        ),
        refuse(
            "rollback-to-zero", E, ctx.envelope(version=0, epoch=0), "rollback", last=[EPOCH, 7]
        ),
        refuse("duplicate", E, valid, "duplicate", last=[EPOCH, 7]),
        refuse("duplicate-other-bytes", E, json.dumps(doc, indent=1), "duplicate", last=[EPOCH, 7]),
    ]
    return cases


def _nest(levels: int) -> dict[str, Any]:
    """A config whose own object and ``levels - 1`` objects below it nest ``levels`` deep."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


# Text edits of the valid envelope that make it not strict I-JSON (all "malformed").
_MALFORMED_EDITS: list[tuple[str, str, str]] = [
    ("single-quotes", '"language"', "'language'"),
    ("leading-zero-number", '"beam_size": 5', '"beam_size": 05'),
    ("plus-sign-number", '"beam_size": 5', '"beam_size": +5'),
    ("bare-decimal-point", '"beam_size": 5', '"beam_size": 5.'),
    ("hex-number", '"beam_size": 5', '"beam_size": 0x5'),
    ("nan", '"temperature": 0.0', '"temperature": NaN'),
    ("infinity", '"temperature": 0.0', '"temperature": Infinity'),
    ("minus-infinity", '"temperature": 0.0', '"temperature": -Infinity'),
    ("number-overflows-double", '"temperature": 0.0', '"temperature": 1e400'),
    ("integer-above-ijson", '"beam_size": 5', f'"beam_size": {2**53}'),
    ("integer-below-ijson", '"beam_size": 5', f'"beam_size": {-(2**53)}'),
    ("integer-5000-digits", '"beam_size": 5', '"beam_size": ' + "9" * 5000),
    ("duplicate-top-level-member", '"version": 7', '"version": 7, "version": 7'),
    ("duplicate-member-in-config", '"beam_size": 5', '"beam_size": 5, "beam_size": 5'),
    ("duplicate-member-by-escape", '"version": 7', '"version": 7, "versio\\u006e": 7'),
    ("lone-surrogate-in-value", '"en"', '"\\ud800"'),
    ("lone-surrogate-in-member-name", '"language"', '"\\udc00language"'),
    ("reversed-surrogate-pair", '"en"', '"\\ude00\\ud83d"'),
    ("bad-escape", '"en"', '"\\x41"'),
    ("short-unicode-escape", '"en"', '"\\u00e"'),
    ("raw-control-character", '"en"', '"e\tn"'),
    ("raw-newline-in-string", '"en"', '"e\nn"'),
]
# Byte sequences that are not UTF-8, put in place of a string's text.
_NOT_UTF8: list[tuple[str, bytes]] = [
    ("not-utf8", b"\xff"),
    ("overlong-utf8", b"\xc1\xa1"),
    ("utf8-encoded-surrogate", b"\xed\xa0\x80"),
    ("truncated-utf8", b"\xe2\x82"),
]


def _nest_list(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _bad_ciphertexts(secret: dict[str, str]) -> list[tuple[str, Any]]:
    s = secret
    return [
        ("other-algorithm", {**s, "encrypted": "AES-128-GCM"}),
        ("algorithm-lowercase", {**s, "encrypted": "aes-256-gcm"}),
        ("algorithm-true", {**s, "encrypted": True}),
        ("only-encrypted", {"encrypted": "AES-256-GCM"}),
        ("missing-nonce", {k: v for k, v in s.items() if k != "nonce"}),
        ("missing-key-id", {k: v for k, v in s.items() if k != "key_id"}),
        ("extra-member", {**s, "tag": "AAAA"}),
        ("key-id-uppercase", {**s, "key_id": s["key_id"].upper()}),
        ("key-id-short", {**s, "key_id": s["key_id"][:15]}),
        ("key-id-number", {**s, "key_id": 5}),
        ("nonce-16-bytes", {**s, "nonce": base64.b64encode(bytes(16)).decode()}),
        ("nonce-unpadded", {**s, "nonce": base64.b64encode(bytes(11)).decode().rstrip("=")}),
        ("nonce-url-safe", {**s, "nonce": "____________AAAA"[:16]}),
        ("nonce-number", {**s, "nonce": 12}),
        ("ciphertext-15-bytes", {**s, "ciphertext": base64.b64encode(bytes(15)).decode()}),
        (
            "ciphertext-with-newline",
            {**s, "ciphertext": s["ciphertext"][:8] + "\n" + s["ciphertext"][8:]},
        ),
        (
            "ciphertext-non-canonical-bits",
            {**s, "ciphertext": base64.b64encode(bytes(17)).decode()[:-3] + "B=="},
        ),
        (
            "ciphertext-unpadded",
            {**s, "ciphertext": base64.b64encode(bytes(17)).decode().rstrip("=")},
        ),
        ("ciphertext-null", {**s, "ciphertext": None}),
    ]


def _bad_signature_texts(sig: str) -> list[tuple[str, str]]:
    raw = base64.b64decode(sig)
    last_char = sig[-3]  # 64 bytes: 86 characters, the last carrying 2 bits, then "=="
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    non_canonical = alphabet[alphabet.index(last_char) | 1]
    return [
        ("not-base64", "not base64!"),
        ("unpadded", sig.rstrip("=")),
        ("extra-padding", sig + "=="),
        ("line-break", sig[:44] + "\n" + sig[44:]),
        ("space", sig[:44] + " " + sig[44:]),
        ("trailing-newline", sig + "\n"),
        ("non-canonical-trailing-bits", sig[:-3] + non_canonical + "=="),
        ("url-safe-alphabet", base64.urlsafe_b64encode(raw).decode()),
        ("63-bytes", base64.b64encode(raw[:63]).decode()),
        ("65-bytes", base64.b64encode(raw + b"\x00").decode()),
        ("hex", raw.hex()),
        ("non-ascii", sig[:-3] + "\u00e9=="),
    ]


def tombstone_cases(ctx: Ctx) -> list[Case]:
    """Tombstones (docs/protocol.md, "Tombstone"): ``"retired": true``, empty config."""
    E = "envelope"
    resign = ctx.sign_doc
    env = ctx.envelope_doc
    tomb = ctx.envelope(version=8, config={}, retired=True)
    return [
        accept("tombstone", E, tomb),
        accept("tombstone-after-config", E, tomb, last=[EPOCH, 7]),
        refuse("tombstone-with-config", E, resign(env(version=8, retired=True)), "malformed"),
        refuse(
            "retired-not-true", E, resign(env(version=8, config={}, retired=False)), "malformed"
        ),
        refuse("retired-string", E, resign(env(version=8, config={}, retired="true")), "malformed"),
        refuse("retired-one", E, resign(env(version=8, config={}, retired=1)), "malformed"),
        refuse("tombstone-duplicate", E, tomb, "duplicate", last=[EPOCH, 8]),
        refuse("tombstone-rollback", E, tomb, "rollback", last=[EPOCH, 9]),
        refuse(
            "tombstone-unsigned",
            E,
            dumps({k: v for k, v in json.loads(tomb).items() if k != "signature"}),
            "unsigned",
        ),
        refuse(
            "tombstone-retired-added-after-signing",
            E,
            dumps({**json.loads(ctx.envelope(version=8, config={})), "retired": True}),
            "bad_signature",
        ),
        refuse(
            "tombstone-retired-removed",
            E,
            dumps({k: v for k, v in json.loads(tomb).items() if k != "retired"}),
            "bad_signature",
        ),
        refuse(
            "tombstone-other-service",
            E,
            ctx.envelope(service="orchestrator", version=8, config={}, retired=True),
            "service_mismatch",
        ),
    ]


# --- freshness records ----------------------------------------------------------------


def freshness_cases(ctx: Ctx) -> list[Case]:
    """Records on ``config/freshness/<service>``: shape, signature, then the time rules.

    ``prior`` records are offered first (each at its ``at`` time and accepted), then the
    record under test at ``now``; ``skew_s`` is the verifier's allowed skew."""
    F = "freshness"
    now = t(ISSUED + timedelta(seconds=10))
    rec = ctx.record()
    rdoc = json.loads(rec)
    unsigned = {k: v for k, v in rdoc.items() if k != "signature"}
    resign = ctx.sign_doc
    later = ctx.record(issued_at=ISSUED + timedelta(seconds=30))
    common = {"now": now, "skew_s": 30}
    return [
        accept("record-valid", F, rec, **common),
        accept("record-version-0", F, ctx.record(version=0, envelope_sha256=None), **common),
        accept(
            "record-newer-than-kept",
            F,
            later,
            prior=[{"message": rec, "at": now}],
            now=t(ISSUED + timedelta(seconds=40)),
            skew_s=30,
        ),
        accept(
            "record-same-time-other-bytes",
            F,
            ctx.record(version=8),
            prior=[{"message": rec, "at": now}],
            **common,
        ),
        accept(
            "record-future-within-skew",
            F,
            ctx.record(issued_at=ISSUED + timedelta(seconds=40)),
            **common,
        ),
        accept(
            "record-just-before-expiry",
            F,
            rec,
            now=t(ISSUED + timedelta(seconds=120) - timedelta(microseconds=1)),
            skew_s=30,
        ),
        refuse(
            "record-expired", F, rec, "expired", now=t(ISSUED + timedelta(seconds=121)), skew_s=30
        ),
        refuse(
            "record-expired-at-expires-at",
            F,
            rec,
            "expired",
            now=t(ISSUED + timedelta(seconds=120)),
            skew_s=30,
        ),
        refuse(
            "record-not-yet-valid",
            F,
            ctx.record(issued_at=ISSUED + timedelta(seconds=40, microseconds=1)),
            "not_yet_valid",
            **common,
        ),
        refuse(
            "record-rollback",
            F,
            rec,
            "record_rollback",
            prior=[{"message": later, "at": t(ISSUED + timedelta(seconds=31))}],
            now=t(ISSUED + timedelta(seconds=32)),
            skew_s=30,
        ),
        refuse(
            "record-duplicate",
            F,
            rec,
            "record_duplicate",
            prior=[{"message": rec, "at": now}],
            **common,
        ),
        refuse(
            "record-too-large",
            F,
            resign({**unsigned, "service": SERVICE}).replace("{", "{" + " " * 4096, 1),
            "too_large",
            **common,
        ),
        refuse("record-not-json", F, rec[:-2], "malformed", **common),
        refuse("record-unsigned", F, dumps(unsigned), "unsigned", **common),
        refuse(
            "record-format-2", F, resign({**unsigned, "format": 2}), "unsupported_format", **common
        ),
        refuse("record-extra-member", F, resign({**unsigned, "extra": 1}), "malformed", **common),
        refuse(
            "record-missing-type",
            F,
            resign({k: v for k, v in unsigned.items() if k != "type"}),
            "malformed",
            **common,
        ),
        refuse(
            "record-type-envelope",
            F,
            resign({**unsigned, "type": "envelope"}),
            "malformed",
            **common,
        ),
        refuse(
            "record-version-0-with-digest",
            F,
            resign({**unsigned, "version": 0}),
            "malformed",
            **common,
        ),
        refuse(
            "record-null-digest",
            F,
            resign({**unsigned, "envelope_sha256": None}),
            "malformed",
            **common,
        ),
        refuse(
            "record-digest-uppercase",
            F,
            resign({**unsigned, "envelope_sha256": unsigned["envelope_sha256"].upper()}),
            "malformed",
            **common,
        ),
        refuse(
            "record-digest-short",
            F,
            resign({**unsigned, "envelope_sha256": unsigned["envelope_sha256"][:63]}),
            "malformed",
            **common,
        ),
        refuse(
            "record-epoch-at-2^48",
            F,
            resign({**unsigned, "epoch": 2**48}),
            "out_of_range",
            **common,
        ),
        refuse(
            "record-version-float", F, resign({**unsigned, "version": 7.5}), "malformed", **common
        ),
        refuse(
            "record-expires-equals-issued",
            F,
            resign({**unsigned, "expires_at": unsigned["issued_at"]}),
            "malformed",
            **common,
        ),
        refuse(
            "record-expires-before-issued",
            F,
            resign({**unsigned, "expires_at": t(ISSUED - timedelta(seconds=1))}),
            "malformed",
            **common,
        ),
        refuse(
            "record-issued-at-offset",
            F,
            resign({**unsigned, "issued_at": "2026-11-23T12:00:00.000000+00:00"}),
            "malformed",
            **common,
        ),
        refuse(
            "record-expires-at-millis",
            F,
            resign({**unsigned, "expires_at": "2026-11-23T12:02:00.000Z"}),
            "malformed",
            **common,
        ),
        refuse(
            "record-signature-unpadded",
            F,
            dumps({**unsigned, "signature": rdoc["signature"].rstrip("=")}),
            "bad_signature",
            **common,
        ),
        refuse("record-unknown-key", F, ctx.record(key=ctx.untrusted), "unknown_key", **common),
        refuse(
            "record-tampered",
            F,
            rec.replace('"version": 7', '"version": 9'),
            "bad_signature",
            **common,
        ),
        refuse(
            "record-other-service",
            F,
            ctx.record(service="orchestrator"),
            "service_mismatch",
            **common,
        ),
        refuse("record-is-an-envelope", F, ctx.envelope(), "malformed", **common),
        refuse(
            "envelope-signature-on-record",
            F,
            dumps({**unsigned, "signature": json.loads(ctx.envelope())["signature"]}),
            "bad_signature",
            **common,
        ),
    ]


def fresh_envelope_cases(ctx: Ctx) -> list[Case]:
    """Envelopes checked against freshness records kept (rules 11-14)."""
    E = "envelope"
    valid = ctx.envelope()
    rec = ctx.record(valid)
    at = t(ISSUED + timedelta(seconds=5))
    now = t(ISSUED + timedelta(seconds=10))
    kept = [{"message": rec, "at": at}]
    newer_rec = ctx.record(ctx.envelope(version=8), version=8)
    return [
        accept("fresh-named-envelope", E, valid, records=kept, now=now, skew_s=30),
        accept(
            "fresh-newer-than-record", E, ctx.envelope(version=8), records=kept, now=now, skew_s=30
        ),
        accept(
            "fresh-issued-at-within-skew",
            E,
            ctx.envelope(version=8, issued_at=ISSUED + timedelta(seconds=40)),
            records=kept,
            now=now,
            skew_s=30,
        ),
        accept(
            "fresh-record-version-0",
            E,
            valid,
            records=[{"message": ctx.record(version=0, envelope_sha256=None), "at": at}],
            now=now,
            skew_s=30,
        ),
        refuse(
            "fresh-stale",
            E,
            valid,
            "stale",
            records=[{"message": newer_rec, "at": at}],
            now=now,
            skew_s=30,
        ),
        refuse(
            "fresh-stale-after-record-expired",
            E,
            valid,
            "stale",
            records=[{"message": newer_rec, "at": at}],
            now=t(ISSUED + timedelta(hours=1)),
            skew_s=30,
        ),
        refuse(
            "fresh-stale-older-epoch",
            E,
            ctx.envelope(version=9, epoch=EPOCH - 1),
            "stale",
            records=kept,
            now=now,
            skew_s=30,
        ),
        refuse(
            "fresh-digest-mismatch",
            E,
            json.dumps(json.loads(valid), indent=1),
            "digest_mismatch",
            records=kept,
            now=now,
            skew_s=30,
        ),
        refuse(
            "fresh-digest-mismatch-resigned",
            E,
            ctx.envelope(config={"beam_size": 1}),
            "digest_mismatch",
            records=kept,
            now=now,
            skew_s=30,
        ),
        refuse(
            "fresh-issued-in-future",
            E,
            ctx.envelope(version=8, issued_at=ISSUED + timedelta(seconds=40, microseconds=1)),
            "bad_issued_at",
            records=kept,
            now=now,
            skew_s=30,
        ),
        refuse(
            "fresh-issued-in-future-no-record",
            E,
            ctx.envelope(issued_at=ISSUED + timedelta(days=365 * 200)),
            "bad_issued_at",
            now=now,
            skew_s=30,
        ),
        refuse(
            "fresh-issued-after-record",
            E,
            ctx.envelope(issued_at=ISSUED + timedelta(seconds=31)),
            "bad_issued_at",
            records=[
                {
                    "message": ctx.record(ctx.envelope(issued_at=ISSUED + timedelta(seconds=31))),
                    "at": at,
                }
            ],
            now=t(ISSUED + timedelta(seconds=60)),
            skew_s=30,
        ),
        refuse(
            "fresh-rollback-before-stale",
            E,
            ctx.envelope(version=6),
            "rollback",
            last=[EPOCH, 7],
            records=[{"message": newer_rec, "at": at}],
            now=now,
            skew_s=30,
        ),
    ]


# --- the other message kinds ------------------------------------------------------------


def report_request_cases(ctx: Ctx) -> list[Case]:
    """``config/report/<service>``: unsigned, payload reserved and ignored: always acted on."""
    R = "report_request"
    return [
        accept("report-request", R, "{}"),
        accept("report-request-empty", R, ""),
        accept("report-request-ignored-payload", R, '{"anything": [1, 2]}'),
        accept("report-request-not-json", R, "not json"),
    ]


def name_cases(ctx: Ctx) -> list[Case]:
    """Service and instance names (one topic level): ``[A-Za-z0-9][A-Za-z0-9_-]{0,63}``."""
    N = "name"
    good = ["stt", "a", "0", "A-b_9", "x" * 64, "orchestrator"]
    bad = [
        "",
        "x" * 65,
        "-stt",
        "_stt",
        "stt.v2",
        "stt/x",
        "stt+",
        "stt#",
        "st t",
        "stt*",
        "st\u00e9",
        "stt\n",
        "\uff53tt",
        "stt\u0000",
        "..",
        "$SYS",
    ]
    return [accept(f"name-ok-{i}", N, name) for i, name in enumerate(good)] + [
        refuse(f"name-bad-{i}", N, name, "invalid_name") for i, name in enumerate(bad)
    ]


def trust_store_cases(ctx: Ctx) -> list[Case]:
    """Trust-store files: concatenated PEM SubjectPublicKeyInfo blocks, Ed25519 only."""
    T = "trust_store"
    one = ctx.trusted.public_pem().decode()
    two = ctx.untrusted.public_pem().decode()
    ec_key = (
        ec.derive_private_key(12345, ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    x25519 = (
        X25519PrivateKey.from_private_bytes(bytes(32))
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    body = one.splitlines()[1]
    return [
        accept("trust-one-key", T, one, key_ids=[ctx.trusted.key_id]),
        accept(
            "trust-two-keys",
            T,
            one + two,
            key_ids=sorted([ctx.trusted.key_id, ctx.untrusted.key_id]),
        ),
        accept(
            "trust-text-around",
            T,
            "# manager key\n" + one + "\nold key:\n" + two,
            key_ids=sorted([ctx.trusted.key_id, ctx.untrusted.key_id]),
        ),
        accept("trust-same-key-twice", T, one + one, key_ids=[ctx.trusted.key_id]),
        refuse("trust-empty", T, "", "key_file"),
        refuse("trust-no-pem", T, "not a key\n", "key_file"),
        refuse("trust-private-key", T, ctx.trusted.private_pem().decode(), "key_file"),
        refuse("trust-ec-key", T, ec_key, "key_file"),
        refuse("trust-ec-key-beside-good", T, one + ec_key, "key_file"),
        refuse("trust-x25519-key", T, x25519, "key_file"),
        refuse("trust-corrupt-base64", T, one.replace(body, body[:-4] + "!!!!"), "key_file"),
        refuse("trust-truncated-der", T, one.replace(body, body[:20]), "key_file"),
    ]


def secret_cases(ctx: Ctx) -> list[Case]:
    """Decrypting a ciphertext object at ``path`` for ``service`` with ``data_key_hex``."""
    S = "secret"
    s = ctx.secret
    ok = {"service": SERVICE, "path": "/api_key"}
    return [
        accept("secret-decrypts", S, dumps(s), plaintext="sk-test-secret", **ok),
        refuse("secret-moved-field", S, dumps(s), "secret_decrypt", service=SERVICE, path="/other"),
        refuse(
            "secret-other-service",
            S,
            dumps(s),
            "secret_decrypt",
            service="orchestrator",
            path="/api_key",
        ),
        refuse(
            "secret-tampered-tag",
            S,
            dumps(
                {
                    **s,
                    "ciphertext": base64.b64encode(
                        base64.b64decode(s["ciphertext"])[:-1] + b"\x00"
                    ).decode(),
                }
            ),
            "secret_decrypt",
            **ok,
        ),
        refuse(
            "secret-other-nonce",
            S,
            dumps({**s, "nonce": base64.b64encode(bytes(12)).decode()}),
            "secret_decrypt",
            **ok,
        ),
        refuse(
            "secret-unknown-data-key", S, dumps({**s, "key_id": "0" * 16}), "secret_decrypt", **ok
        ),
        refuse(
            "secret-bad-shape", S, dumps({**s, "encrypted": "AES-128-GCM"}), "secret_decrypt", **ok
        ),
    ]


# --- applied reports (each instance signs its own) ----------------------------------------

REPORT_INSTANCE = "host1-stt"


def report_cases(ctx: Ctx) -> list[Case]:
    """Applied reports on ``config/applied/<service>/<instance>`` (docs/protocol.md,
    "Report signature"): the signature's checks 1-6, then the manager's pin (7) and replay
    floor (8). ``instance`` is the topic's instance; ``pinned`` the key the manager pinned
    for it (standard base64; null: none yet, the key is pinned on first use); ``high`` the
    time of its latest genuine report (null: none)."""
    mine, _ = _key(3)
    other, other_doc = _key(4)

    def b64(key: SigningKey) -> str:
        raw = key.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()

    report: dict[str, Any] = {
        "instance": REPORT_INSTANCE, "service": SERVICE, "status": "applied", "version": 7,
        "epoch": EPOCH, "source": "broker", "reason": None, "detail": None,
        "attempted_version": 7, "attempted_epoch": EPOCH, "freshness": "fresh",
        "time": t(ISSUED + timedelta(seconds=5)),
    }  # fmt: skip
    R = "report"
    ok = {"instance": REPORT_INSTANCE, "pinned": b64(mine), "high": report["time"]}

    def signed(key: SigningKey = mine, **changes: Any) -> str:
        return sign_report({**report, **changes}, key).decode()

    valid = signed()
    doc = json.loads(valid)
    drop = object()

    def edited(**changes: Any) -> str:
        """The valid report with members changed (or removed: ``drop``) after signing."""
        return dumps({k: v for k, v in {**doc, **changes}.items() if v is not drop})

    older = t(ISSUED + timedelta(seconds=1))
    return [
        accept("report-valid", R, valid, **ok),
        accept("report-first-use", R, signed(other), **{**ok, "pinned": None, "high": None}),
        accept("report-newer", R, signed(version=8, time=t(ISSUED + timedelta(seconds=6))), **ok),
        accept("report-offline-will-older", R,
               signed(status="offline", reason="connection_lost", time=older), **ok),
        accept("report-unicode-detail", R, signed(status="failed", detail="modèle absent ✓"),
               **ok),
        accept("report-extra-member", R, signed(host_note="added by a later release"), **ok),
        accept("report-same-time-again", R, valid, **ok),
        refuse("report-too-large", R, valid, "too_large", **ok, max_bytes=100),
        refuse("report-not-json", R, valid[:-1], "malformed", **ok),
        # A report is "malformed" where an envelope is "too_deep" (one reason for parsing).
        refuse("report-too-deep", R, signed(deep=_nest(MAX_DEPTH)), "malformed", **ok),
        refuse("report-number-outside-i-json", R, valid.replace('"version": 7',
               '"version": 9007199254740993'), "malformed", **ok),
        refuse("report-not-an-object", R, "[" + valid + "]", "malformed", **ok),
        refuse("report-duplicate-member", R, valid[:-1] + ', "status": "rejected"}',
               "malformed", **ok),
        refuse("report-nan", R, valid.replace('"version": 7', '"version": NaN'), "malformed",
               **ok),
        refuse("report-time-other-form", R, edited(time="2026-11-23 12:00:05Z"), "malformed",
               **ok),
        refuse("report-missing-status", R, edited(status=drop), "malformed", **ok),
        refuse("report-instance-not-a-string", R, edited(instance=7), "malformed", **ok),
        refuse("report-public-key-missing", R, edited(public_key=drop), "malformed", **ok),
        refuse("report-signature-not-a-string", R, edited(signature=7), "malformed", **ok),
        refuse("report-unsigned", R, edited(signature=drop), "unsigned", **ok),
        refuse("report-empty-signature", R, edited(signature=""), "unsigned", **ok),
        refuse("report-legacy-unsigned", R, dumps(report), "unsigned", **ok),
        refuse("report-tampered-status", R, edited(status="rejected"), "bad_signature", **ok),
        refuse("report-tampered-version", R, edited(version=8), "bad_signature", **ok),
        refuse("report-public-key-swapped", R,
               edited(public_key=b64(other), key_id=other_doc["key_id"]), "bad_signature", **ok),
        refuse("report-key-id-not-of-public-key", R, edited(key_id=other_doc["key_id"]),
               "bad_signature", **ok),
        refuse("report-public-key-short", R,
               edited(public_key=base64.b64encode(b"x" * 31).decode()), "bad_signature", **ok),
        refuse("report-signature-not-base64", R, edited(signature="!" * 88), "bad_signature",
               **ok),
        refuse("report-signature-unpadded", R, edited(signature=doc["signature"].rstrip("=")),
               "bad_signature", **ok),
        refuse("report-signature-other-key", R,
               edited(signature=json.loads(signed(other))["signature"]), "bad_signature", **ok),
        refuse("report-other-instance-id", R, signed(instance="host2-stt"),
               "identity_mismatch", **ok),
        refuse("report-other-service", R, signed(service="orchestrator"), "identity_mismatch",
               **ok),
        refuse("report-other-key-for-this-instance", R, signed(other), "key_mismatch", **ok),
        refuse("report-replayed-older", R,
               signed(version=6, time=t(ISSUED + timedelta(seconds=4, microseconds=999999))),
               "replayed", **ok),
        refuse("report-replayed-older-rejected", R,
               signed(status="rejected", reason="bad_signature", time=older), "replayed", **ok),
    ]  # fmt: skip


KINDS: list[Callable[[Ctx], list[Case]]] = [
    envelope_cases,
    tombstone_cases,
    freshness_cases,
    fresh_envelope_cases,
    report_request_cases,
    name_cases,
    trust_store_cases,
    secret_cases,
    report_cases,
]


def build() -> dict[str, Any]:
    trusted, trusted_doc = _key(1)
    untrusted, untrusted_doc = _key(2)
    master = bytes(range(32))
    data_key = derive_data_key(master, SERVICE)
    nonce = bytes(range(12))
    path = "/api_key"
    ct = AESGCM(data_key.key).encrypt(nonce, b"sk-test-secret", _aad(SERVICE, path))
    secret = {
        "encrypted": "AES-256-GCM",
        "key_id": data_key.key_id,
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ct).decode(),
    }
    config = {"beam_size": 5, "language": "en", "temperature": 0.0, "api_key": secret}
    ctx = Ctx(trusted, untrusted, secret, config)
    cases = [case for kind in KINDS for case in kind(ctx)]
    names = [c["name"] for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SystemExit(f"duplicate case names: {duplicates}")
    return {
        "comment": "Generated by tests/vectors/generate.py; see docs/protocol.md, 'Test vectors'",
        "service": SERVICE,
        "max_bytes": 262144,
        "max_depth": MAX_DEPTH,
        "keys": {"trusted": trusted_doc, "untrusted": untrusted_doc},
        "secrets": {
            "master_key_hex": master.hex(),
            "stt_data_key_hex": data_key.key.hex(),
            "stt_data_key_id": data_key.key_id,
            "path": path,
            "plaintext": "sk-test-secret",
            "object": secret,
        },
        "reasons": sorted({c["reason"] for c in cases if c["reason"]}),
        "cases": cases,
    }


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n")
    KEYSETS_OUT.write_text(json.dumps(keyset_vectors(), indent=2) + "\n")


def keyset_vectors() -> dict[str, Any]:
    """tests/vectors/keysets.json: the root-signed keyset (docs/protocol.md, *Keyset*)."""
    trusted, trusted_doc = _key(1)
    untrusted, untrusted_doc = _key(2)
    root, root_doc = _key(3)
    config = {"beam_size": 5, "language": "en", "temperature": 0.0}

    def _resign(doc: dict[str, Any], key: SigningKey) -> str:
        doc = {k: v for k, v in doc.items() if k != "signature"}
        doc["signature"] = base64.b64encode(key.sign(canonical_bytes(doc))).decode()
        return json.dumps(doc)

    now = "2026-11-23T12:30:00.000000Z"
    day = timedelta(days=1)

    def keyset(**kw: Any) -> str:
        args: dict[str, Any] = {
            "version": 2,
            "keys": [trusted.public_key],
            "root": root,
            "expires_in": day,
            "issued_at": ISSUED,
        }
        args.update(kw)
        return sign_keyset(**args).decode()

    current = keyset(version=1, keys=[trusted.public_key, untrusted.public_key])
    valid = keyset()
    doc = json.loads(valid)
    entry = doc["keys"][0]

    def case(name: str, message: str, expect: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "message": message, "current": current, "expect": expect, **extra}

    cases = [
        case("valid", valid, "ok", key_ids=[trusted.key_id], void_epochs_from=None),
        case(
            "valid-two-keys",
            keyset(version=3, keys=[trusted.public_key, untrusted.public_key]),
            "ok",
            key_ids=sorted([trusted.key_id, untrusted.key_id]),
            void_epochs_from=None,
        ),
        case(
            "valid-floor-reset",
            keyset(void_epochs_from=1796000000),
            "ok",
            key_ids=[trusted.key_id],
            void_epochs_from=1796000000,
        ),
        {
            "name": "valid-first",
            "message": valid,
            "current": None,
            "expect": "ok",
            "key_ids": [trusted.key_id],
            "void_epochs_from": None,
        },
        case("duplicate", current, "keyset_duplicate"),
        case("rollback", keyset(version=1), "keyset_rollback"),
        case("expired", keyset(issued_at=ISSUED - 2 * day), "keyset_expired"),
        case("signed-by-another-root", keyset(root=untrusted), "unknown_key"),
        case("tampered", valid.replace('"version": 2', '"version": 9'), "bad_signature"),
        case(
            "unsigned", json.dumps({k: v for k, v in doc.items() if k != "signature"}), "unsigned"
        ),
        case("unsupported-format", _resign({**doc, "format": 2}, root), "unsupported_format"),
        case("extra-member", _resign({**doc, "admin": True}, root), "malformed"),
        case("wrong-type", _resign({**doc, "type": "freshness"}, root), "malformed"),
        case("no-keys", _resign({**doc, "keys": []}, root), "malformed"),
        case(
            "key-id-not-of-its-key",
            _resign({**doc, "keys": [{**entry, "key_id": untrusted.key_id}]}, root),
            "malformed",
        ),
        case("same-key-twice", _resign({**doc, "keys": [entry, entry]}, root), "malformed"),
        case(
            "public-key-not-canonical-base64",
            _resign(
                {**doc, "keys": [{**entry, "public_key": entry["public_key"].rstrip("=")}]}, root
            ),
            "malformed",
        ),
        case("version-zero", _resign({**doc, "version": 0}, root), "malformed"),
        case("version-out-of-range", _resign({**doc, "version": 2**48}, root), "out_of_range"),
        case("void-not-integer", _resign({**doc, "void_epochs_from": "1"}, root), "malformed"),
        case(
            "expires-before-issued",
            _resign({**doc, "expires_at": doc["issued_at"]}, root),
            "malformed",
        ),
        case(
            "time-with-offset",
            _resign({**doc, "issued_at": "2026-11-23T12:00:00+00:00"}, root),
            "malformed",
        ),
        case("not-json", valid[:-1], "malformed"),
        case("too-large", valid + " " * 16384, "too_large"),
    ]

    def envelope(key: SigningKey, epoch: int) -> str:
        return sign_envelope(
            service="stt", version=7, epoch=epoch, config=config, key=key, issued_at=ISSUED
        ).decode()

    reset = keyset(void_epochs_from=1796000000)
    envelopes = [
        {
            "name": "listed-key",
            "keyset": valid,
            "message": envelope(trusted, 1795000000),
            "expect": "ok",
        },
        {
            "name": "key-not-in-keyset",
            "keyset": valid,
            "message": envelope(untrusted, 1795000000),
            "expect": "unknown_key",
        },
        {
            "name": "void-epoch",
            "keyset": reset,
            "message": envelope(trusted, 1796000000),
            "expect": "void_epoch",
        },
        {
            "name": "void-position-no-longer-a-floor",
            "keyset": reset,
            "message": envelope(trusted, 1795000000),
            "last": [1796000005, 9],
            "expect": "ok",
        },
        {
            "name": "below-the-void-range-still-ordered",
            "keyset": reset,
            "message": envelope(trusted, 1795000000),
            "last": [1795000001, 1],
            "expect": "rollback",
        },
    ]
    out = {
        "comment": "Generated by tests/vectors/generate.py; see docs/protocol.md, Keyset",
        "now": now,
        "max_depth": MAX_DEPTH,
        "service": "stt",
        "keys": {"root": root_doc, "trusted": trusted_doc, "untrusted": untrusted_doc},
        "cases": cases,
        "envelopes": envelopes,
    }
    return out


if __name__ == "__main__":
    main()
