"""The one place that builds and parses config topic names.

``config/updated/<service>``             signed config envelopes (retained, QoS 1)
``config/applied/<service>/<instance>``  what each instance applied (retained)
``config/freshness/<service>``           the signed freshness record (retained, QoS 1)
"""

from __future__ import annotations

import re
from typing import Final

from ._exceptions import InvalidName

__all__ = [
    "APPLIED_PREFIX",
    "UPDATED_PREFIX",
    "applied_topic",
    "applied_wildcard",
    "freshness_topic",
    "parse_applied_topic",
    "parse_updated_topic",
    "updated_topic",
    "validate_name",
]

UPDATED_PREFIX: Final = "config/updated/"
APPLIED_PREFIX: Final = "config/applied/"
FRESHNESS_PREFIX: Final = "config/freshness/"

# Letters, digits, '_', '.', '-'; starts with a letter or digit; 1..64 characters.
# This excludes MQTT wildcards ('+', '#'), the level separator '/', spaces, NUL and
# anything else a shell or an ACL pattern could misread.
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def validate_name(name: str, kind: str = "service") -> str:
    """Return ``name`` if it is a valid service/instance/session name, else raise InvalidName."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidName(
            f"invalid {kind} name {name!r}: use 1-64 characters from A-Z a-z 0-9 '_' '.' '-', "
            "starting with a letter or digit (no '/', '+', '#' or spaces)"
        )
    return name


def updated_topic(service: str) -> str:
    """Topic carrying the signed config of ``service``."""
    return UPDATED_PREFIX + validate_name(service)


def freshness_topic(service: str) -> str:
    """Topic carrying the signed freshness record of ``service``."""
    return FRESHNESS_PREFIX + validate_name(service)


def applied_topic(service: str, instance: str) -> str:
    """Topic carrying the applied report of one instance of ``service``."""
    return f"{APPLIED_PREFIX}{validate_name(service)}/{validate_name(instance, 'instance')}"


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
