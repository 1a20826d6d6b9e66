"""Shared fixtures: a real mosquitto with the project's own config, keys, unique names."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from config_lib import SigningKey, TrustStore, derive_data_key
from config_lib._keys import DataKey
from tests.brokers import MosquittoBroker

if TYPE_CHECKING:
    from workers.stt.engine import WhisperEngine

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


Broker = MosquittoBroker  # the default broker of the suite (see tests/brokers.py)


def _start_broker(folder: Path) -> MosquittoBroker:
    try:
        return MosquittoBroker.create(folder)
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the whole session; tests use unique service/topic names."""
    b = _start_broker(tmp_path_factory.mktemp("mosquitto"))
    yield b
    b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, for tests that stop, kill or restart it."""
    b = _start_broker(tmp_path / "mosquitto")
    yield b
    b.stop()


@pytest.fixture
def service_name() -> str:
    """A service name no other test uses."""
    return f"svc-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Keys:
    signing: SigningKey
    trust: TrustStore
    master: bytes

    def data_key(self, service: str) -> DataKey:
        return derive_data_key(self.master, service)


@pytest.fixture(scope="session")
def keys() -> Keys:
    signing = SigningKey.generate()
    return Keys(signing, TrustStore([signing.public_key]), secrets.token_bytes(32))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"test data not found at {SHARED_DATA} (expected ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def engine() -> WhisperEngine:
    """The packaged tiny.en model with SttConfig's defaults, loaded once for the session.

    Workers under test swap to models of their own; they never unload the one given.
    """
    from workers.stt.config import SttConfig
    from workers.stt.engine import ModelSpec, load_engine

    return load_engine(ModelSpec.from_config(SttConfig()))
