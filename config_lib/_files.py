"""Atomic, private file writes for everything we must not lose (keys, LKG cache)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, overwrite: bool = True) -> bool:
    """Write ``data`` to ``path`` atomically with permissions ``mode``.

    The bytes go to a temporary file in the same folder, are fsynced, then moved into
    place (``os.replace``), and the folder is fsynced. With ``overwrite=False`` the move is
    a hard link that fails if ``path`` exists, so an existing file is never replaced even
    by a concurrent writer. Returns True if the file was written, False if it already
    existed and ``overwrite`` is False.
    """
    path = Path(path)
    if not overwrite and path.exists():
        return False
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except FileNotFoundError:  # the folder is created on first use (not checked every time)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not overwrite and path.exists():
            return False
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    moved = False  # once moved into place there is no temporary file left to remove
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp_name, path)
            moved = True
        else:
            try:
                os.link(tmp_name, path)
            except FileExistsError:
                return False
        _fsync_dir(path.parent)
        return True
    finally:
        if not moved:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
