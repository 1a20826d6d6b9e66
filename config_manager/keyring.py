"""The manager's key material: the signing key and the per-service data keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from config_lib import DataKey, SigningKey, TrustStore, derive_data_key

__all__ = ["KeyRing"]


@dataclass
class KeyRing:
    """Signing key, trust store and master key; data keys are derived on first use."""

    signing: SigningKey
    trust: TrustStore
    master: bytes = field(repr=False)
    _data_keys: dict[str, DataKey] = field(default_factory=dict, repr=False)

    def data_key(self, service: str) -> DataKey:
        key = self._data_keys.get(service)
        if key is None:
            key = self._data_keys[service] = derive_data_key(self.master, service)
        return key
