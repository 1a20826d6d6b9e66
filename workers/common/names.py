"""The safe-name rule for session ids: the project's one rule, from config_lib.

A safe name is 1-64 characters from ``A-Z a-z 0-9 _ -`` starting with a letter or
digit; in particular it never contains the MQTT wildcards ``+``/``#``, the level
separator ``/``, the ``.`` and ``*`` other brokers read as separator and wildcard, or
spaces.
"""

from __future__ import annotations

from config_lib import InvalidName, validate_name

__all__ = ["InvalidNameError", "validate_session"]

InvalidNameError = InvalidName
"""Raised for an unsafe name (``config_lib.InvalidName``, also a ``ValueError``)."""


def validate_session(name: str) -> str:
    """Return ``name`` if it is a safe session id, else raise :class:`InvalidNameError`."""
    return validate_name(name, "session")
