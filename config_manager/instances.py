"""What each service instance reports on ``config/applied/<service>/<instance>``.

The tracker keeps the latest report per instance in memory (what the API reads) and
remembers which ones changed since they were last saved; the outbox publisher saves those
to the database in batches (:meth:`ConfigStore.save_instances`), and the app reloads them
at start, so the instance view survives a manager restart on any broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from config_lib import InvalidName, parse_applied_topic

__all__ = ["MAX_INSTANCES_PER_SERVICE", "InstanceReport", "InstanceTracker"]

_log = logging.getLogger(__name__)
_MAX_REPORT_BYTES = 16 * 1024
MAX_INSTANCES_PER_SERVICE = 10_000  # a service's user may invent instance ids: bound them


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

    def __init__(
        self,
        max_per_service: int = MAX_INSTANCES_PER_SERVICE,
        *,
        on_report: Callable[[InstanceReport], None] | None = None,
    ) -> None:
        self._reports: dict[str, dict[str, InstanceReport]] = {}
        self._on_report = on_report  # called with each report recorded (live events)
        self._max = max_per_service
        self._dirty: set[tuple[str, str]] = set()  # changed since the last save
        self.changed = asyncio.Event()  # set when something is waiting to be saved

    def load(self, reports: Iterable[InstanceReport]) -> None:
        """Restore reports saved earlier (at start; a report received since wins)."""
        for report in reports:
            self._reports.setdefault(report.service, {}).setdefault(report.instance, report)

    def handle(self, topic: str, payload: bytes, received_at: float) -> InstanceReport | None:
        """Record one applied report; returns it, or None if it was ignored or a removal."""
        try:
            service, instance = parse_applied_topic(topic)
        except InvalidName:
            _log.warning("ignoring applied report on unexpected topic %r", topic)
            return None
        if not payload:
            if self._reports.get(service, {}).pop(instance, None) is not None:
                self._mark(service, instance)
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
        known = self._reports.setdefault(service, {})
        if instance not in known and len(known) >= self._max:
            _log.warning(
                "ignoring applied report from %s/%s: the service already has %d instances",
                service,
                instance,
                self._max,
            )
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
        known[instance] = report
        self._mark(service, instance)
        if self._on_report is not None:
            self._on_report(report)
        return report

    def _mark(self, service: str, instance: str) -> None:
        self._dirty.add((service, instance))
        self.changed.set()

    def take_changes(self) -> tuple[list[InstanceReport], list[tuple[str, str]]]:
        """``(reports to save, (service, instance) to delete)`` since the last call."""
        dirty, self._dirty = self._dirty, set()
        self.changed.clear()
        saved: list[InstanceReport] = []
        removed: list[tuple[str, str]] = []
        for service, instance in sorted(dirty):
            report = self._reports.get(service, {}).get(instance)
            if report is None:
                removed.append((service, instance))
            else:
                saved.append(report)
        return saved, removed

    def restore_changes(self, keys: Iterable[tuple[str, str]]) -> None:
        """Mark again what a failed save did not store (saved at the next attempt)."""
        for service, instance in keys:
            self._mark(service, instance)

    def for_service(self, service: str) -> list[InstanceReport]:
        return sorted(self._reports.get(service, {}).values(), key=lambda r: r.instance)
