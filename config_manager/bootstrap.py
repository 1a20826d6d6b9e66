"""First start: create what is missing in the data directory, never touch what exists.

``init_data_dir`` is idempotent: running it twice changes nothing (same bytes, same mtimes).
``startup_problems`` is what ``serve`` checks before it starts: missing key files or
placeholder secrets refuse the start unless development mode is on.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from config_lib import (
    KeyFileError,
    TrustStore,
    derive_data_key,
    load_master_key,
    load_or_create_master_key,
    load_or_create_signing_key,
    load_signing_key,
    save_data_key,
    validate_name,
    write_atomic,
)

from .broker import BrokerFiles, render_broker_files, write_password_file
from .db import migrate, unportable_services
from .dialects import Target
from .registry import SchemaRegistry
from .settings import ManagerSettings
from .tokens import Role, create_token_sync

__all__ = [
    "PLACEHOLDER_SECRETS",
    "STANDARD_MQTT_USERS",
    "InitResult",
    "init_data_dir",
    "mqtt_password_file",
    "startup_problems",
]

STANDARD_MQTT_USERS: Final = ("manager", "debug", "stt", "orchestrator", "client")
PLACEHOLDER_SECRETS: Final = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "password",
        "secret",
        "admin",
        "test",
        "placeholder",
        "default",
        "mosquitto",
        "manager",
        "example",
        "xxx",
        "todo",
    }
)
_MIN_PASSWORD_LENGTH: Final = 16
_PLACEHOLDER_MASTER_KEYS: Final = (bytes(32), b"\xff" * 32, b"0" * 32, b"changeme" * 4)


def mqtt_password_file(data_dir: Path, user: str) -> Path:
    return Path(data_dir) / "secrets" / "mqtt" / f"{validate_name(user, 'user')}.password"


@dataclass
class InitResult:
    """What ``init_data_dir`` did."""

    data_dir: Path
    created: list[Path] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)
    admin_token: str | None = field(default=None, repr=False)  # only when newly created
    admin_token_file: Path = Path()
    mqtt_users: list[str] = field(default_factory=list)
    broker: BrokerFiles = field(default_factory=lambda: BrokerFiles(Path()))

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def _mkdir(path: Path, result: InitResult) -> None:
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        result.created.append(path)


def init_data_dir(
    data_dir: Path,
    *,
    mqtt_port: int = 1883,
    dev: bool = False,
    services: Iterable[str] | None = None,
    admin_name: str = "admin",
    database: Target | None = None,
) -> InitResult:
    """Create what is missing in ``data_dir`` (see docs/operations.md). Idempotent.

    ``services`` defaults to every service registered through the entry points.
    ``dev`` is accepted for symmetry with ``serve --dev``; bootstrap output is the same
    (real random secrets) in both modes.
    """
    del dev
    data_dir = Path(data_dir).absolute()
    names = sorted(services if services is not None else SchemaRegistry.from_entry_points())
    result = InitResult(data_dir=data_dir)
    for sub in ("", "keys", "keys/services", "secrets", "secrets/mqtt", "lkg", "logs"):
        _mkdir(data_dir / sub, result)

    # Database (migrated, with its epoch): data_dir/manager.db unless given (PostgreSQL).
    db: Target = database if database is not None else data_dir / "manager.db"
    existed = not isinstance(db, Path) or db.exists()
    migrate(db)
    if not existed and isinstance(db, Path):
        result.created.append(db)

    # Signing key and the trust store holding its public key (add, never drop).
    signing, created = load_or_create_signing_key(data_dir / "keys" / "signing.pem")
    if created:
        result.created.append(data_dir / "keys" / "signing.pem")
    trust_file = data_dir / "keys" / "trust.pem"
    if not trust_file.exists():
        write_atomic(trust_file, signing.public_pem(), mode=0o644, overwrite=False)
        result.created.append(trust_file)
    else:
        trust = TrustStore.load(trust_file)
        if signing.key_id not in trust:
            trust.add(signing.public_key)
            write_atomic(trust_file, trust.to_pem(), mode=0o644)
            result.updated.append(trust_file)

    # Master key and each service's data key.
    master, created = load_or_create_master_key(data_dir / "keys" / "master.key")
    if created:
        result.created.append(data_dir / "keys" / "master.key")
    for service in names:
        path = data_dir / "keys" / "services" / f"{service}.key"
        if not path.exists() and save_data_key(path, derive_data_key(master, service)):
            result.created.append(path)

    # MQTT users: a random password each, and the broker's files.
    users = list(STANDARD_MQTT_USERS) + [s for s in names if s not in STANDARD_MQTT_USERS]
    result.mqtt_users = users
    passwords: dict[str, str] = {}
    new_password = False
    for user in users:
        path = mqtt_password_file(data_dir, user)
        if write_atomic(path, secrets.token_urlsafe(24).encode(), overwrite=False):
            result.created.append(path)
            new_password = True
        passwords[user] = path.read_text().strip()
    broker = BrokerFiles(data_dir / "mosquitto")
    result.broker = broker
    conf_ok = (
        broker.conf.exists()
        and broker.acl_file.exists()
        and f"listener {mqtt_port} " in broker.conf.read_text()
    )
    if not conf_ok:
        (result.updated if broker.conf.exists() else result.created).append(broker.conf)
        render_broker_files(broker, port=mqtt_port)
    if new_password or not broker.password_file.exists() or _passwd_users(broker) != set(users):
        (result.updated if broker.password_file.exists() else result.created).append(
            broker.password_file
        )
        write_password_file(broker.password_file, passwords)

    # The first admin token: printed once, only its hash in the database.
    token_file = data_dir / "secrets" / "admin.token"
    result.admin_token_file = token_file
    if not token_file.exists() and not _has_tokens(db):
        token = create_token_sync(db, admin_name, Role.admin, created_by="init")
        write_atomic(token_file, token.encode() + b"\n", overwrite=False)
        result.admin_token = token
        result.created.append(token_file)
    return result


def _passwd_users(files: BrokerFiles) -> set[str]:
    text = files.password_file.read_text()
    return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}


def _has_tokens(db: Target) -> bool:
    from .dialects import open_sync

    with open_sync(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM tokens")[0][0]) > 0


def startup_problems(settings: ManagerSettings) -> list[str]:
    """Why ``serve`` must refuse to start (an empty list when all is well).

    In development mode missing keys are created on the fly and weak secrets allowed; a
    database holding a service name that is no longer valid is refused in both modes.
    """
    problems = [
        f"the database {settings.database} holds service {name!r}, whose name cannot be "
        f"published portably ({why}); see 'Service names' in docs/operations.md to move "
        "its config to a valid name"
        for name, why in unportable_services(settings.database)
    ]
    if settings.dev_mode:
        return problems
    hint = f"run `python -m config_manager init --data-dir {settings.data_dir}` first"
    for what, path in (
        ("signing key", settings.signing_key_file),
        ("trust store", settings.trust_store_file),
        ("master key", settings.master_key_file),
    ):
        if not path.exists():
            problems.append(f"{what} {path} is missing: {hint}")
    if settings.signing_key_file.exists() and settings.trust_store_file.exists():
        try:
            signing = load_signing_key(settings.signing_key_file)
            trusted = signing.key_id in TrustStore.load(settings.trust_store_file)
        except KeyFileError as exc:
            problems.append(str(exc))
        else:
            if not trusted:
                problems.append(
                    f"the signing key {signing.key_id} is not in the trust store "
                    f"{settings.trust_store_file}: services would refuse every config"
                )
    if settings.master_key_file.exists():
        try:
            master = load_master_key(settings.master_key_file)
        except KeyFileError as exc:
            problems.append(str(exc))
        else:
            if any(hmac.compare_digest(master, p) for p in _PLACEHOLDER_MASTER_KEYS):
                problems.append(
                    f"master key {settings.master_key_file} is a placeholder value: "
                    "delete it and run init (outside --dev mode real keys are required)"
                )
    endpoint = settings.mqtt_endpoint()
    password = endpoint.password
    if password is None:
        problems.append(
            f"no MQTT password for user {endpoint.username!r} "
            f"(set CONFIG_MANAGER_MQTT_PASSWORD_FILE or run init): {hint}"
        )
    elif password.lower() in PLACEHOLDER_SECRETS or len(password) < _MIN_PASSWORD_LENGTH:
        problems.append(
            f"the MQTT password of {endpoint.username!r} is a placeholder or shorter than "
            f"{_MIN_PASSWORD_LENGTH} characters: use the generated one (init) or --dev"
        )
    return problems
