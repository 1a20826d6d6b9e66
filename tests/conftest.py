"""Shared fixtures: a real mosquitto with the project's own config, keys, unique names."""

from __future__ import annotations

import errno
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from config_lib import SigningKey, TrustStore, derive_data_key
from config_lib._keys import DataKey
from config_manager.dialects import PostgresUrl
from tests.brokers import BrokerSeam, LazyRabbitMQ, MosquittoBroker, RabbitMQBroker
from tests.postgres import LazyPostgres, PostgresServer

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


# -- the broker matrix ------------------------------------------------------------------
# Tests marked ``broker_matrix`` that take ``matrix_broker`` run once per broker: the
# session's mosquitto and one RabbitMQ (MQTT plugin) per session, started in the
# background as soon as collection shows a selected test needs it.
MATRIX_BROKERS = ("mosquitto", "rabbitmq")
_RABBITMQ = LazyRabbitMQ()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start RabbitMQ in the background if a selected test needs it, and run those tests
    last, so that its boot (tens of seconds) overlaps the rest of the suite."""
    del config

    def on_rabbitmq(item: pytest.Item) -> bool:
        callspec = getattr(item, "callspec", None)
        return callspec is not None and callspec.params.get("matrix_broker") == "rabbitmq"

    last = [item for item in items if on_rabbitmq(item)]
    if last:
        _RABBITMQ.begin()
        items[:] = [item for item in items if not on_rabbitmq(item)] + last


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    del session, exitstatus
    _RABBITMQ.close()
    _POSTGRES.close()


@pytest.fixture(scope="session")
def rabbitmq() -> RabbitMQBroker:
    """The session's RabbitMQ 3.10 with the MQTT plugin and the project's ACL as topic
    permissions (see tests/brokers.py)."""
    try:
        return _RABBITMQ.get()
    except RuntimeError as exc:
        pytest.fail(f"{exc} (install it: apt-get install -y rabbitmq-server)")


@pytest.fixture(params=MATRIX_BROKERS)
def matrix_broker(request: pytest.FixtureRequest) -> BrokerSeam:
    """Each broker of the matrix in turn (``broker_matrix`` tests)."""
    name = "broker" if request.param == "mosquitto" else "rabbitmq"
    found: BrokerSeam = request.getfixturevalue(name)
    return found


# -- the database matrix ----------------------------------------------------------------
# Tests marked ``db_matrix`` that take ``matrix_database`` run once per database: a SQLite
# file of their own, and a database of their own on the session's one PostgreSQL server
# (tests/postgres.py: Debian's postgresql, started on first use, stopped at the end).
MATRIX_DATABASES = ("sqlite", "postgresql")
_POSTGRES = LazyPostgres()


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """The session's PostgreSQL server (started on first use)."""
    try:
        return _POSTGRES.get()
    except RuntimeError as exc:
        pytest.fail(f"{exc} (install it: apt-get install -y postgresql)")


@pytest.fixture(params=MATRIX_DATABASES)
def matrix_database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | PostgresUrl:
    """Each database of the matrix in turn (``db_matrix`` tests): a new, empty one."""
    if request.param == "sqlite":
        return tmp_path / "manager.db"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


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


@dataclass
class SmallFileSystem:
    """A size-limited tmpfs mounted for one test: fill it up, free it, make it read-only."""

    path: Path

    @property
    def _filler(self) -> Path:
        return self.path / ".filler"

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_frsize * st.f_bavail

    def fill(self) -> None:
        """Write a filler file until the file system refuses more (ENOSPC)."""
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 1 << 14, 512, 1):
                chunk = bytes(size)
                try:
                    while True:
                        os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)

    def free(self) -> None:
        """Delete the filler: the space is back."""
        self._filler.unlink()

    def remount(self, mode: str) -> None:
        """``ro`` or ``rw`` (``ro`` fails while a file on it is open for writing)."""
        _run_mount(["mount", "-o", f"remount,{mode}", str(self.path)])


def _run_mount(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFileSystem]:
    """A real 16 MiB file system (tmpfs) of the test's own, for disk-full and read-only faults.

    Mounting needs root (CI runs as root); elsewhere the test is skipped with the reason.
    """
    folder = tmp_path / "small-fs"
    folder.mkdir()
    try:
        _run_mount(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(folder)])
    except (OSError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root): {exc}")
    try:
        yield SmallFileSystem(folder)
    finally:
        try:
            _run_mount(["umount", str(folder)])
        except OSError:
            _run_mount(["umount", "-l", str(folder)])  # still busy: detach it anyway


@pytest.fixture(scope="session")
def engine() -> WhisperEngine:
    """The packaged tiny.en model with SttConfig's defaults, loaded once for the session.

    Workers under test swap to models of their own; they never unload the one given.
    """
    from workers.stt.config import SttConfig
    from workers.stt.engine import ModelSpec, load_engine

    return load_engine(ModelSpec.from_config(SttConfig()))
