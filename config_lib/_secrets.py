"""Secret config fields: AES-256-GCM ciphertext objects on the wire and at rest.

A field the service's model declares as ``SecretStr`` never travels or rests in plaintext.
Its value is replaced by an object::

    {"encrypted": "AES-256-GCM", "key_id": "<data key id>",
     "nonce": "<base64, 12 bytes>", "ciphertext": "<base64, ciphertext || 16-byte tag>"}

The associated data binds the ciphertext to the service and the field's JSON Pointer
(RFC 6901) path, so a ciphertext copied to another field or service does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, SecretStr

from ._encoding import decode_base64
from ._exceptions import SecretError
from ._keys import DataKey

__all__ = [
    "ALGORITHM",
    "MASK",
    "ciphertext_problem",
    "decrypt_secrets",
    "encrypt_secrets",
    "is_encrypted",
    "mask_secrets",
    "reencrypt_secrets",
]

ALGORITHM: Final = "AES-256-GCM"
MASK: Final = "**********"  # what pydantic prints for a SecretStr; also the API's mask
_AAD_PREFIX: Final = b"signed-config/secret/v1\x00"
_FIELDS: Final = frozenset({"encrypted", "key_id", "nonce", "ciphertext"})


_KEY_ID: Final = re.compile(r"[0-9a-f]{16}")
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16


def ciphertext_problem(value: Mapping[str, Any]) -> str | None:
    """What makes ``value`` (an object with an ``encrypted`` member) not exactly a
    ciphertext object, or None. Unknown shapes are refused, never taken as plain values."""
    if value.get("encrypted") != ALGORITHM:
        return f"'encrypted' must be {ALGORITHM!r}"
    if set(value) != _FIELDS:
        return "members must be exactly encrypted, key_id, nonce and ciphertext"
    if not isinstance(value["key_id"], str) or not _KEY_ID.fullmatch(value["key_id"]):
        return "'key_id' must be 16 lowercase hex digits"
    nonce = decode_base64(value["nonce"])
    if nonce is None or len(nonce) != NONCE_BYTES:
        return "'nonce' must be canonical base64 of 12 bytes"
    ciphertext = decode_base64(value["ciphertext"])
    if ciphertext is None or len(ciphertext) < TAG_BYTES:
        return "'ciphertext' must be canonical base64 of at least 16 bytes"
    return None


def _pointer(path: str, part: str | int) -> str:
    return f"{path}/{str(part).replace('~', '~0').replace('/', '~1')}"


def _aad(service: str, path: str) -> bytes:
    return _AAD_PREFIX + service.encode() + b"\x00" + path.encode()


def is_encrypted(value: object) -> bool:
    """True if ``value`` is meant as a secret ciphertext object (it has an ``encrypted``
    member; whether it is a well-formed one is :func:`ciphertext_problem`'s question)."""
    return isinstance(value, Mapping) and "encrypted" in value


def _encrypt(plaintext: str, service: str, path: str, key: DataKey) -> dict[str, str]:
    nonce = os.urandom(12)
    ct = AESGCM(key.key).encrypt(nonce, plaintext.encode(), _aad(service, path))
    return {
        "encrypted": ALGORITHM,
        "key_id": key.key_id,
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ct).decode(),
    }


def _decrypt(obj: Mapping[str, Any], service: str, path: str, keys: Mapping[str, DataKey]) -> str:
    problem = ciphertext_problem(obj)
    if problem:
        raise SecretError(f"secret at {path or '/'} is not a ciphertext object: {problem}")
    key = keys.get(obj["key_id"]) if isinstance(obj["key_id"], str) else None
    if key is None:
        raise SecretError(f"secret at {path or '/'}: no data key {obj['key_id']!r} for {service!r}")
    try:
        nonce = base64.b64decode(obj["nonce"], validate=True)
        ct = base64.b64decode(obj["ciphertext"], validate=True)
        if len(nonce) != 12:
            raise ValueError
        return AESGCM(key.key).decrypt(nonce, ct, _aad(service, path)).decode()
    except (InvalidTag, ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise SecretError(
            f"secret at {path or '/'} does not decrypt (tampered, moved or wrong key)"
        ) from None


def encrypt_secrets(config: BaseModel, *, service: str, key: DataKey) -> dict[str, Any]:
    """JSON-ready values of ``config`` with every SecretStr replaced by ciphertext."""

    def walk(value: Any, dumped: Any, path: str) -> Any:
        if isinstance(value, SecretStr):
            return _encrypt(value.get_secret_value(), service, path, key)
        if isinstance(value, BaseModel) and isinstance(dumped, dict):
            for name in type(value).model_fields:
                if name in dumped:
                    dumped[name] = walk(getattr(value, name), dumped[name], _pointer(path, name))
        elif isinstance(value, list | tuple) and isinstance(dumped, list):
            for i, item in enumerate(value):
                dumped[i] = walk(item, dumped[i], _pointer(path, i))
        elif isinstance(value, Mapping) and isinstance(dumped, dict):
            for k, item in value.items():
                if str(k) in dumped:
                    dumped[str(k)] = walk(item, dumped[str(k)], _pointer(path, str(k)))
        return dumped

    result = walk(config, config.model_dump(mode="json"), "")
    assert isinstance(result, dict)
    return result


def decrypt_secrets(values: Any, *, service: str, keys: Iterable[DataKey]) -> Any:
    """A copy of ``values`` with every ciphertext object replaced by its plaintext."""
    by_id = {k.key_id: k for k in keys}

    def walk(value: Any, path: str) -> Any:
        if is_encrypted(value):
            return _decrypt(value, service, path, by_id)
        if isinstance(value, Mapping):
            return {k: walk(v, _pointer(path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, _pointer(path, i)) for i, v in enumerate(value)]
        return value

    return walk(values, "")


def reencrypt_secrets(values: Any, *, service: str, keys: Iterable[DataKey], key: DataKey) -> Any:
    """A copy of ``values`` with every ciphertext object decrypted with ``keys`` and
    encrypted again with ``key`` (same field path, fresh nonce): master-key rotation."""
    by_id = {k.key_id: k for k in keys}

    def walk(value: Any, path: str) -> Any:
        if is_encrypted(value):
            return _encrypt(_decrypt(value, service, path, by_id), service, path, key)
        if isinstance(value, Mapping):
            return {k: walk(v, _pointer(path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, _pointer(path, i)) for i, v in enumerate(value)]
        return value

    return walk(values, "")


def mask_secrets(values: Any) -> Any:
    """A copy of ``values`` with every ciphertext object replaced by the mask string."""
    if is_encrypted(values):
        return MASK
    if isinstance(values, Mapping):
        return {k: mask_secrets(v) for k, v in values.items()}
    if isinstance(values, list):
        return [mask_secrets(v) for v in values]
    return values
