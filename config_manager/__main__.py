"""Command line: ``python -m config_manager [serve|init|token|epoch|keys|copy-to-postgres ...]``."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> object:
    """The settings (environment) with the command line's overrides."""
    from .settings import ManagerSettings

    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "host", None) is not None:
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "dev", False):
        overrides["dev_mode"] = True
    return ManagerSettings(**overrides)  # type: ignore[arg-type]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .bootstrap import startup_problems
    from .settings import ManagerSettings

    settings = _settings(args)
    assert isinstance(settings, ManagerSettings)
    from .lockfile import LockHeld, database_lock, lock_holder

    sqlite = settings.database_url is None  # PostgreSQL: the store's advisory lock
    holder = lock_holder(database_lock(settings.db_file)) if sqlite else None
    if holder is not None:
        held = LockHeld(f"the database {settings.db_file}", database_lock(settings.db_file), holder)
        print(f"config manager: refusing to start: {held}", file=sys.stderr)
        return 2
    problems = startup_problems(settings)
    if problems:
        print("config manager: refusing to start:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=bool(getattr(args, "access_log", False)),
        # open /api/v1/events streams would otherwise hold up shutdown forever
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    return 0


def _init(args: argparse.Namespace) -> int:
    from config_lib import MqttEndpoint

    from .bootstrap import init_data_dir
    from .settings import ManagerSettings

    settings = _settings(args)
    assert isinstance(settings, ManagerSettings)
    port = args.mqtt_port or MqttEndpoint.from_url(settings.mqtt_url).port
    result = init_data_dir(
        settings.data_dir, mqtt_port=port, dev=args.dev, database=settings.database
    )
    if not result.changed:
        print(f"{result.data_dir}: already initialised, nothing changed")
    for path in result.created:
        print(f"created  {path}")
    for path in result.updated:
        print(f"updated  {path}")
    if result.admin_token:
        print()
        print(f"First admin API token (shown once; also in {result.admin_token_file}):")
        print(f"  {result.admin_token}")
    return 0


def _token(args: argparse.Namespace) -> int:
    from .settings import ManagerSettings
    from .tokens import Role, create_token_sync

    settings = _settings(args)
    assert isinstance(settings, ManagerSettings)
    if args.token_command == "create":  # noqa: S105 - a subcommand name, not a password
        try:
            token = create_token_sync(
                settings.database, args.name, Role(args.role), services=args.service
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"token {args.name!r} ({args.role}), shown once:", file=sys.stderr)
        print(token)
        return 0
    return 2


def _epoch(args: argparse.Namespace) -> int:
    from .db import audit_sync, bump_epoch_sync, migrate, read_epoch_sync
    from .dialects import open_sync
    from .settings import ManagerSettings

    settings = _settings(args)
    assert isinstance(settings, ManagerSettings)
    migrate(settings.database)
    with open_sync(settings.database) as conn:
        if args.epoch_command == "bump":
            with conn.transaction():
                old = read_epoch_sync(conn)
                new = bump_epoch_sync(conn)
                audit_sync(conn, actor="cli", action="epoch.bump", detail={"from": old, "to": new})
            print(f"epoch {old} -> {new}")
        else:
            print(read_epoch_sync(conn))
    return 0


def _copy_to_postgres(args: argparse.Namespace) -> int:
    from .dbcopy import CopyError, copy_sqlite_to_postgres
    from .dialects import PostgresUrl
    from .settings import ManagerSettings

    settings = _settings(args)
    assert isinstance(settings, ManagerSettings)
    source = args.source or settings.db_file
    try:
        if args.to:
            target = PostgresUrl(args.to)
        elif settings.database_url is not None:
            target = PostgresUrl(settings.database_url.get_secret_value())
        else:
            print(
                "error: no target: pass --to postgresql://... or set CONFIG_MANAGER_DATABASE_URL",
                file=sys.stderr,
            )
            return 2
        result = copy_sqlite_to_postgres(source, target, replace=args.replace)
    except (CopyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    copied = ", ".join(f"{table} {count}" for table, count in sorted(result.rows.items()))
    print(f"copied {source} -> {target}: {copied}")
    print(f"epoch {result.epoch}; {result.pending} outbox rows still to publish")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from .keyops import (
        KeyOpError,
        create_root,
        current_keyset,
        load_root,
        reset_epoch,
        rotate_master,
        rotate_signing,
        sign_new_keyset,
    )
    from .settings import ManagerSettings

    settings = _settings(args)
    assert isinstance(settings, ManagerSettings)
    command = args.keys_command
    try:
        if command == "create-root":
            root = create_root(settings, args.root_key)
            print(f"root key {root.key_id} written to {args.root_key} (keep it offline)")
            print(f"root public key added to {settings.root_public_key_file}")
            keyset = current_keyset(settings)
            if keyset is not None:
                print(f"keyset version {keyset.version}: keys {', '.join(keyset.key_ids)}")
            return 0
        if command == "show":
            keyset = current_keyset(settings)
            if keyset is None:
                print(f"no keyset ({settings.keyset_file}): services use their trust store")
                return 0
            print(
                f"keyset version {keyset.version}, root {keyset.root_key_id}, "
                f"expires {keyset.expires_at.isoformat()}"
            )
            print(f"keys: {', '.join(keyset.key_ids)}")
            if keyset.void_epochs_from is not None:
                print(f"void epochs from: {keyset.void_epochs_from}")
            return 0
        if command == "rotate-master":
            done = rotate_master(settings)
            print(
                f"master key {done.old_key_id} -> {done.new_key_id} (old one kept in keys/retired/)"
            )
            for service, version in sorted(done.versions.items()):
                print(f"  {service}: secrets re-encrypted as version {version}")
            print(
                f"{len(done.data_key_files)} service data key files replaced (the old key "
                "kept as <service>.previous.key): give them to the services, then start the "
                "manager; it publishes the new versions"
            )
            return 0
        root = load_root(settings, args.root_key)
        if command == "sign-keyset":
            plan = sign_new_keyset(
                settings, root, expires_days=args.expires_days, drop=tuple(args.drop or ())
            )
        elif command == "rotate-signing":
            plan = rotate_signing(settings, root, expires_days=args.expires_days)
        elif command == "reset-epoch":
            reset = reset_epoch(
                settings, root, void_from=args.void_from, expires_days=args.expires_days
            )
            plan = reset.plan
            before, after = reset.db_epoch
            print(f"epochs from {args.void_from} are void for every service")
            if before != after:
                print(f"database epoch {before} -> {after}")
        else:  # pragma: no cover - argparse restricts the choices
            return 2
    except KeyOpError as exc:
        print(f"config manager: keys {command}: {exc}", file=sys.stderr)
        return 1
    keyset = plan.keyset
    print(
        f"keyset version {keyset.version} written to {settings.keyset_file}: keys "
        f"{', '.join(keyset.key_ids)}; signing key {plan.signing_key_id}; expires "
        f"{keyset.expires_at.isoformat()}"
    )
    print("a running manager publishes it and re-signs the current configs within seconds")
    return 0


def _positive_days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 days")
    return value


class _Parser(argparse.ArgumentParser):
    """Bad command-line input: one line (and exit code 2), not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m config_manager",
        description="Config manager: typed, versioned configs published signed over MQTT.",
    )
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the HTTP API (the default)")
    for p in (parser, serve):
        p.add_argument("--data-dir", type=Path, default=None, help="data directory")
        p.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="listen port (default 8081)")
        p.add_argument("--dev", action="store_true", help="development mode")
        p.add_argument("--access-log", action="store_true", help="log every request")

    init = sub.add_parser("init", help="create the data directory (idempotent)")
    init.add_argument("--data-dir", type=Path, default=None)
    init.add_argument(
        "--mqtt-port",
        type=int,
        default=None,
        help="broker port for the rendered mosquitto.conf (default: CONFIG_MANAGER_MQTT_URL's)",
    )
    init.add_argument("--dev", action="store_true", help="development mode")

    token = sub.add_parser("token", help="manage API tokens")
    token.add_argument("--data-dir", type=Path, default=None)
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it once")
    create.add_argument("--role", choices=["viewer", "editor", "admin"], required=True)
    create.add_argument(
        "--service",
        action="append",
        default=None,
        help="limit the token to this service (repeat for several; default: every service)",
    )
    create.add_argument("name")

    epoch = sub.add_parser("epoch", help="show or bump the config epoch (manager stopped)")
    epoch.add_argument("--data-dir", type=Path, default=None)
    epoch.add_argument("epoch_command", choices=["show", "bump"])

    keys = sub.add_parser(
        "keys",
        help="root key, keyset and signing-key rotation (the root key stays offline)",
        description="The root key (kept offline, named by --root-key) signs the keyset: "
        "the keys services accept configs from. A running manager publishes a new keyset "
        "and re-signs the current configs within seconds; no service restarts.",
    )
    keys.add_argument("--data-dir", type=Path, default=None)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    root_help = "the offline root private key (PEM), outside the data directory"
    create_root = keys_sub.add_parser("create-root", help="create the root key (once)")
    create_root.add_argument("--root-key", type=Path, required=True, help=root_help)
    keys_sub.add_parser("show", help="show the keyset in force (no root key needed)")
    sign = keys_sub.add_parser(
        "sign-keyset", help="sign the next keyset version (e.g. to drop a retired key)"
    )
    rotate = keys_sub.add_parser(
        "rotate-signing", help="new signing key: keyset lists new and old, configs re-signed"
    )
    reset = keys_sub.add_parser(
        "reset-epoch",
        help="root-signed epoch floor reset: epochs from --void-from on are void, so the "
        "fleet applies this database's configs again (no LKG file touched)",
    )
    reset.add_argument(
        "--void-from",
        type=int,
        required=True,
        metavar="EPOCH",
        help="the lowest bad epoch (the fleet's too-high epoch, e.g. from /sync)",
    )
    for p in (sign, rotate, reset):
        p.add_argument("--root-key", type=Path, required=True, help=root_help)
        p.add_argument(
            "--expires-days",
            type=_positive_days,
            default=90.0,
            help="validity of the new keyset (default 90 days)",
        )
    keys_sub.add_parser(
        "rotate-master",
        help="new master key: every stored secret re-encrypted as a new version (manager stopped)",
    )
    sign.add_argument(
        "--drop", action="append", metavar="KEY_ID", help="leave this key out (repeatable)"
    )

    copy = sub.add_parser(
        "copy-to-postgres",
        help="copy a SQLite database to PostgreSQL, once (manager stopped)",
        description="Copy every row of the manager's SQLite database to an empty PostgreSQL "
        "database (migrated first). Then set CONFIG_MANAGER_DATABASE_URL and start the "
        "manager on PostgreSQL.",
    )
    copy.add_argument("--data-dir", type=Path, default=None)
    copy.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="the SQLite file (default: the data dir's manager.db)",
    )
    copy.add_argument(
        "--to", default=None, help="PostgreSQL URL (default: CONFIG_MANAGER_DATABASE_URL)"
    )
    copy.add_argument(
        "--replace",
        action="store_true",
        help="delete what the target already holds first (refused without it)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import psycopg

    from config_lib import ConfigLibError

    args = _parser().parse_args(argv)
    commands = {
        "init": _init,
        "token": _token,
        "epoch": _epoch,
        "keys": _keys,
        "copy-to-postgres": _copy_to_postgres,
    }
    command = commands.get(args.command)
    if command is None:
        return _serve(args)
    try:
        return command(args)
    except ConfigLibError as exc:  # a key file missing or malformed: one line
        print(f"config manager: {exc}", file=sys.stderr)
    except sqlite3.OperationalError as exc:  # disk full, read-only, I/O error: one line
        print(f"config manager: the database cannot be used: {exc}", file=sys.stderr)
    except psycopg.OperationalError as exc:  # server unreachable, authentication failed
        reason = " ".join(str(exc).split())
        print(f"config manager: the database cannot be used: {reason}", file=sys.stderr)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"config manager: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
