"""Applied reports: what one instance has in force, published retained on its applied topic.

A report is a small JSON object, for example::

    {"instance": "host1-stt", "service": "stt", "status": "applied", "version": 7,
     "epoch": 1795000000, "source": "broker", "reason": null,
     "attempted_version": 7, "attempted_epoch": 1795000000,
     "time": "2026-11-23T13:00:00.000000Z"}

``status`` is ``applied``, ``rejected``, ``failed``, ``offline`` or ``retired`` (a signed
tombstone said the service is retired; the last config stays in force); ``version``/``epoch``
are those in force (null when running on env/defaults); ``reason`` is a short code (the
exception's ``reason``, ``callback_failed``...) and ``detail`` one human sentence; neither
ever carries a config value. An ``applied`` report with reason ``lkg_not_saved`` means
the config is in force but its LKG file could not be written (disk full, read-only).
A callback that fails on purpose raises an exception with a ``reason`` attribute: its code
and message are reported (the operator needs them, e.g. "model folder /x does not
exist"); any other exception is reported by type only, since its message could quote
anything.
``attempted_*`` name the envelope that was decided on, when it was verified.
``freshness`` is ``waiting``, ``stale`` or ``fresh`` (see docs/protocol.md, freshness).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from ._change import ConfigSource

__all__ = ["AppliedReport", "ReportStatus"]

ReportStatus = Literal["applied", "rejected", "failed", "offline", "retired"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class AppliedReport:
    instance: str
    service: str
    status: ReportStatus
    version: int | None
    epoch: int | None
    source: ConfigSource
    reason: str | None = None
    detail: str | None = None
    attempted_version: int | None = None
    attempted_epoch: int | None = None
    freshness: str | None = None
    time: str = ""

    def stamped(self, **changes: Any) -> AppliedReport:
        """A copy with ``changes`` and the current time."""
        return replace(self, **changes, time=_now())

    def to_bytes(self) -> bytes:
        doc = asdict(self)
        if not doc["time"]:
            doc["time"] = _now()
        return json.dumps(doc, separators=(", ", ": ")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> AppliedReport:
        """Parse a report (for managers and tests); raises ValueError if it is not one."""
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("an applied report is a JSON object")
        try:
            return cls(**doc)
        except TypeError as exc:
            raise ValueError(f"not an applied report: {exc}") from None
