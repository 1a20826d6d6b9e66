"""The operator's key operations (``python -m config_manager keys ...``).

The **root key** is created and kept offline by the operator (``--root-key`` names its
file, outside the data directory, e.g. on removable media); the manager only ever holds
its public key (``data_dir/keys/root-public.pem``). With it the operator signs the
**keyset**, the list of keys allowed to sign configs, which the running manager publishes
on ``config/keyset`` and services follow. Every operation is audited in the database.

Each function raises :class:`KeyOpError` with a one-line message on bad input.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

from config_lib import (
    ConfigLibError,
    KeyFileError,
    Keyset,
    SigningKey,
    TrustStore,
    derive_data_key,
    is_encrypted,
    load_master_key,
    load_signing_key,
    reencrypt_secrets,
    save_data_key,
    sign_keyset,
    verify_keyset,
    write_atomic,
)

from .db import audit_sync, migrate, read_epoch_sync
from .dialects import open_sync
from .keyring import retired_master_files
from .lockfile import LockHeld, database_lock, hold_lock, lock_holder
from .settings import ManagerSettings

__all__ = [
    "DEFAULT_KEYSET_DAYS",
    "EpochReset",
    "KeyOpError",
    "KeysetPlan",
    "MasterRotation",
    "create_root",
    "current_keyset",
    "load_root",
    "reset_epoch",
    "rotate_master",
    "rotate_signing",
    "sign_new_keyset",
]

DEFAULT_KEYSET_DAYS: Final = 90
MAX_KEYSET_DAYS: Final = 3650


class KeyOpError(Exception):
    """A key operation refused: the message is one line for the operator."""


@dataclass(frozen=True)
class KeysetPlan:
    """What a signed keyset lists (returned for the command's output)."""

    keyset: Keyset
    signing_key_id: str


def _audit(settings: ManagerSettings, action: str, detail: dict[str, object]) -> None:
    migrate(settings.database)
    with open_sync(settings.database) as conn, conn.transaction():
        audit_sync(conn, actor="cli", action=action, detail=detail)


def _manager_holding(settings: ManagerSettings) -> str | None:
    """Why the database is in use by a running manager, or None: SQLite, its lock file;
    PostgreSQL, an unexpired publisher lease (a replica that publishes; replicas that
    only serve reads and writes are not seen: stop every replica first)."""
    if settings.database_url is not None:
        with open_sync(settings.database) as conn:
            rows = conn.execute(
                "SELECT holder FROM publisher_lease WHERE expires_at > now() AND holder <> ''"
            )
        return f"the database is in use by manager {rows[0][0]!r}" if rows else None
    lock = database_lock(settings.db_file)
    holder = lock_holder(lock)
    if holder is None:
        return None
    return str(LockHeld(f"the database {settings.db_file}", lock, holder))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def create_root(settings: ManagerSettings, root_key: Path) -> SigningKey:
    """Create the root key at ``root_key`` (never overwritten, refused inside the data
    directory) and add its public key to ``root-public.pem``."""
    if _inside(root_key, settings.data_dir):
        raise KeyOpError(
            f"the root key must stay offline, outside the data directory {settings.data_dir} "
            f"(e.g. on removable media): {root_key}"
        )
    if root_key.exists():
        raise KeyOpError(f"{root_key} already exists: a root key is never overwritten")
    root = SigningKey.generate()
    try:
        if not write_atomic(root_key, root.private_pem(), mode=0o600, overwrite=False):
            raise KeyOpError(f"{root_key} already exists: a root key is never overwritten")
    except OSError as exc:
        raise KeyOpError(f"cannot write {root_key}: {exc.strerror or exc}") from None
    public = settings.root_public_key_file
    roots = TrustStore.load(public) if public.exists() else TrustStore()
    roots.add(root.public_key)
    write_atomic(public, roots.to_pem(), mode=0o644)
    _audit(settings, "keys.root.create", {"root_key_id": root.key_id})
    if not settings.keyset_file.exists() and settings.signing_key_file.exists():
        # Services that find the root public key follow keysets from then on: give them
        # the first one (the current signing key) right away.
        sign_new_keyset(settings, root)
    return root


def load_root(settings: ManagerSettings, root_key: Path) -> SigningKey:
    """The root key at ``root_key``; it must be one of ``root-public.pem``'s."""
    try:
        root = load_signing_key(root_key)
    except KeyFileError as exc:
        raise KeyOpError(f"root key: {exc}") from None
    public = settings.root_public_key_file
    if not public.exists():
        raise KeyOpError(
            f"no root public key {public}: create the root key first "
            "(python -m config_manager keys create-root --root-key PATH)"
        )
    try:
        roots = TrustStore.load(public)
    except KeyFileError as exc:
        raise KeyOpError(str(exc)) from None
    if root.key_id not in roots:
        raise KeyOpError(
            f"{root_key} (key {root.key_id}) is not the root whose public key is in {public} "
            f"({', '.join(roots)})"
        )
    return root


def current_keyset(settings: ManagerSettings) -> Keyset | None:
    """The keyset in ``data_dir/keys/keyset.json``, checked with the root public key."""
    path = settings.keyset_file
    if not path.exists():
        return None
    public = settings.root_public_key_file
    try:
        return verify_keyset(path.read_bytes(), root=TrustStore.load(public))
    except (ConfigLibError, OSError) as exc:
        raise KeyOpError(f"the keyset {path} cannot be read or checked: {exc}") from None


def _days(days: float) -> timedelta:
    if not 0 < days <= MAX_KEYSET_DAYS:
        raise KeyOpError(f"--expires-days must be more than 0 and at most {MAX_KEYSET_DAYS}")
    return timedelta(days=days)


def _signing(settings: ManagerSettings) -> SigningKey:
    try:
        return load_signing_key(settings.signing_key_file)
    except KeyFileError as exc:
        raise KeyOpError(f"{exc} (run python -m config_manager init first)") from None


def sign_new_keyset(
    settings: ManagerSettings,
    root: SigningKey,
    *,
    expires_days: float = DEFAULT_KEYSET_DAYS,
    drop: tuple[str, ...] = (),
    add: tuple[SigningKey, ...] = (),
    void_epochs_from: int | bool | None = False,
) -> KeysetPlan:
    """Sign and write the next keyset version: the keys of the one in force (or the
    signing key alone for the first), plus ``add`` and the signing key, minus ``drop``.

    ``void_epochs_from`` False keeps the one in force, None clears it, an int sets it.
    """
    expires = _days(expires_days)
    signing = _signing(settings)
    now = current_keyset(settings)
    keys = {k: now.trust.get(k) for k in now.trust} if now is not None else {}
    keys[signing.key_id] = signing.public_key
    for extra in add:
        keys[extra.key_id] = extra.public_key
    for key_id in drop:
        if key_id not in keys:
            raise KeyOpError(f"key {key_id} is not in the keyset ({', '.join(sorted(keys))})")
        if key_id == signing.key_id or any(k.key_id == key_id for k in add):
            raise KeyOpError(f"key {key_id} signs configs now: it cannot be dropped (rotate first)")
        del keys[key_id]
    void = (
        (now.void_epochs_from if now is not None else None)
        if void_epochs_from is False
        else void_epochs_from
    )
    assert not isinstance(void, bool)
    raw = sign_keyset(
        version=(now.version + 1) if now is not None else 1,
        keys=keys.values(),
        root=root,
        expires_in=expires,
        void_epochs_from=void,
    )
    keyset = verify_keyset(raw, root=TrustStore([root.public_key]))
    write_atomic(settings.keyset_file, raw, mode=0o644)
    _audit(
        settings,
        "keys.keyset.sign",
        {
            "version": keyset.version,
            "keys": keyset.key_ids,
            "dropped": list(drop),
            "expires_at": keyset.expires_at.isoformat(),
            "void_epochs_from": keyset.void_epochs_from,
            "root_key_id": root.key_id,
        },
    )
    return KeysetPlan(keyset, signing.key_id)


def rotate_signing(
    settings: ManagerSettings, root: SigningKey, *, expires_days: float = DEFAULT_KEYSET_DAYS
) -> KeysetPlan:
    """A new signing key: a keyset listing it beside the old one, written first, then the
    trust store (for services still on a trust file), then the key itself. The running
    manager notices, publishes the keyset and re-signs every current config."""
    old = _signing(settings)
    new = SigningKey.generate()
    plan = sign_new_keyset(settings, root, expires_days=expires_days, add=(new,))
    trust_file = settings.trust_store_file
    trust = TrustStore.load(trust_file) if trust_file.exists() else TrustStore([old.public_key])
    trust.add(new.public_key)
    write_atomic(trust_file, trust.to_pem(), mode=0o644)
    retired = settings.signing_key_file.parent / "retired" / f"signing-{old.key_id}.pem"
    with contextlib.suppress(FileExistsError):
        write_atomic(retired, old.private_pem(), overwrite=False)
    write_atomic(settings.signing_key_file, new.private_pem())
    _audit(
        settings,
        "keys.signing.rotate",
        {"from": old.key_id, "to": new.key_id, "keyset_version": plan.keyset.version},
    )
    return KeysetPlan(plan.keyset, new.key_id)


@dataclass(frozen=True)
class MasterRotation:
    """What ``rotate_master`` did."""

    old_key_id: str
    new_key_id: str
    versions: dict[str, int]  # service -> the new version holding its re-encrypted secrets
    data_key_files: list[Path]


def _master_id(master: bytes) -> str:
    """A short, non-secret id of a master key (its data-key id for a fixed label)."""
    return derive_data_key(master, "master-key-id").key_id


def _has_secret(values: object) -> bool:
    if is_encrypted(values):
        return True
    if isinstance(values, dict):
        return any(_has_secret(v) for v in values.values())
    if isinstance(values, list):
        return any(_has_secret(v) for v in values)
    return False


def rotate_master(settings: ManagerSettings) -> MasterRotation:
    """A new master key: every current config holding secrets is stored again as a new
    version with its secrets re-encrypted (published by the manager's outbox at its next
    start), and every service's data key file is replaced (the old one is kept as
    ``<service>.previous.key`` so services still read what they hold). The old master key
    moves to ``keys/retired/``: the immutable history stays readable with it.

    The manager must be stopped (it holds the database and the key in memory).
    """
    held = _manager_holding(settings)
    if held is not None:
        raise KeyOpError(
            f"{held}: stop the manager first (services keep running on their configs meanwhile)"
        )
    try:
        old = load_master_key(settings.master_key_file)
    except KeyFileError as exc:
        raise KeyOpError(str(exc)) from None
    retired = [load_master_key(path) for path in retired_master_files(settings.master_key_file)]
    new = os.urandom(32)
    old_id, new_id = _master_id(old), _master_id(new)
    sqlite = settings.database_url is None
    lock = database_lock(settings.db_file)
    with (
        hold_lock(lock, f"the database {settings.db_file}") if sqlite else contextlib.nullcontext()
    ):
        migrate(settings.database)
        versions = asyncio.run(_reencrypt(settings, old, retired, new, old_id, new_id))
        files = _write_data_keys(settings, old, new, versions)
    return MasterRotation(old_id, new_id, versions, files)


def _write_data_keys(
    settings: ManagerSettings, old: bytes, new: bytes, versions: dict[str, int]
) -> list[Path]:
    folder = settings.data_dir / "keys" / "services"
    services = {p.name.removesuffix(".key") for p in folder.glob("*.key")}
    services = {s for s in services if not s.endswith(".previous")} | set(versions)
    written: list[Path] = []
    for service in sorted(services):
        path = settings.data_key_file(service)
        previous = path.with_name(f"{service}.previous.key")
        save_data_key(previous, derive_data_key(old, service), overwrite=True)
        save_data_key(path, derive_data_key(new, service), overwrite=True)
        written.append(path)
    return written


async def _reencrypt(
    settings: ManagerSettings,
    old: bytes,
    retired: list[bytes],
    new: bytes,
    old_id: str,
    new_id: str,
) -> dict[str, int]:
    from .store import AuditEntry, ConfigStore, NewVersion

    async with ConfigStore(settings.database) as store:
        # The old key is kept (decrypt-only) before anything is encrypted with the new
        # one, and the new one is in place before the database refers to it: a crash at
        # any point leaves every stored secret readable.
        master = settings.master_key_file
        archive = master.parent / "retired" / f"master-{old_id}.key"
        write_atomic(archive, base64.b64encode(old) + b"\n", overwrite=False)
        write_atomic(master, base64.b64encode(new) + b"\n")
        changes = []
        for current in await store.current_all():
            if not _has_secret(current.values):
                continue
            service = current.service
            keys = [derive_data_key(m, service) for m in (old, *retired)]
            values = reencrypt_secrets(
                current.values, service=service, keys=keys, key=derive_data_key(new, service)
            )
            changes.append(NewVersion(service, current.version, values))
        audit = AuditEntry(
            actor="cli",
            action="keys.master.rotate",
            detail={"from": old_id, "to": new_id, "services": [c.service for c in changes]},
        )
        stored = []
        if changes:
            stored = await store.write(changes, actor="cli", audit=[audit])
        else:
            await store.add_audit(audit)
    return {v.service: v.version for v in stored}


@dataclass(frozen=True)
class EpochReset:
    """What ``reset_epoch`` did."""

    plan: KeysetPlan
    db_epoch: tuple[int, int]  # (before, after)


def reset_epoch(
    settings: ManagerSettings,
    root: SigningKey,
    *,
    void_from: int,
    expires_days: float = DEFAULT_KEYSET_DAYS,
) -> EpochReset:
    """The root-signed epoch floor reset: a keyset declaring epochs from ``void_from`` on
    void. Services then apply what this database publishes again, whatever bad (too
    high) epoch they hold, without touching their LKG files; a replay of anything signed
    at a void epoch is refused (``void_epoch``).

    The database's epoch must be below ``void_from``; if it is not (a read-back raised it),
    it is set to the clock's (the manager must then be stopped).
    """
    from config_lib import MAX_POSITION

    if not 1 <= void_from <= MAX_POSITION:
        raise KeyOpError("--void-from must be an epoch from 1 to 2^48-1")
    migrate(settings.database)
    with open_sync(settings.database) as conn, conn.transaction():
        before = after = read_epoch_sync(conn)
        if before >= void_from:
            held = _manager_holding(settings)
            if held is not None:
                raise KeyOpError(
                    f"the database's epoch {before} is in the range to void: {held}: stop "
                    "the manager first so that its epoch can move below it"
                )
            after = int(time.time())
            if after >= void_from:
                raise KeyOpError(
                    f"--void-from {void_from} is not above the clock ({after}): the database's "
                    "epoch could not move below it"
                )
            conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(after),))
    plan = sign_new_keyset(settings, root, expires_days=expires_days, void_epochs_from=void_from)
    _audit(
        settings,
        "keys.epoch.reset",
        {"void_from": void_from, "keyset_version": plan.keyset.version, "epoch": [before, after]},
    )
    return EpochReset(plan, (before, after))
