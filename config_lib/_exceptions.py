"""Exceptions raised by config_lib.

Every exception the library raises on purpose derives from :class:`ConfigLibError`::

    ConfigLibError
    ├── InvalidName              a service/instance name or topic is not allowed (also a ValueError)
    ├── KeyFileError             a key or trust-store file is missing, unreadable or malformed
    ├── EnvelopeError            a received envelope was refused; ``reason`` is a short code
    │   ├── EnvelopeTooLarge     the raw message is over the size limit (checked before parsing)
    │   ├── MalformedEnvelope    not UTF-8 JSON, or not the envelope's shape
    │   │   ├── OutOfRange       an epoch or version at or above 2^48
    │   │   ├── TooDeep          nested deeper than the protocol's limit (checked before parsing)
    │   │   └── BadCiphertext    an object with an ``encrypted`` member that is not a ciphertext
    │   ├── UnsupportedFormat    the ``format`` number is not one this library speaks
    │   ├── UnknownKey           the ``key_id`` is not in the trust store
    │   ├── BadSignature         the signature does not verify
    │   │   └── Unsigned         there is no signature at all
    │   ├── ServiceMismatch      the signed service is not the one expected (topic / subscriber)
    │   ├── StaleEnvelope        (epoch, version) is not newer than the last accepted one
    │   │   ├── Rollback         it is older: a replay or a rollback attempt
    │   │   ├── Duplicate        it is exactly the one already in force: ignore quietly
    │   │   └── Outdated         older than the newest version a fresh freshness record names
    │   ├── DigestMismatch       at the record's position but not the bytes the record names
    │   ├── BadIssuedAt          ``issued_at`` is in the future or disagrees with the record
    │   ├── FreshnessError       a freshness record was refused (``reason`` says why)
    │   ├── KeysetError          a keyset was refused (``reason`` says why)
    │   └── VoidEpoch            an epoch the root's floor reset declared void
    ├── ReportError              a received applied report is forged (``reason`` says why)
    ├── SecretError              a secret field could not be decrypted (tampered, moved, wrong key)
    ├── InvalidConfig            verified, but the values fail the service's model validation
    ├── NoConfig                 no valid config from the broker, the LKG file, env or defaults
    ├── NotAuthorised            the broker refused this MQTT user a connect, subscribe or publish
    └── LibraryStateError        a ConfigLibrary used outside ``async with`` or reused after close

Envelope and config failures carry a stable ``reason`` string (``"bad_signature"``...)
used for counters and applied reports.
"""

from __future__ import annotations

__all__ = [
    "BadCiphertext",
    "BadIssuedAt",
    "BadSignature",
    "ConfigLibError",
    "DigestMismatch",
    "Duplicate",
    "EnvelopeError",
    "EnvelopeTooLarge",
    "FreshnessError",
    "InvalidConfig",
    "InvalidName",
    "KeyFileError",
    "KeysetError",
    "LibraryStateError",
    "MalformedEnvelope",
    "NoConfig",
    "NotAuthorised",
    "OutOfRange",
    "Outdated",
    "ReportError",
    "Rollback",
    "SecretError",
    "ServiceMismatch",
    "ServiceRetired",
    "StaleEnvelope",
    "TooDeep",
    "UnknownKey",
    "Unsigned",
    "UnsupportedFormat",
    "VoidEpoch",
]


class ConfigLibError(Exception):
    """Base class of every error config_lib raises on purpose."""

    reason: str = "error"


class InvalidName(ConfigLibError, ValueError):
    """A service name, instance id or topic does not follow the naming rules."""

    reason = "invalid_name"


class KeyFileError(ConfigLibError):
    """A key or trust-store file is missing, unreadable or not what it should be."""

    reason = "key_file"


class EnvelopeError(ConfigLibError):
    """A received config envelope was refused."""

    reason = "invalid_envelope"


class EnvelopeTooLarge(EnvelopeError):
    """The raw message is larger than the configured limit."""

    reason = "too_large"


class MalformedEnvelope(EnvelopeError):
    """The message is not UTF-8 JSON or does not have the envelope's shape."""

    reason = "malformed"


class OutOfRange(MalformedEnvelope):
    """An ``epoch`` or ``version`` at or above 2^48 (a manager bug, or an attack on the
    replay floor: accepting it would lock the service out of every later config)."""

    reason = "out_of_range"


class TooDeep(MalformedEnvelope):
    """JSON nested deeper than the protocol allows (docs/protocol.md, "Nesting"); found by a
    scan of the text before any parsing, so a parser never recurses on hostile input."""

    reason = "too_deep"


