"""The manager's key material: the signing key, the keyset, the per-service data keys.

The keyset (``data_dir/keys/keyset.json``) is signed by the operator's offline root key
(``python -m config_manager keys``); the manager only holds the root *public* key
(``data_dir/keys/root-public.pem``) to check it. :func:`load_signing_state` reads and
checks the signing key and keyset together; :class:`KeyWatcher` notices when the
operator's command replaced them and hands them to the running publisher: a signing-key
rotation needs no restart of anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from config_lib import (
    ConfigLibError,
    DataKey,
    KeyFileError,
    Keyset,
    SigningKey,
    TrustStore,
    derive_data_key,
    load_signing_key,
    verify_keyset,
)

__all__ = [
    "KeyRing",
    "KeyWatcher",
    "SigningState",
    "load_signing_state",
    "retired_master_files",
]

_log = logging.getLogger(__name__)


@dataclass
class KeyRing:
    """Signing key, trust store and master key; data keys are derived on first use.

    ``retired_masters`` are master keys replaced by ``keys rotate-master``: never used to
    encrypt, only to read the versions stored before the rotation (the hash-chained
    history is immutable, so its ciphertext stays as it was written).
    """

    signing: SigningKey
    trust: TrustStore
    master: bytes = field(repr=False)
    keyset: Keyset | None = None
    retired_masters: list[bytes] = field(default_factory=list, repr=False)
    _data_keys: dict[str, DataKey] = field(default_factory=dict, repr=False)

    def data_key(self, service: str) -> DataKey:
        """The key new secrets of ``service`` are encrypted with."""
        key = self._data_keys.get(service)
        if key is None:
            key = self._data_keys[service] = derive_data_key(self.master, service)
        return key

    def decrypt_keys(self, service: str) -> list[DataKey]:
        """Every data key a stored secret of ``service`` may be encrypted with."""
        return [self.data_key(service)] + [
            derive_data_key(m, service) for m in self.retired_masters
        ]


def retired_master_files(master_file: Path) -> list[Path]:
    """Master keys replaced by a rotation: ``<keys>/retired/master-*.key``."""
    return sorted((master_file.parent / "retired").glob("master-*.key"))


@dataclass(frozen=True)
class SigningState:
    """The signing key and, with a root key, the keyset that lists it."""

    signing: SigningKey
    keyset: Keyset | None

    def trust(self, fallback: TrustStore) -> TrustStore:
        """Keys whose messages are the manager's own: the keyset's, else ``fallback``."""
        return self.keyset.trust if self.keyset is not None else fallback


def load_signing_state(signing_file: Path, keyset_file: Path, root_file: Path) -> SigningState:
    """Load the signing key and, if ``keyset_file`` exists, the keyset (checked with the
    root public key); raises KeyFileError when they do not fit together."""
    signing = load_signing_key(signing_file)
    if not keyset_file.exists():
        return SigningState(signing, None)
    if not root_file.exists():
        raise KeyFileError(
            f"keyset {keyset_file} found but no root public key {root_file} to check it"
        )
    root = TrustStore.load(root_file)
    try:
        keyset = verify_keyset(keyset_file.read_bytes(), root=root)
    except ConfigLibError as exc:
        raise KeyFileError(f"keyset {keyset_file} refused ({exc.reason}): {exc}") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read keyset {keyset_file}: {exc.strerror}") from None
    if signing.key_id not in keyset.trust:
        raise KeyFileError(
            f"the signing key {signing.key_id} is not in keyset version {keyset.version} "
            f"({', '.join(keyset.trust)}): services would refuse every config"
        )
    if keyset.expired(datetime.now(UTC)):
        _log.error(
            "keyset version %d expired at %s: services that do not hold it yet refuse it; "
            "sign a new one (python -m config_manager keys sign-keyset)",
            keyset.version,
            keyset.expires_at.isoformat(),
        )
    return SigningState(signing, keyset)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class KeyWatcher:
    """Polls the signing key and keyset files; calls ``on_change`` with a new, consistent
    :class:`SigningState` when the operator replaced them (logged once per bad state)."""

    def __init__(
        self,
        *,
        signing_file: Path,
        keyset_file: Path,
        root_file: Path,
        on_change: Callable[[SigningState], None],
        interval_s: float,
    ) -> None:
        self._files = (signing_file, keyset_file, root_file)
        self._on_change = on_change
        self._interval = interval_s
        self._stamps = self._read_stamps()
        self._problem: str | None = None

    def _read_stamps(self) -> tuple[tuple[int, int, int] | None, ...]:
        return tuple(_stamp(f) for f in self._files)

    def check(self) -> bool:
        """Look once; True if a new state was handed over."""
        stamps = self._read_stamps()
        if stamps == self._stamps:
            return False
        try:
            state = load_signing_state(*self._files)
        except KeyFileError as exc:
            if str(exc) != self._problem:
                _log.error("new key files not used (keeping the current ones): %s", exc)
                self._problem = str(exc)
            return False  # stamps not taken: looked at again next time
        self._stamps = stamps
        self._problem = None
        self._on_change(state)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.check()
