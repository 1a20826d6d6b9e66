"""What each service instance reports on ``config/applied/<service>/<instance>``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from config_lib import InvalidName, parse_applied_topic

__all__ = ["InstanceReport", "InstanceTracker"]

_log = logging.getLogger(__name__)
_MAX_REPORT_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class InstanceReport:
    service: str
    instance: str
    status: str
    version: int | None
    epoch: int | None
    reason: str | None
    detail: str | None
    time: str | None
    received_at: float
    freshness: str | None = None


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value: Any, limit: int = 500) -> str | None:
    return value[:limit] if isinstance(value, str) else None


class InstanceTracker:
    """Latest report per (service, instance). An empty retained payload forgets the instance."""

    def __init__(self) -> None:
        self._reports: dict[str, dict[str, InstanceReport]] = {}

    def handle(self, topic: str, payload: bytes, received_at: float) -> InstanceReport | None:
        """Record one applied report; returns it, or None if it was ignored or a removal."""
        try:
            service, instance = parse_applied_topic(topic)
        except InvalidName:
            _log.warning("ignoring applied report on unexpected topic %r", topic)
            return None
        if not payload:
            self._reports.get(service, {}).pop(instance, None)
            return None
        if len(payload) > _MAX_REPORT_BYTES:
            _log.warning("ignoring oversized applied report from %s/%s", service, instance)
            return None
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            _log.warning("ignoring applied report from %s/%s: not JSON", service, instance)
            return None
        if not isinstance(doc, dict):
            _log.warning("ignoring applied report from %s/%s: not an object", service, instance)
            return None
        report = InstanceReport(
            service=service,
            instance=instance,
            status=_opt_str(doc.get("status"), 32) or "unknown",
            version=_opt_int(doc.get("version")),
            epoch=_opt_int(doc.get("epoch")),
            reason=_opt_str(doc.get("reason")) or _opt_str(doc.get("error")),
            detail=_opt_str(doc.get("detail")),
            time=_opt_str(doc.get("time") or doc.get("at"), 64),
            received_at=received_at,
            freshness=_opt_str(doc.get("freshness"), 16),
        )
        self._reports.setdefault(service, {})[instance] = report
        return report

    def for_service(self, service: str) -> list[InstanceReport]:
        return sorted(self._reports.get(service, {}).values(), key=lambda r: r.instance)
