"""The one place that builds and parses config topic names.

``config/updated/<service>``             signed config envelopes (retained, QoS 1)
``config/applied/<service>/<instance>``  what each instance applied (retained)
``config/freshness/<service>``           the signed freshness record (retained, QoS 1)
``config/report/<service>``              the manager asks instances to report again
``config/keyset``                        the root-signed keyset (retained, QoS 1)
"""

from __future__ import annotations

import re
from typing import Final

from ._exceptions import InvalidName

__all__ = [
    "APPLIED_PREFIX",
    "KEYSET_TOPIC",
    "NAME_ALPHABET",
    "REPORT_REQUEST_PREFIX",
    "UPDATED_PREFIX",
    "applied_topic",
    "applied_wildcard",
    "freshness_topic",
    "parse_applied_topic",
    "parse_updated_topic",
    "report_request_topic",
    "sanitize_name",
    "updated_topic",
    "validate_name",
]

UPDATED_PREFIX: Final = "config/updated/"
APPLIED_PREFIX: Final = "config/applied/"
FRESHNESS_PREFIX: Final = "config/freshness/"
REPORT_REQUEST_PREFIX: Final = "config/report/"
KEYSET_TOPIC: Final = "config/keyset"
"""The one exact topic of the root-signed keyset (one per broker, for every service)."""

NAME_ALPHABET: Final = "A-Z a-z 0-9 '_' '-'"
"""The characters a service, instance or session name may use (see :func:`validate_name`)."""

# Letters, digits, '_' and '-'; starts with a letter or digit; 1..64 characters. A name is
# one topic level that must mean the same on every broker, so everything any broker reads
# as syntax is out: the MQTT wildcards '+' '#' and separator '/', and '.' and '*' (a level
# separator and a wildcard in AMQP-style routing keys: RabbitMQ's MQTT plugin maps '/' to
# '.'), spaces, NUL and anything a shell or an ACL pattern could misread.
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_UNSAFE_RUN: Final = re.compile(r"[^A-Za-z0-9_-]+")


def _why(name: str) -> str:
    if not name:
        return "it is empty"
    if len(name) > 64:
        return f"it has {len(name)} characters (at most 64)"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "_-"))})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        return f"it contains {shown}"
    return "it must start with a letter or digit"


def validate_name(name: str, kind: str = "service") -> str:
    """Return ``name`` if it is a valid service/instance/session name, else raise InvalidName.

    Allowed: 1-64 characters from ``A-Z a-z 0-9 _ -``, starting with a letter or digit.
    """
    if not isinstance(name, str):
        raise InvalidName(f"invalid {kind} name {name!r}: not a string")
    if not _NAME_RE.fullmatch(name):
        raise InvalidName(
            f"invalid {kind} name {name!r}: {_why(name)}; use 1-64 characters from "
            f"{NAME_ALPHABET}, starting with a letter or digit (no '.', '/', '*', '+', '#' "
            "or spaces: brokers read them as topic separators or wildcards)"
        )
    return name


def sanitize_name(text: str, fallback: str = "instance") -> str:
    """A valid name made from ``text``: every run of other characters becomes one '-'.

    For names derived from the outside world (host names such as ``web1.example.com``,
    file names); the result always passes :func:`validate_name`.
    """
    name = _UNSAFE_RUN.sub("-", text).strip("-_")[:64].rstrip("-_")
    if not name:
        name = validate_name(fallback, "fallback")
    return validate_name(name, "derived")


def updated_topic(service: str) -> str:
    """Topic carrying the signed config of ``service``."""
    return UPDATED_PREFIX + validate_name(service)


def freshness_topic(service: str) -> str:
    """Topic carrying the signed freshness record of ``service``."""
    return FRESHNESS_PREFIX + validate_name(service)


def applied_topic(service: str, instance: str) -> str:
    """Topic carrying the applied report of one instance of ``service``."""
    return f"{APPLIED_PREFIX}{validate_name(service)}/{validate_name(instance, 'instance')}"


def report_request_topic(service: str) -> str:
    """Topic on which the manager asks every instance of ``service`` to publish its applied
    report again (docs/protocol.md, *Report request*)."""
    return REPORT_REQUEST_PREFIX + validate_name(service)


def applied_wildcard(service: str | None = None) -> str:
    """Subscription filter for applied reports of one service, or of all services."""
    if service is None:
        return APPLIED_PREFIX + "#"
    return f"{APPLIED_PREFIX}{validate_name(service)}/+"


def parse_updated_topic(topic: str) -> str:
    """Return the service named by a ``config/updated/<service>`` topic."""
    if not topic.startswith(UPDATED_PREFIX):
        raise InvalidName(f"not a config update topic: {topic!r}")
    return validate_name(topic[len(UPDATED_PREFIX) :])


def parse_applied_topic(topic: str) -> tuple[str, str]:
    """Return ``(service, instance)`` from a ``config/applied/<service>/<instance>`` topic."""
    if not topic.startswith(APPLIED_PREFIX):
        raise InvalidName(f"not an applied-report topic: {topic!r}")
    parts = topic[len(APPLIED_PREFIX) :].split("/")
    if len(parts) != 2:
        raise InvalidName(f"not an applied-report topic: {topic!r}")
    return validate_name(parts[0]), validate_name(parts[1], "instance")
