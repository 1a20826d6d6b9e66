"""The safe-name rule for session ids (and anything else placed in a topic level)."""

from __future__ import annotations

import re
from typing import Final

_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class InvalidNameError(ValueError):
    """Raised when a name is not 1-64 characters of letters, digits, ``_``, ``.`` or ``-``."""


def validate_session(name: str) -> str:
    """Return ``name`` if it is a safe session id, else raise :class:`InvalidNameError`.

    A safe name is 1-64 characters from ``A-Z a-z 0-9 _ . -``; in particular it
    never contains the MQTT wildcards ``+``/``#`` or the level separator ``/``.
    """
    if not isinstance(name, str) or _SAFE_NAME.fullmatch(name) is None:
        raise InvalidNameError(
            f"invalid session name {name!r}: "
            "use 1-64 characters from letters, digits, '_', '.', '-'"
        )
    return name