class BadCiphertext(MalformedEnvelope):
    """An object in ``config`` with an ``encrypted`` member that is not exactly a
    ciphertext object this library can decrypt (unknown algorithm, extra or missing
    members, non-canonical base64, wrong nonce length): refused, never taken as a value."""

    reason = "bad_ciphertext"


class UnsupportedFormat(EnvelopeError):
    """The envelope's ``format`` is not one this library understands."""

    reason = "unsupported_format"


class UnknownKey(EnvelopeError):
    """The envelope names a signing key that is not in the trust store."""

    reason = "unknown_key"


class BadSignature(EnvelopeError):
    """The Ed25519 signature does not match the canonical content."""

    reason = "bad_signature"


class Unsigned(BadSignature):
    """The envelope carries no signature."""

    reason = "unsigned"


class ServiceMismatch(EnvelopeError):
    """The signed service name differs from the expected one (topic or subscriber)."""

    reason = "service_mismatch"


class StaleEnvelope(EnvelopeError):
    """The envelope's (epoch, version) is not newer than the last accepted one."""

    reason = "stale"


class Rollback(StaleEnvelope):
    """Older than the config in force: a replay or rollback attempt."""

    reason = "rollback"


class Duplicate(StaleEnvelope):
    """Exactly the (epoch, version) already in force; callers ignore it quietly."""

    reason = "duplicate"


class Outdated(StaleEnvelope):
    """Older than the newest (epoch, version) named by a valid, unexpired freshness record.

    A genuine but superseded envelope: typically a replayed retained message."""

    reason = "stale"


class DigestMismatch(EnvelopeError):
    """At the position a freshness record names, but not the envelope bytes it names."""

    reason = "digest_mismatch"


class BadIssuedAt(EnvelopeError):
    """``issued_at`` is later than now + skew, or than the freshness record allows."""

    reason = "bad_issued_at"


class FreshnessError(EnvelopeError):
    """A freshness record was refused; ``reason`` is the code (set per instance)."""

    reason = "freshness"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class KeysetError(EnvelopeError):
    """A keyset was refused: ``keyset_expired``, ``keyset_rollback`` or
    ``keyset_duplicate`` (the keyset in force again: ignored quietly)."""

    reason = "keyset"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class VoidEpoch(EnvelopeError):
    """An envelope or record at an epoch at or above the keyset's ``void_epochs_from``:
    the root-signed floor reset declared that range void (a bad, too high epoch)."""

    reason = "void_epoch"


class ServiceRetired(ConfigLibError):
    """A verified tombstone: the manager retired this service. Not an attack: the instance
    keeps its last config, reports ``retired`` and expects no further updates."""

    reason = "retired"

    def __init__(self, message: str, *, position: tuple[int, int]) -> None:
        super().__init__(message)
        self.position = position


class ReportError(ConfigLibError):
    """An applied report failed verification (docs/protocol.md, "Report signature"): it is
    shown as forged. ``reason`` is the code (set per instance): ``too_large``,
    ``malformed``, ``unsigned``, ``bad_signature``, ``identity_mismatch``, and at the
    manager ``key_mismatch`` and ``replayed``."""

    reason = "forged"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class SecretError(ConfigLibError):
    """A secret value could not be decrypted: tampered, moved to another field, or wrong key."""

    reason = "secret_decrypt"


class InvalidConfig(ConfigLibError):
    """A verified envelope's values fail validation against the service's model."""

    reason = "invalid_config"


class NoConfig(ConfigLibError):
    """Startup found no valid config: no signed one, and env/defaults fail the model."""

    reason = "no_config"


class NotAuthorised(ConfigLibError):
    """The broker refused the MQTT user: its credentials, or reading the config topic /
    writing the applied-report topic (an ACL). Never raised to the service: the library
    keeps its config and retries; it is ``ConfigLibrary.broker_error``, logged once and
    counted (``metrics.not_authorised``).

    ``operation`` is ``"connect"``, ``"subscribe"`` or ``"publish"``; ``topic`` the topic
    refused (None for connect). Brokers refuse differently: a CONNACK code (all), a SUBACK
    failure code (mosquitto with the dynamic-security plugin, EMQX...), or closing the
    connection (RabbitMQ's MQTT plugin, for a subscribe or a publish).
    """

    reason = "not_authorised"

    def __init__(self, message: str, *, operation: str, topic: str | None = None) -> None:
        super().__init__(message)
        self.operation = operation
        self.topic = topic


class LibraryStateError(ConfigLibError, RuntimeError):
    """A ConfigLibrary was used before ``async with``, or entered again after it closed."""

    reason = "state"
