"""One stack per data dir, one manager per database: OS file locks, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from config_manager.broker import free_port
from config_manager.lockfile import LockHeld, database_lock, hold_lock, lock_holder, stack_lock

REPO = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys; from pathlib import Path; from config_manager.lockfile import hold_lock\n"
    "with hold_lock(Path(sys.argv[1]), 'test'):\n"
    "    print('held', flush=True); sys.stdin.read()\n"
)


def _take(path: Path) -> None:
    with hold_lock(path, "the data dir"):
        pass


def _env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONFIG_", "MQTT_"))}
    return {**clean, "HF_HUB_OFFLINE": "1", **extra}


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A separate process holding the stack lock of ``tmp_path / 'data'``."""
    path = stack_lock(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "held\n"  # blocks until the lock is taken
    yield proc, path
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)  # reaps it and closes the pipes


def test_lock_names_its_holder_and_is_freed_when_the_holder_is_killed(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, path = holder
    assert lock_holder(path) == proc.pid
    with pytest.raises(LockHeld, match=rf"in use by process {proc.pid}: python") as info:
        _take(path)
    assert info.value.pid == proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert lock_holder(path) is None  # the kernel released it: no stale lock
    with hold_lock(path, "the data dir"):
        assert lock_holder(path) == os.getpid() or lock_holder(path) is None


def test_second_stack_on_the_same_data_dir_is_refused(
    holder: tuple[subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    proc, _ = holder
    data = tmp_path / "data"
    ports = ["--mqtt-port", str(free_port()), "--http-port", str(free_port())]
    run = subprocess.run(
        [sys.executable, "-m", "config_manager.stack", "--data-dir", str(data), *ports],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if "in use by" in line]
    assert len(lines) == 1, run.stdout
    assert f"the data dir {data} is in use by process {proc.pid}" in lines[0]
    assert "one stack per data dir" in lines[0]
    assert not (data / "manager.db").exists()  # refused before the bootstrap


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, limit_s: float = 45) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)  # readiness poll of a starting server, bounded by the deadline
    raise AssertionError(f"{url} not up after {limit_s} s")


def test_second_manager_on_the_same_database_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mqtt_port = free_port()
    env = _env(CONFIG_MANAGER_MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}")
    init = [sys.executable, "-m", "config_manager", "init", "--data-dir", str(data)]
    subprocess.run(
        [*init, "--mqtt-port", str(mqtt_port)], cwd=REPO, env=env, check=True, capture_output=True
    )
    serve = [sys.executable, "-m", "config_manager", "serve", "--data-dir", str(data)]
    port = free_port()
    log = tmp_path / "first.log"
    with log.open("wb") as sink:
        first = subprocess.Popen(
            [*serve, "--port", str(port)], cwd=REPO, env=env, stdout=sink, stderr=sink
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", first, log)
        db = data / "manager.db"
        assert lock_holder(database_lock(db)) == first.pid  # taken in the app's lifespan
        second = subprocess.run(
            [*serve, "--port", str(free_port())],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"refusing to start: the database {db} is in use by process {first.pid}" in lines[0]
        assert "config_manager serve" in lines[0]
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)
    assert lock_holder(database_lock(data / "manager.db")) is None
