"""Command line: ``python -m config_manager [serve|init|token|epoch|copy-to-postgres ...]``."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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

    args = _parser().parse_args(argv)
    commands = {
        "init": _init,
        "token": _token,
        "epoch": _epoch,
        "copy-to-postgres": _copy_to_postgres,
    }
    command = commands.get(args.command)
    if command is None:
        return _serve(args)
    try:
        return command(args)
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
