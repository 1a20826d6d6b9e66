"""The broker seam of the test fixtures: start, add a user with permissions, stop.

Two implementations, each started from the project's own rules:

* :class:`MosquittoBroker` runs mosquitto with the rendered ``mosquitto/*.template`` files
  (password file + ACL, reloaded with SIGHUP when a user is added);
* :class:`RabbitMQBroker` runs RabbitMQ 3.10 with its MQTT plugin (Debian's
  ``rabbitmq-server``) as a temporary node: its own directories, every port (MQTT, the
  management API used to add users, Erlang distribution and its own epmd) on a free
  loopback port. The ACL template is translated into RabbitMQ topic permissions on
  ``amq.topic`` (routing keys use ``.`` where MQTT topics use ``/``).

Both give a user the rights :func:`acl_rights` reads from ``mosquitto/acl.template``
(standard users by name, any other user is a service user through the ``%u`` patterns),
or exactly the rights passed to :meth:`add_user`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol
from urllib.parse import quote

import httpx

from config_lib import MqttEndpoint
from config_manager.broker import (
    BrokerFiles,
    MosquittoProcess,
    find_mosquitto,
    free_port,
    mqtt_login,
    render_broker_files,
    template_dir,
    write_password_file,
)

__all__ = [
    "STANDARD_USERS",
    "BrokerSeam",
    "LazyRabbitMQ",
    "MosquittoBroker",
    "RabbitMQBroker",
    "Rights",
    "acl_rights",
    "find_rabbitmq",
    "topic_filter_regex",
]

STANDARD_USERS = ("manager", "debug", "stt", "orchestrator", "client")
_RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
_EPMD_CANDIDATES = ("/usr/bin/epmd", "/usr/lib/erlang/bin/epmd")


@dataclass(frozen=True)
class Rights:
    """MQTT topic filters a user may read (subscribe to) and write (publish to)."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


def acl_rights(user: str, template: Path | None = None) -> Rights:
    """What ``mosquitto/acl.template`` lets ``user`` do: its ``user`` block, if any, and
    the ``pattern`` lines with ``%u`` replaced (mosquitto applies those to every user)."""
    text = (template or template_dir() / "acl.template").read_text()
    read: list[str] = []
    write: list[str] = []
    current: str | None = None
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            current = words[1]
            continue
        if words[0] == "pattern":
            mode, topic = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
            topic = topic.replace("%u", user)
        elif words[0] == "topic" and current == user:
            mode, topic = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
        else:
            continue
        if mode in ("read", "readwrite"):
            read.append(topic)
        if mode in ("write", "readwrite"):
            write.append(topic)
    return Rights(tuple(read), tuple(write))


def topic_filter_regex(filters: Sequence[str]) -> str:
    """One RabbitMQ topic-permission regex for MQTT topic filters (``/`` becomes ``.``).

    A filter ending in ``#`` also matches its parent, ``+`` one level. RabbitMQ checks a
    subscription's routing-key pattern (``config.#``) against the same regex, so a
    wildcard subscription is allowed when its literal pattern matches. No filter: a regex
    that matches no routing key.
    """
    parts = []
    for topic in filters:
        levels = topic.split("/")
        out = []
        for i, level in enumerate(levels):
            if level == "#" and i == len(levels) - 1:
                out.append(r"(\..*)?" if out else ".*")
                continue
            sep = r"\." if out else ""
            out.append(sep + ("[^.]+" if level == "+" else re.escape(level)))
        parts.append("".join(out))
    if not parts:
        return "^$"
    return "^(" + "|".join(parts) + ")$"


class BrokerSeam(Protocol):
    """What a test needs from a broker, whichever it is."""

    kind: str
    host: str
    port: int

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def add_user(self, user: str, rights: Rights) -> str: ...
    def password(self, user: str) -> str: ...
    def endpoint(self, user: str) -> MqttEndpoint: ...
    def url(self, user: str) -> str: ...


