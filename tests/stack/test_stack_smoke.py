"""`make run` as a new user runs it: the whole stack from the Makefile, on free ports and a
temporary data dir; ready, a config change applied by the workers, Ctrl-C, all gone."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from config_manager.broker import free_port, mqtt_login
from config_manager.lockfile import lock_holder, stack_lock

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Output:
    """The stack's terminal output, read on a thread, with bounded waits for a line."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.lines.append("<eof>")
            self.changed.notify_all()

    def wait_for(self, pattern: str, within: float) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        with self.changed:
            while True:
                found = next((line for line in self.lines if regex.search(line)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.lines and self.lines[-1] == "<eof>"):
                    raise AssertionError(f"{pattern!r} not printed; output:\n" + self.text)
                self.changed.wait(left)

    @property
    def text(self) -> str:
        return "\n".join(self.lines[-80:])


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _http(
    method: str, url: str, token: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode(errors="replace")


def _until(check: Callable[[], Any], what: str, within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {within} s (last: {result!r})")
        time.sleep(0.2)  # bounded poll of the manager's HTTP view (it has no event stream)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output, dict[str, Any]]]:
    venv = Path(sys.prefix)
    ports = {"MQTT_PORT": free_port(), "HTTP_PORT": free_port()}
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONFIG_", "MQTT_"))}
    env.pop("MAKEFLAGS", None)
    # -o: use this venv and the editor bundle as they are (make test built both)
    argv = ["make", "--no-print-directory", "-o", f"{venv}/.installed-run"]
    argv += ["-o", "config_manager/static/index.html", "run"]
    argv += [f"VENV={venv}", f"DATA_DIR={data}"] + [f"{k}={v}" for k, v in ports.items()]
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(proc)
    reader = threading.Thread(target=output.pump, name="make-run-output", daemon=True)
    reader.start()
    info = {"data": data, **ports}
    try:
        yield proc, output, info
    finally:
        if proc.poll() is None:
            holder = lock_holder(stack_lock(data))
            if holder:
                os.kill(holder, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_make_run_applies_a_config_change_and_stops_cleanly_on_ctrl_c(
    make_run: tuple[subprocess.Popen[str], Output, dict[str, Any]],
) -> None:
    proc, output, info = make_run
    data: Path = info["data"]
    http, mqtt = info["HTTP_PORT"], info["MQTT_PORT"]
    base = f"http://127.0.0.1:{http}"

    started = time.monotonic()
    output.wait_for(r"The stack is up\.", within=45)
    print(f"stack up after {time.monotonic() - started:.1f} s")
    stack_pid = lock_holder(stack_lock(data))
    assert stack_pid, "the running stack holds its data dir's lock"
    children = _children(stack_pid)
    assert len(children) == 4, output.text  # mosquitto, manager, stt, orchestrator

    # Every printed command carries the ports in use.
    assert output.wait_for(rf"Web editor: +http://127\.0\.0\.1:{http}/", within=1)
    watch = output.wait_for(r"Watch configs: +mosquitto_sub", within=1)
    assert f"-p {mqtt} " in watch
    demo = output.wait_for(r"Try: ", within=1)
    assert f"--mqtt-url mqtt://127.0.0.1:{mqtt}" in demo
    assert f"ORCHESTRATOR_CLIENT_MQTT_PASSWORD_FILE={data}/secrets/mqtt/client.password" in demo

    token = (data / "secrets" / "admin.token").read_text().strip()
    _until(lambda: _http("GET", f"{base}/readyz", token)[0] == 200, "/readyz 200", 30)

    # A second `make run` on the same data dir (other ports) is refused, naming this one.
    other_ports = ["--mqtt-port", str(free_port()), "--http-port", str(free_port())]
    second = subprocess.run(
        [sys.executable, "-m", "config_manager.stack", "--data-dir", str(data), *other_ports],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("CONFIG_", "MQTT_"))},
    )
    assert second.returncode == 1
    assert f"is in use by process {stack_pid}" in second.stdout

    # One config change per worker, through the API.
    changes = {"stt": {"beam_size": 3}, "orchestrator": {"session_idle_timeout_s": 12.5}}
    versions = {}
    for service, patch in changes.items():
        status, headers, _ = _http("GET", f"{base}/api/v1/configs/{service}", token)
        assert status == 200
        headers = {k.lower(): v for k, v in headers.items()}
        status, _, body = _http(
            "PATCH",
            f"{base}/api/v1/configs/{service}",
            token,
            patch,
            {"Content-Type": "application/merge-patch+json", "If-Match": headers["etag"]},
        )
        assert status == 200, body
        versions[service] = body["version"]

    def applied(service: str) -> list[dict[str, Any]]:
        status, _, rows = _http("GET", f"{base}/api/v1/services/{service}/instances", token)
        assert status == 200, rows
        return [
            r
            for r in rows
            if r["status"] == "applied" and r["version"] == versions[service] and r["current"]
        ]

    for service in changes:
        _until(lambda s=service: applied(s), f"{service} applied v{versions[service]}", 30)
    print(f"changes applied after {time.monotonic() - started:.1f} s")

    # The printed mosquitto_sub line works as printed (one retained config, then exit).
    command = watch.split("Watch configs:", 1)[1].strip() + " -C 1 -W 10"
    sub = subprocess.run(  # noqa: S602 - the line exactly as printed, as a user pastes it
        command, shell=True, cwd=REPO, capture_output=True, text=True, timeout=20, check=False
    )
    assert sub.returncode == 0, sub.stderr
    assert sub.stdout.startswith("config/"), sub.stdout

    # Ctrl-C: the stack stops its children in order and exits 0; make exits 0 too.
    os.kill(stack_pid, signal.SIGINT)
    assert proc.wait(30) == 0, output.text
    output.wait_for(r"stack \| stopped", within=5)
    assert [pid for pid in children if _alive(pid)] == []
    assert mqtt_login("127.0.0.1", mqtt, None, None, timeout=0.5) is None  # broker gone
    assert lock_holder(stack_lock(data)) is None
    assert shlex.split(demo.split("Try:", 1)[1])  # a well-formed shell command
