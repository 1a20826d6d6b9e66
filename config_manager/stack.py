"""`make run`: the whole local stack on embedded defaults, as plain processes.

    python -m config_manager.stack [--data-dir ./data] [--mqtt-port 1883] [--http-port 8081]

Runs the idempotent bootstrap, then starts mosquitto (the project's config), the config
manager, the STT worker and the orchestrator. Each process logs to
``<data dir>/logs/<name>.log`` and to the terminal behind a ``name |`` prefix. Ctrl-C stops
everything, in reverse order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .broker import BrokerFiles, find_mosquitto, mqtt_login, render_broker_files
from .lockfile import LockHeld, hold_lock, stack_lock
from .tls import ensure_local_certificates

__all__ = ["main"]

_COLOURS = {"mosquitto": 35, "manager": 36, "stt": 32, "orchestrator": 33, "stack": 1}


def _say(name: str, line: str) -> None:
    prefix = f"{name:>12} |"
    if sys.stdout.isatty():
        prefix = f"\033[{_COLOURS.get(name, 0)}m{prefix}\033[0m"
    print(f"{prefix} {line}", flush=True)


def _port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


@dataclass
class _Child:
    name: str
    argv: Sequence[str]
    env: dict[str, str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    pump: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
        )

    async def copy_output(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        log: IO[str]
        with self.log_path.open("a", encoding="utf-8") as log:
            async for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                log.write(line + "\n")
                log.flush()
                _say(self.name, line)

    async def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def _wait_until(check: object, what: str, limit_s: float, child: _Child) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if child.proc is not None and child.proc.returncode is not None:
            raise RuntimeError(
                f"{child.name} exited with code {child.proc.returncode}; see {child.log_path}"
            )
        if await asyncio.to_thread(check):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.1)  # readiness poll of a starting process, bounded by the deadline
    raise RuntimeError(f"{what} not ready after {limit_s:.0f}s; see {child.log_path}")


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - our own loopback URL
            return bool(resp.status == 200)
    except OSError:
        return False


async def _run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    if find_mosquitto() is None:
        _say(
            "stack",
            "mosquitto is not installed: run 'sudo apt-get install -y mosquitto mosquitto-clients'",
        )
        return 1
    conflict = _conflicting_env(args, data_dir)
    if conflict:
        _say("stack", conflict)
        return 1
    try:
        with hold_lock(stack_lock(data_dir), f"the data dir {data_dir}"):
            return await _run_locked(args, data_dir)
    except LockHeld as exc:
        _say("stack", f"{exc}: one stack per data dir (make run DATA_DIR=... for another)")
        return 1


async def _run_locked(args: argparse.Namespace, data_dir: Path) -> int:
    logs = data_dir / "logs"
    ports = (
        (args.mqtt_port, "MQTT_PORT", "the broker"),
        (args.http_port, "HTTP_PORT", "the manager"),
    )
    for port, variable, what in ports:
        if _port_in_use(port):
            _say(
                "stack",
                f"port {port} ({variable}, {what}) is already in use: stop what uses it "
                f"or choose another (e.g. make run {variable}={_other_port(port)})",
            )
            return 1

    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", **_child_env(args, data_dir))
    py = sys.executable

    # 1. First start: keys, database, passwords, admin token (idempotent).
    init = await asyncio.create_subprocess_exec(
        py, "-m", "config_manager", "init", "--data-dir", str(data_dir),
        "--mqtt-port", str(args.mqtt_port), env=env,
    )  # fmt: skip
    if await init.wait() != 0:
        _say("stack", "bootstrap failed (python -m config_manager init); nothing started")
        return 1

    files = BrokerFiles(data_dir / "mosquitto")
    tls = None
    if args.tls_port:
        certs = ensure_local_certificates(data_dir / "tls")
        tls = certs.as_template_values(args.tls_port)
        _say("stack", f"TLS listener on port {args.tls_port}; clients trust {certs.ca_file}")
    render_broker_files(files, port=args.mqtt_port, tls=tls, log_to_file=False)
    mosquitto = find_mosquitto()
    assert mosquitto is not None
    children = [
        _Child("mosquitto", [mosquitto, "-c", str(files.conf)], env, logs / "mosquitto.log")
    ]
    children.append(
        _Child("manager", [py, "-m", "config_manager", "serve"], env, logs / "manager.log")
    )
    missing = []
    for name, module in (("stt", "workers.stt"), ("orchestrator", "workers.orchestrator")):
        if importlib.util.find_spec(f"{module}.__main__") is None:
            missing.append(name)
        else:
            children.append(_Child(name, [py, "-m", module], env, logs / f"{name}.log"))

    async with asyncio.TaskGroup() as group:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        started: list[_Child] = []
        failed: str | None = None
        try:
            for child in children:
                await child.start()
                started.append(child)
                child.pump = group.create_task(child.copy_output(), name=f"log-{child.name}")
                if child.name == "mosquitto":
                    await _wait_until(
                        lambda: mqtt_login("127.0.0.1", args.mqtt_port, None, None) is not None,
                        "mosquitto",
                        15,
                        child,
                    )
                elif child.name == "manager":
                    await _wait_until(
                        lambda: _http_ok(f"http://127.0.0.1:{args.http_port}/healthz"),
                        "config manager",
                        30,
                        child,
                    )
        except RuntimeError as exc:
            failed = str(exc)
        if failed is None:
            _banner(args, data_dir, missing)
            exits = [group.create_task(c.proc.wait()) for c in started if c.proc]
            waiter = group.create_task(stop.wait())
            done, _ = await asyncio.wait([waiter, *exits], return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                dead = next(c for c in started if c.proc and c.proc.returncode is not None)
                code = dead.proc.returncode if dead.proc else "?"
                failed = f"{dead.name} exited with code {code}; see {dead.log_path}"
            waiter.cancel()
        if failed:
            _say("stack", f"stopping: {failed}")
        else:
            _say("stack", "stopping (Ctrl-C)")
        for child in reversed(started):
            await child.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    _say("stack", "stopped")
    return 1 if failed else 0


def _other_port(port: int) -> int:
    """A nearby port that is free now, for the hint."""
    for candidate in range(port + 1, port + 50):
        if candidate < 65536 and not _port_in_use(candidate):
            return candidate
    return port + 1


# What the stack sets for its children, and the stack option that decides it.
_CHILD_ENV = {
    "CONFIG_MANAGER_PORT": "HTTP_PORT",
    "CONFIG_MANAGER_MQTT_URL": "MQTT_PORT",
    "CONFIG_LIB_MQTT_URL": "MQTT_PORT",
    "CONFIG_MANAGER_DATA_DIR": "DATA_DIR",
    "CONFIG_LIB_DATA_DIR": "DATA_DIR",
    "CONFIG_LIB_LKG_DIR": "DATA_DIR",
}


def _child_env(args: argparse.Namespace, data_dir: Path) -> dict[str, str]:
    return {
        "CONFIG_MANAGER_DATA_DIR": str(data_dir),
        "CONFIG_MANAGER_MQTT_URL": f"mqtt://127.0.0.1:{args.mqtt_port}",
        "CONFIG_MANAGER_PORT": str(args.http_port),
        "CONFIG_LIB_DATA_DIR": str(data_dir),
        "CONFIG_LIB_MQTT_URL": f"mqtt://127.0.0.1:{args.mqtt_port}",
        "CONFIG_LIB_LKG_DIR": str(data_dir / "lkg"),
    }


def _same(variable: str, given: str, ours: str) -> bool:
    if variable.endswith("_DIR"):
        return Path(given).resolve() == Path(ours).resolve()
    return given.rstrip("/") == ours.rstrip("/")


def _conflicting_env(args: argparse.Namespace, data_dir: Path) -> str | None:
    """A message if the environment sets a child's variable the stack would overwrite.

    The stack decides ports and folders for all its processes (they must agree), so a
    different value in the environment would be silently ignored: refuse instead.
    """
    for variable, ours in _child_env(args, data_dir).items():
        given = os.environ.get(variable)
        if given is not None and not _same(variable, given, ours):
            option = _CHILD_ENV[variable]
            return (
                f"{variable}={given} is set, but the stack uses {ours} ({option}): "
                f"unset {variable} or set {option} instead (make run {option}=...)"
            )
    return None


def _shell_path(path: Path) -> str:
    """``path`` as short as it can be written from the current folder."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def _demo_command(args: argparse.Namespace, data_dir: Path) -> str:
    """The transcribe command, with exactly the options the ports and data dir in use need."""
    sample = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "jfk" / "jfk.flac"
    audio = _shell_path(sample) if sample.is_file() else "<a WAV or FLAC file>"
    parts = []
    password = data_dir / "secrets" / "mqtt" / "client.password"
    if password.resolve() != (Path("data") / "secrets/mqtt/client.password").resolve():
        parts.append(f"ORCHESTRATOR_CLIENT_MQTT_PASSWORD_FILE={shlex.quote(_shell_path(password))}")
    parts += [_shell_path(Path(sys.executable)), "-m workers.orchestrator transcribe"]
    parts.append(shlex.quote(audio) if sample.is_file() else audio)
    if args.mqtt_port != 1883:
        parts.append(f"--mqtt-url mqtt://127.0.0.1:{args.mqtt_port}")
    return " ".join(parts)


