"""The one place that creates, loads and identifies keys.

- Ed25519 signing keys (PEM, PKCS#8), held by the config manager only.
- A trust store of Ed25519 public keys by key id, held by every service; it may hold
  several keys at once so that a signing key can be rotated without downtime.
- The master secrets key (32 random bytes) held by the manager, and the per-service
  AES-256 data keys derived from it with HKDF-SHA256; each service holds only its own.

Every key file is written atomically with mode 0600 and never overwritten.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._exceptions import KeyFileError, UnknownKey
from ._files import write_atomic
from ._topics import validate_name

__all__ = [
    "DataKey",
    "SigningKey",
    "TrustStore",
    "derive_data_key",
    "key_id_for",
    "load_data_key",
    "load_master_key",
    "load_or_create_master_key",
    "load_or_create_signing_key",
    "load_signing_key",
    "save_data_key",
]

MASTER_KEY_BYTES: Final = 32
_HKDF_SALT: Final = b"signed-config/data-key/v1"
_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """Key id of an Ed25519 public key: first 16 hex digits of SHA-256 of its 32 raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key and its key id."""

    private_key: Ed25519PrivateKey = field(repr=False)
    key_id: str

    @classmethod
    def generate(cls) -> SigningKey:
        key = Ed25519PrivateKey.generate()
        return cls(key, key_id_for(key.public_key()))

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFileError(f"not a PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError("the signing key must be an Ed25519 key")
        return cls(key, key_id_for(key.public_key()))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @cached_property
    def public_b64(self) -> str:
        """Standard base64 of the 32 raw bytes of the public key (as reports carry it)."""
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def load_signing_key(path: Path) -> SigningKey:
    """Load an Ed25519 signing key from a PEM file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read signing key {path}: {exc.strerror}") from None
    return SigningKey.from_pem(data)


def load_or_create_signing_key(path: Path) -> tuple[SigningKey, bool]:
    """Load the signing key at ``path``, creating it first if missing.

    Returns ``(key, created)``. An existing file is never overwritten.
    """
    path = Path(path)
    if not path.exists():
        key = SigningKey.generate()
        if write_atomic(path, key.private_pem(), overwrite=False):
            return key, True
    return load_signing_key(path), False


class TrustStore:
    """Ed25519 public keys trusted to sign configs, looked up by key id."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: Ed25519PublicKey) -> str:
        """Trust ``key``; returns its key id."""
        key_id = key_id_for(key)
        self._keys[key_id] = key
        return key_id

    def get(self, key_id: str) -> Ed25519PublicKey:
        """The public key for ``key_id``; raises UnknownKey if it is not trusted."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKey(f"signing key {key_id!r} is not in the trust store") from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def from_pem(cls, data: bytes) -> TrustStore:
        """A trust store from one or more concatenated PEM public keys."""
        blocks = _PEM_BLOCK.findall(data)
        if not blocks:
            raise KeyFileError("no PEM public key found")
        store = cls()
        for block in blocks:
            try:
                key = serialization.load_pem_public_key(block)
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise KeyFileError(f"unreadable public key: {exc}") from None
            if not isinstance(key, Ed25519PublicKey):
                raise KeyFileError("trusted keys must be Ed25519 public keys")
            store.add(key)
        return store

    @classmethod
    def load(cls, path: Path) -> TrustStore:
        """Load a PEM file of public keys, or every ``*.pem`` file in a folder."""
        path = Path(path)
        try:
            if path.is_dir():
                files = sorted(path.glob("*.pem"))
                data = b"".join(f.read_bytes() + b"\n" for f in files)
            else:
                data = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read trust store {path}: {exc.strerror}") from None
        try:
            return cls.from_pem(data)
        except KeyFileError as exc:
            raise KeyFileError(f"trust store {path}: {exc}") from None

    def to_pem(self) -> bytes:
        return b"".join(
            self._keys[k].public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            for k in sorted(self._keys)
        )


@dataclass(frozen=True)
class DataKey:
    """A service's AES-256-GCM data key and its id."""

    service: str
    key_id: str
    key: bytes = field(repr=False)

    @classmethod
    def from_bytes(cls, service: str, key: bytes) -> DataKey:
        if len(key) != 32:
            raise KeyFileError("a data key must be 32 bytes (AES-256)")
        key_id = hashlib.sha256(b"signed-config/data-key-id/v1\x00" + key).hexdigest()[:16]
        return cls(validate_name(service), key_id, key)


def derive_data_key(master_key: bytes, service: str) -> DataKey:
    """Derive ``service``'s data key from the master key with HKDF-SHA256."""
    if len(master_key) != MASTER_KEY_BYTES:
        raise KeyFileError("the master key must be 32 bytes")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_HKDF_SALT,
        info=b"service:" + validate_name(service).encode(),
    )
    return DataKey.from_bytes(service, hkdf.derive(master_key))


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data) + b"\n"


def _unb64(text: bytes, what: str, path: Path) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{what} {path} is not base64") from None


def load_master_key(path: Path) -> bytes:
    """Load the master secrets key (base64 text file)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read master key {path}: {exc.strerror}") from None
    key = _unb64(data, "master key", Path(path))
    if len(key) != MASTER_KEY_BYTES:
        raise KeyFileError(f"master key {path} must hold 32 bytes")
    return key


def load_or_create_master_key(path: Path) -> tuple[bytes, bool]:
    """Load the master key, creating 32 random bytes first if missing. Never overwrites."""
    path = Path(path)
    created = not path.exists() and write_atomic(
        path, _b64(os.urandom(MASTER_KEY_BYTES)), overwrite=False
    )
    return load_master_key(path), created


def save_data_key(path: Path, key: DataKey, *, overwrite: bool = False) -> bool:
    """Write a service's data key file (JSON, mode 0600). Never overwrites by default."""
    doc = {
        "service": key.service,
        "key_id": key.key_id,
        "key": base64.b64encode(key.key).decode(),
    }
    return write_atomic(Path(path), json.dumps(doc, indent=2).encode() + b"\n", overwrite=overwrite)


def load_data_key(path: Path, service: str | None = None) -> DataKey:
    """Load a data key file; if ``service`` is given the file must be for that service."""
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes())
        name, key_b64 = doc["service"], doc["key"]
        if not isinstance(name, str) or not isinstance(key_b64, str):
            raise TypeError
    except OSError as exc:
        raise KeyFileError(f"cannot read data key {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise KeyFileError(f"data key {path} is not a data key file") from None
    key = DataKey.from_bytes(name, _unb64(key_b64.encode(), "data key", path))
    if service is not None and key.service != service:
        raise KeyFileError(f"data key {path} is for service {key.service!r}, not {service!r}")
    return key