class _Users:
    """Shared bookkeeping: ``password(user)`` creates a user with the ACL template's rights."""

    users: dict[str, str]
    host: str
    port: int

    def add_user(self, user: str, rights: Rights) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def password(self, user: str) -> str:
        """The password of ``user``; an unknown user is created with the project's rights.

        Any user that is not a standard one is a service user: the ACL patterns let it
        read ``config/updated/<user>`` and write ``config/applied/<user>/#``.
        """
        if user not in self.users:
            self.add_user(user, acl_rights(user))
        return self.users[user]

    def endpoint(self, user: str) -> MqttEndpoint:
        return MqttEndpoint(self.host, self.port, user, self.password(user))

    def url(self, user: str) -> str:
        return f"mqtt://{user}:{self.password(user)}@{self.host}:{self.port}"

    def _wait_for_login(self, user: str, deadline_s: float = 10.0) -> None:
        deadline = time.monotonic() + deadline_s
        # Wait until the broker accepts the new user (bounded readiness poll).
        while mqtt_login(self.host, self.port, user, self.users[user]) != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"broker did not pick up user {user!r}")
            time.sleep(0.02)


@dataclass
class MosquittoBroker(_Users):
    """A running mosquitto started from mosquitto/*.template, with auth and ACLs on."""

    process: MosquittoProcess
    files: BrokerFiles
    users: dict[str, str] = field(default_factory=dict)
    hashed: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    kind: ClassVar[str] = "mosquitto"

    @classmethod
    def create(cls, folder: Path) -> MosquittoBroker:
        """Render the project's files in ``folder`` and start the broker on a free port."""
        if find_mosquitto() is None:
            raise RuntimeError(
                "mosquitto is not installed: apt-get install -y mosquitto mosquitto-clients"
            )
        files = BrokerFiles(folder)
        port = free_port()
        render_broker_files(files, port=port)
        users = {u: secrets.token_urlsafe(16) for u in STANDARD_USERS}
        write_password_file(files.password_file, users)
        broker = cls(MosquittoProcess(files, port=port), files, users)
        broker.start()
        return broker

    @property
    def host(self) -> str:  # type: ignore[override]
        return self.process.host

    @property
    def port(self) -> int:  # type: ignore[override]
        return self.process.port

    def add_user(self, user: str, rights: Rights) -> str:
        """Add ``user`` with a random password; rights other than the template's are
        appended to the ACL as a ``user`` block. The broker reloads (SIGHUP)."""
        self.users[user] = secrets.token_urlsafe(16)
        if rights != acl_rights(user):
            lines = [f"\nuser {user}"]
            lines += [f"topic read {t}" for t in rights.read]
            lines += [f"topic write {t}" for t in rights.write]
            with self.files.acl_file.open("a") as acl:
                acl.write("\n".join(lines) + "\n")
        write_password_file(self.files.password_file, self.users, hashed=self.hashed)
        self.process.reload()
        self._wait_for_login(user)
        return self.users[user]

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()


def find_rabbitmq() -> Path | None:
    """The folder of RabbitMQ's scripts (``rabbitmq-server``...), or None if not installed."""
    server = _RABBITMQ_BIN / "rabbitmq-server"
    return _RABBITMQ_BIN if os.access(server, os.X_OK) else None


def _find_epmd() -> str | None:
    found = shutil.which("epmd")
    return found or next((p for p in _EPMD_CANDIDATES if os.access(p, os.X_OK)), None)


