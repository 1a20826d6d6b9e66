"""Process-wide memory of pure verdicts on exact message bytes (see docs/config_lib.md).

A process running many ConfigLibrary instances (or one that sees the same retained
message again after a reconnect) receives the same bytes many times. Parsing, the
RFC 8785 canonical form and the Ed25519 check are pure functions of those bytes (and of
the public key), so their results are remembered here, keyed by the exact bytes:

* :data:`PARSED` — the strict parse of a signed message (steps P1-P5 of
  docs/protocol.md: UTF-8, depth, I-JSON, an object) and the RFC 8785 form its signature
  covers, per exact bytes (only successes are kept; a refusal is computed again each
  time). Every later check (shape, fields, key, signature, service, order) still runs
  on it for every message; the document is shared and never changed;
* :func:`verify_once` — "this Ed25519 public key verifies this signature over this
  content", keyed by the raw public key, the signature and the content;
* :data:`VALIDATED` — for a *frozen* pydantic model only, the config validated from an
  envelope's bytes after decryption with given data keys, keyed by (model, data keys,
  bytes): libraries of one service in one process share the immutable instance. Only
  successes are kept, and only after the envelope passed every other check of the
  library asking; a model whose validators depend on more than the values (a file that
  must exist...) sees them run once per process for the same bytes.

What depends on the library stays outside and runs for every message of every
instance: the size limit, the shape checks, the trust store lookup of the key id (so a
key removed from a trust store, or a changed keyset, takes effect at once: nothing
cached says a key is trusted), the service, replay and freshness rules, decryption and
validation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["PARSED", "VALIDATED", "BytesCache", "clear", "verify_once"]

V = TypeVar("V")
# A few recent configs and records per service is all a process sees more than once.
MAX_ENTRIES: Final = 256


class BytesCache(Generic[V]):
    """A small thread-safe LRU map from exact bytes (plus a tag) to a value."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._items: OrderedDict[tuple[Hashable, bytes], V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, tag: Hashable, raw: bytes) -> V | None:
        key = (tag, raw)
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, tag: Hashable, raw: bytes, value: V) -> None:
        with self._lock:
            self._items[(tag, raw)] = value
            self._items.move_to_end((tag, raw))
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def get_or_make(self, tag: Hashable, raw: bytes, make: Callable[[bytes], V]) -> V:
        """The cached value, else ``make(raw)`` cached (an exception is not cached)."""
        value = self.get(tag, raw)
        if value is None:
            value = make(raw)
            self.put(tag, raw, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


PARSED: Final[BytesCache[object]] = BytesCache()
# Validated configs of frozen models, per (model, data keys) and exact envelope bytes.
VALIDATED: Final[BytesCache[object]] = BytesCache()
_SIGNATURES: Final[BytesCache[bool]] = BytesCache()


def verify_once(public_key: Ed25519PublicKey, signature: bytes, content: bytes) -> None:
    """``public_key.verify(signature, content)``, remembered per (key, signature, content).

    A pure fact of the three: nothing about whether the key is trusted. Raises
    ``InvalidSignature``; only a valid signature is kept.
    """
    tag = public_key.public_bytes_raw() + signature
    if _SIGNATURES.get(tag, content):
        return
    public_key.verify(signature, content)
    _SIGNATURES.put(tag, content, True)


def clear() -> None:
    """Forget every remembered verdict (tests; never needed for correctness)."""
    PARSED.clear()
    VALIDATED.clear()
    _SIGNATURES.clear()
