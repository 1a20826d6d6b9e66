"""One owner per data dir / database: an OS file lock (``flock``) on a small lock file.

The lock file holds the owner's pid, so a refusal can name the other process. The kernel
releases the lock when its owner exits, however it exits (SIGKILL included), so a lock
file left behind is never stale: only a live process can hold the lock. The descriptor is
not inherited by child processes (Python opens files non-inheritable).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LockHeld", "database_lock", "hold_lock", "lock_holder", "stack_lock"]


def database_lock(db_file: Path) -> Path:
    """The lock a config manager holds while it has ``db_file`` open: ``<db>.lock`` beside it."""
    return db_file.with_name(db_file.name + ".lock")


def stack_lock(data_dir: Path) -> Path:
    """The lock ``make run`` (config_manager.stack) holds on its data dir."""
    return data_dir / "stack.lock"


class LockHeld(RuntimeError):
    """Another live process holds the lock; the message names it and the lock file."""

    def __init__(self, what: str, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f"process {pid}{_command(pid)}" if pid else "another process"
        super().__init__(f"{what} is in use by {who} (lock {path})")


def _command(pid: int) -> str:
    """`` (python -m config_manager serve)`` for a pid, when /proc tells (Linux)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    if not words:
        return ""
    words[0] = Path(words[0]).name
    text = " ".join(" ".join(words).split())  # one line, whatever the arguments hold
    return f": {text[:120]}"


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 64).decode(errors="replace").strip()
    return int(raw) if raw.isdigit() else None


@contextlib.contextmanager
def hold_lock(path: Path, what: str) -> Iterator[None]:
    """Hold the lock at ``path`` (created if missing) for the ``with`` block, writing our
    pid into it; raise :class:`LockHeld` at once if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(what, path, _read_pid(fd)) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock still holds, a refusal just cannot name us
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def lock_holder(path: Path) -> int | None:
    """The pid holding the lock at ``path`` (0 if its pid is unknown), None if it is free.

    For a refusal before starting anything; the real guard is :func:`hold_lock`.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        return None
    finally:
        os.close(fd)