class RabbitMQBroker(_Users):
    """A temporary RabbitMQ node with the MQTT plugin, started and stopped by the tests."""

    kind: ClassVar[str] = "rabbitmq"

    def __init__(self, folder: Path, *, host: str = "127.0.0.1") -> None:
        self.folder = folder
        self.host = host
        self.port = free_port(host)
        self.api_port = free_port(host)
        self.epmd_port = free_port(host)
        self.dist_port = free_port(host)
        self.users = {}
        self.rights: dict[str, Rights] = {}
        self.node = f"sc{secrets.token_hex(4)}@localhost"
        self._admin = ("admin", secrets.token_urlsafe(16))
        self._server: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self.started_in_s: float | None = None

    # -- files and environment -----------------------------------------------------------
    def _env(self) -> dict[str, str]:
        f = self.folder
        ctl = free_port(self.host)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(f),  # the Erlang cookie is created here
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(f / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(f / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(f / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(f / "mnesia"),
            "RABBITMQ_LOG_BASE": str(f / "log"),
            "RABBITMQ_PID_FILE": str(f / "rabbitmq.pid"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(ctl),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(ctl),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": self.host,
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _write_files(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's
        (self.folder / "enabled_plugins").write_text("[rabbitmq_mqtt,rabbitmq_management].\n")
        user, password = self._admin
        (self.folder / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    "listeners.tcp = none",
                    f"mqtt.listeners.tcp.default = {self.host}:{self.port}",
                    "mqtt.allow_anonymous = false",
                    "mqtt.vhost = /",
                    "mqtt.exchange = amq.topic",
                    f"management.tcp.ip = {self.host}",
                    f"management.tcp.port = {self.api_port}",
                    "management.disable_stats = true",
                    f"default_user = {user}",
                    f"default_pass = {password}",
                    "default_user_tags.administrator = true",
                    "log.console = false",
                    "log.file.level = warning",
                    "",
                ]
            )
        )

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        """Start epmd and the node; return once MQTT and the management API answer."""
        scripts = find_rabbitmq()
        epmd = _find_epmd()
        if scripts is None or epmd is None:
            raise RuntimeError("RabbitMQ is not installed: apt-get install -y rabbitmq-server")
        begin = time.monotonic()
        self._write_files()
        env = self._env()
        # Our own epmd on our own port (Erlang would otherwise start one that outlives us).
        self._epmd = subprocess.Popen(
            [epmd, "-port", str(self.epmd_port), "-address", self.host],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with (self.folder / "server.log").open("wb") as out:
            self._server = subprocess.Popen(
                [str(scripts / "rabbitmq-server")],
                env=env,
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while mqtt_login(self.host, self.port, None, None, timeout=0.5) is None:
            if self._server.poll() is not None:
                tail = (self.folder / "server.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"rabbitmq-server exited with {self._server}: {tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"RabbitMQ did not answer MQTT within {timeout}s")
            time.sleep(0.1)  # readiness poll of a starting node, bounded by the deadline
        with self._api() as api:
            while True:
                try:
                    if api.get("/api/whoami").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"RabbitMQ's management API did not answer in {timeout}s")
                time.sleep(0.1)  # readiness poll, bounded by the deadline
        self.started_in_s = time.monotonic() - begin
        for user in STANDARD_USERS:
            self.password(user)

    def _api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://{self.host}:{self.api_port}", auth=self._admin, timeout=30
        )

    def add_user(self, user: str, rights: Rights) -> str:
        """Create ``user`` with full vhost rights (MQTT needs its queues) and topic rights
        on ``amq.topic`` translated from ``rights``."""
        password = secrets.token_urlsafe(16)
        name = quote(user, safe="")
        with self._api() as api:
            for path, body in (
                (f"/api/users/{name}", {"password": password, "tags": ""}),
                (
                    f"/api/permissions/%2F/{name}",
                    {"configure": ".*", "write": ".*", "read": ".*"},
                ),
                (
                    f"/api/topic-permissions/%2F/{name}",
                    {
                        "exchange": "amq.topic",
                        "write": topic_filter_regex(rights.write),
                        "read": topic_filter_regex(rights.read),
                    },
                ),
            ):
                response = api.put(path, json=body)
                if response.status_code not in (201, 204):
                    raise RuntimeError(f"RabbitMQ refused {path}: {response.text}")
        self.users[user] = password
        self.rights[user] = rights
        self._wait_for_login(user)
        return password

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the node (SIGTERM: a clean Erlang shutdown, then SIGKILL) and its epmd."""
        server, self._server = self._server, None
        if server is not None and server.poll() is None:
            # rabbitmq-server execs the Erlang VM, so this is the node itself.
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        epmd, self._epmd = self._epmd, None
        if epmd is not None and epmd.poll() is None:
            epmd.terminate()
            epmd.wait(10)


class LazyRabbitMQ:
    """One RabbitMQ node per test session, started at most once and only when asked.

    :meth:`begin` starts it in a background thread (called at collection time when a
    selected test needs it, so its boot overlaps the tests that run first); :meth:`get`
    waits for it (or starts it then); :meth:`close` stops it at the end of the session.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._broker: RabbitMQBroker | None = None
        self._error: BaseException | None = None
        self._folder: Path | None = None

    def begin(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._folder = Path(tempfile.mkdtemp(prefix="signed-config-rabbitmq-"))
            self._thread = threading.Thread(target=self._start, name="rabbitmq-start", daemon=True)
            self._thread.start()

    def _start(self) -> None:
        assert self._folder is not None
        broker = RabbitMQBroker(self._folder)
        self._broker = broker
        try:
            broker.start()
        except BaseException as exc:  # reported to every test that asks for the broker
            self._error = exc

    def get(self, timeout: float = 150.0) -> RabbitMQBroker:
        self.begin()
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"RabbitMQ did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"RabbitMQ could not be started: {self._error}")
        assert self._broker is not None
        return self._broker

    def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        thread.join(150)
        if self._broker is not None:
            self._broker.stop()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
