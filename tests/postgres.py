"""A real PostgreSQL for the tests: Debian's ``postgresql`` package, one server per session.

:class:`PostgresServer` runs ``initdb`` in a temporary directory and starts the server on a
free 127.0.0.1 port (no Unix socket), as the ``postgres`` user when the tests run as root
(PostgreSQL refuses to run as root). Each test gets a database of its own
(:meth:`PostgresServer.new_database`). It trusts local TCP logins: a throwaway test server.
:class:`LazyPostgres` starts it at most once per session, only when a test asks for it,
and stops it at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from config_manager.broker import free_port
from config_manager.dialects import PostgresUrl

__all__ = ["LazyPostgres", "PostgresServer", "find_postgres_bin"]


def find_postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``initdb`` and ``pg_ctl``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): "
            "apt-get install -y postgresql (make test installs it)"
        )
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = 0
        self.bin = find_postgres_bin()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}\n{tail}"
            )

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        self.port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def url(self, database: str = "postgres") -> PostgresUrl:
        return PostgresUrl(f"postgresql://postgres@127.0.0.1:{self.port}/{database}")

    def new_database(self) -> PostgresUrl:
        """A new empty database of its own (for one test)."""
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url().url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} STRATEGY = FILE_COPY")
        return self.url(name)

    def stop(self) -> None:
        if self.port:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.port = 0
        shutil.rmtree(self.folder, ignore_errors=True)


class LazyPostgres:
    """One PostgreSQL server per test session, started on first use, stopped at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: PostgresServer | None = None
        self._error: BaseException | None = None

    def get(self) -> PostgresServer:
        with self._lock:
            if self._error is not None:
                raise RuntimeError(f"PostgreSQL could not be started: {self._error}")
            if self._server is None:
                server = PostgresServer(Path(tempfile.mkdtemp(prefix="signed-config-pg-")))
                try:
                    server.start()
                except BaseException as exc:
                    self._error = exc
                    server.stop()
                    raise RuntimeError(f"PostgreSQL could not be started: {exc}") from exc
                self._server = server
            return self._server

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None
