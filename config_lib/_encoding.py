"""Canonical base64, the one form the protocol accepts (docs/protocol.md, "Base64")."""

from __future__ import annotations

import base64
import binascii

__all__ = ["decode_base64"]


def decode_base64(text: object) -> bytes | None:
    """Canonical standard base64 (RFC 4648 section 4: padded, no whitespace, zero pad bits)
    decoded, or None. Canonical means re-encoding the bytes gives back ``text`` exactly."""
    if not isinstance(text, str) or not text.isascii():
        return None
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if base64.b64encode(data).decode("ascii") == text else None
