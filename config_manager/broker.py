"""Mosquitto for this project: render its files from the templates in ``mosquitto/`` and run it.

Used by the first-start bootstrap, by ``make run`` and by the test fixtures, so that tests
run the broker with the project's own configuration and ACLs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template

from config_lib import write_atomic

__all__ = [
    "BrokerFiles",
    "MosquittoProcess",
    "find_mosquitto",
    "free_port",
    "hash_password",
    "mqtt_login",
    "render_broker_files",
    "template_dir",
    "write_password_file",
]

# Debian installs the broker in /usr/sbin, which is not on every user's PATH.
_MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
_PBKDF2_ITERATIONS = 20_000  # mosquitto_passwd itself uses 101; each login pays this once


def template_dir() -> Path:
    """The repository's ``mosquitto/`` folder holding the templates."""
    env = os.environ.get("CONFIG_MANAGER_MOSQUITTO_TEMPLATES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "mosquitto"


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in _MOSQUITTO_CANDIDATES if os.access(p, os.X_OK)), None)


def hash_password(password: str, *, iterations: int = _PBKDF2_ITERATIONS) -> str:
    """A password-file entry in Mosquitto 2's ``$7$`` format (PBKDF2-HMAC-SHA512)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_password_file(
    path: Path, users: Mapping[str, str], *, hashed: dict[tuple[str, str], str] | None = None
) -> None:
    """Write a mosquitto password file for ``{user: plaintext password}`` (mode 0600).

    ``hashed`` is an optional cache of entries already computed, so rewriting a file to
    add one user does not re-hash every other user.
    """
    cache = hashed if hashed is not None else {}
    for item in users.items():
        if item not in cache:
            cache[item] = hash_password(item[1])
    lines = "".join(f"{user}:{cache[(user, pw)]}\n" for user, pw in sorted(users.items()))
    write_atomic(path, lines.encode(), overwrite=True)


@dataclass(frozen=True)
class BrokerFiles:
    """Where one broker instance keeps its files."""

    folder: Path

    @property
    def conf(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def password_file(self) -> Path:
        return self.folder / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.folder / "acl"

    @property
    def persistence_dir(self) -> Path:
        return self.folder / "persistence"

    @property
    def log_file(self) -> Path:
        return self.folder / "mosquitto.log"


def render_broker_files(
    files: BrokerFiles,
    *,
    port: int,
    bind: str = "127.0.0.1",
    tls: Mapping[str, str] | None = None,
    log_to_file: bool = True,
) -> None:
    """Render ``mosquitto.conf`` and the ACL from the templates (the password file is separate).

    ``tls`` maps TLS_PORT, CA_FILE, CERT_FILE and KEY_FILE to enable the TLS listener.
    """
    templates = template_dir()
    files.folder.mkdir(parents=True, exist_ok=True)
    files.persistence_dir.mkdir(exist_ok=True)
    tls_block = ""
    if tls:
        tls_block = Template((templates / "tls-listener.conf.template").read_text()).substitute(
            BIND=bind, **tls
        )
    conf = Template((templates / "mosquitto.conf.template").read_text()).substitute(
        PERSISTENCE_DIR=str(files.persistence_dir),
        PASSWORD_FILE=str(files.password_file),
        ACL_FILE=str(files.acl_file),
        LOG_DEST=f"file {files.log_file}" if log_to_file else "stderr",
        PORT=str(port),
        BIND=bind,
        TLS_LISTENER=tls_block,
        # Started as root, mosquitto would switch to the `mosquitto` user, which cannot
        # read a data folder private to root; a local stack run by root keeps root instead.
        RUN_AS_USER="user root" if os.geteuid() == 0 else "",
    )
    write_atomic(files.conf, conf.encode(), mode=0o600)
    write_atomic(files.acl_file, (templates / "acl.template").read_bytes(), mode=0o600)
    if log_to_file and not files.log_file.exists():
        write_atomic(files.log_file, b"", mode=0o600)
    files.folder.chmod(0o700)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _encode_str(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(2, "big") + data


def mqtt_login(
    host: str, port: int, username: str | None, password: str | None, timeout: float = 2.0
) -> int | None:
    """Send one MQTT 3.1.1 CONNECT and return the CONNACK return code (0 = accepted).

    Returns None if nothing listens or no CONNACK arrives in time. Used to wait for the
    broker to be ready and to check credentials without a client library.
    """
    flags = 0x02  # clean session
    payload = _encode_str(f"probe-{secrets.token_hex(4)}")
    if username is not None:
        flags |= 0x80
        payload += _encode_str(username)
        if password is not None:
            flags |= 0x40
            payload += _encode_str(password)
    body = _encode_str("MQTT") + bytes([4, flags]) + (10).to_bytes(2, "big") + payload
    remaining = len(body)
    length = bytearray()
    while True:
        byte, remaining = remaining % 128, remaining // 128
        length.append(byte | (0x80 if remaining else 0))
        if not remaining:
            break
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(bytes([0x10]) + bytes(length) + body)
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    return None
                reply += chunk
            with contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return None
    return reply[3] if reply[0] == 0x20 else None


def _port_taken(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoProcess:
    """A mosquitto child process running a rendered configuration."""

    def __init__(self, files: BrokerFiles, *, host: str = "127.0.0.1", port: int) -> None:
        self.files = files
        self.host = host
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and return once it answers MQTT CONNECT on its port."""
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError(
                "mosquitto is not installed: "
                "run `sudo apt-get install -y mosquitto mosquitto-clients`"
            )
        if _port_taken(self.host, self.port):
            raise RuntimeError(f"port {self.port} on {self.host} is already in use")
        stderr_path = self.files.folder / "stderr.log"
        with stderr_path.open("wb") as stderr:
            self._proc = subprocess.Popen(
                [binary, "-c", str(self.files.conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = stderr_path.read_text(errors="replace").strip().splitlines()
                raise RuntimeError(
                    f"mosquitto exited with {self._proc.returncode}: {err[-1] if err else ''}"
                )
            if mqtt_login(self.host, self.port, None, None, timeout=0.5) is not None:
                return
            time.sleep(0.02)  # readiness poll of a starting process, bounded by the deadline
        self.stop()
        raise RuntimeError(f"mosquitto did not answer on port {self.port} within {timeout}s")

    def reload(self) -> None:
        """Ask mosquitto to reload its password and ACL files (SIGHUP)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL), as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
