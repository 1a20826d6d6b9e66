"""The last-known-good (LKG) file: the exact signed envelope last applied, kept on disk.

Written atomically (temp file, fsync, ``os.replace``, mode 0600) after each successful
apply. Loaded at startup through the same pipeline as a broker message, so a tampered,
truncated or foreign file is refused, logged once as a warning and treated as absent.
Secret fields stay encrypted in it: it holds the envelope as received.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from ._exceptions import ConfigLibError, Duplicate
from ._files import write_atomic
from ._pipeline import Accepted, ConfigPipeline

__all__ = ["LkgStore"]

M = TypeVar("M", bound=BaseModel)
logger = logging.getLogger("config_lib.lkg")


class LkgStore(Generic[M]):
    """Loads and saves one service's LKG file."""

    def __init__(self, path: Path, pipeline: ConfigPipeline[M]) -> None:
        self.path = Path(path)
        self.pipeline = pipeline

    def load(self) -> Accepted[M] | None:
        """The verified LKG config, or None (missing, or refused with one warning)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning(
                "LKG file unreadable, ignoring it: path=%s error=%s",
                self.path,
                exc.strerror,
                extra={"service": self.pipeline.service, "lkg_path": str(self.path)},
            )
            return None
        try:
            return self.pipeline.accept(raw)
        except Duplicate:  # pragma: no cover - no `last` is passed, so never a duplicate
            return None
        except ConfigLibError as exc:
            logger.warning(
                "LKG file refused, treating it as absent: path=%s reason=%s detail=%s",
                self.path,
                exc.reason,
                exc,
                extra={
                    "service": self.pipeline.service,
                    "lkg_path": str(self.path),
                    "reason": exc.reason,
                },
            )
            return None

    def save(self, raw: bytes) -> None:
        """Write the received envelope bytes atomically with mode 0600."""
        write_atomic(self.path, raw, mode=0o600)