def _banner(args: argparse.Namespace, data_dir: Path, missing: list[str]) -> None:
    rel = _shell_path(data_dir)
    lines = [
        "",
        "The stack is up.",
        f"  Web editor:     http://127.0.0.1:{args.http_port}/",
        f"  API docs:       http://127.0.0.1:{args.http_port}/docs",
        f"  Admin token:    {rel}/secrets/admin.token   (send as 'Authorization: Bearer <token>')",
        "  Watch configs:  mosquitto_sub -h 127.0.0.1 -p "
        f'{args.mqtt_port} -u debug -P "$(cat {rel}/secrets/mqtt/debug.password)"'
        " -t 'config/#' -v",
        f"  Logs:           {rel}/logs/",
        f"  Try:            {_demo_command(args, data_dir)}",
    ]
    if missing:
        lines.append(f"  Not there yet:  {', '.join(missing)} (not started)")
    lines.append("Ctrl-C stops everything.")
    for line in lines:
        _say("stack", line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config_manager.stack", description=__doc__)
    parser.add_argument("--data-dir", default=os.environ.get("CONFIG_MANAGER_DATA_DIR", "data"))
    parser.add_argument("--mqtt-port", type=int, default=int(os.environ.get("MQTT_PORT", "1883")))
    parser.add_argument(
        "--tls-port",
        type=int,
        default=int(os.environ.get("MQTT_TLS_PORT", "0")),
        help="also listen with TLS on this port (local CA generated in <data dir>/tls)",
    )
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", "8081")))
    args = parser.parse_args(argv)
    args.data_dir = Path(args.data_dir).resolve()
    return asyncio.run(_run(args))


if __name__ == "__main__":
    raise SystemExit(main())
