"""What each service instance reports on ``config/applied/<service>/<instance>``.

The tracker keeps the latest report per instance in memory (what the API reads) and
remembers which ones changed since they were last saved; the outbox publisher saves those
to the database in batches (:meth:`ConfigStore.save_instances`), and the app reloads them
at start, so the instance view survives a manager restart on any broker.

Signed reports (docs/protocol.md, "Report signature"): every report must verify with the
key it names, and that key must be the one pinned for the instance: the first key seen
is pinned (trust on first use, saved with the next batch), a new one only by an admin
(:meth:`InstanceTracker.approve`, ``POST .../instances/{instance}/key``). A report that
fails (reasons in :data:`FORGED_REASONS`) is *forged*: it never replaces the instance's
genuine state, it only sets ``forged``/``forged_reason`` until the next genuine report.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from config_lib import (
    InvalidName,
    ReportError,
    VerifiedReport,
    parse_applied_topic,
    verify_report,
)

__all__ = [
    "FORGED_REASONS",
    "MAX_INSTANCES_PER_SERVICE",
    "InstanceReport",
    "InstanceTracker",
    "KeyApprovalError",
    "PinnedKey",
]

_log = logging.getLogger(__name__)
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
    forged: bool = False  # the latest report received for this instance was forged
    forged_reason: str | None = None
    # A key that signed a report validly but is not the pinned one (base64): what an admin
    # may approve. ``signed_high``: the latest ``time`` of a genuine report (replay floor).
    pending_key: str | None = None
    signed_high: str | None = None


@dataclass(frozen=True, slots=True)
class PinnedKey:
    """The key an instance signs its reports with, as the manager pinned it."""

    service: str
    instance: str
    public_key: str  # standard base64 of the 32 raw Ed25519 bytes
    key_id: str
    pinned_at: str
    pinned_by: str | None = None  # None: trust on first use; else the approving admin


class KeyApprovalError(Exception):
    """A re-key approval that cannot be done; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


# Why a report is shown as forged (docs/protocol.md, "Report signature").
FORGED_REASONS: Final = (
    "too_large",
    "malformed",
    "unsigned",
    "bad_signature",
    "identity_mismatch",
    "key_mismatch",
    "replayed",
)


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


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
        self._pins: dict[tuple[str, str], PinnedKey] = {}
        self._new_pins: set[tuple[str, str]] = set()  # pinned on first use, not yet saved
        # The latest report signed validly by an unpinned key, per instance (approval).
        self._pending: dict[tuple[str, str], InstanceReport] = {}
        self.changed = asyncio.Event()  # set when something is waiting to be saved

    def load(self, reports: Iterable[InstanceReport]) -> None:
        """Restore reports saved earlier (at start; a report received since wins)."""
        for report in reports:
            self._reports.setdefault(report.service, {}).setdefault(report.instance, report)

    def load_pins(self, pins: Iterable[PinnedKey]) -> None:
        """Restore the pinned keys saved earlier (at start)."""
        for pin in pins:
            self._pins[(pin.service, pin.instance)] = pin

    def pin(self, service: str, instance: str) -> PinnedKey | None:
        return self._pins.get((service, instance))

    def handle(self, topic: str, payload: bytes, received_at: float) -> InstanceReport | None:
        """Record one applied report; returns it (``forged`` set if it was), or None if it
        was ignored or a removal."""
        try:
            service, instance = parse_applied_topic(topic)
        except InvalidName:
            _log.warning("ignoring applied report on unexpected topic %r", topic)
            return None
        if not payload:
            if self._reports.get(service, {}).pop(instance, None) is not None:
                self._pending.pop((service, instance), None)
                self._mark(service, instance)
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
        previous = known.get(instance)
        try:
            verified = verify_report(payload, service=service, instance=instance)
            report = self._genuine(verified, previous, received_at)
        except ReportError as exc:
            report = self._forged(service, instance, previous, exc, received_at)
        known[instance] = report
        self._mark(service, instance)
        if self._on_report is not None:
            self._on_report(report)
        return report

    def _genuine(
        self, verified: VerifiedReport, previous: InstanceReport | None, received_at: float
    ) -> InstanceReport:
        """Check the key against the pin (trust on first use) and the replay floor."""
        key = (verified.service, verified.instance)
        pin = self._pins.get(key)
        if pin is None:
            pin = PinnedKey(
                verified.service, verified.instance, verified.public_key, verified.key_id,
                _now_iso(),
            )  # fmt: skip
            self._pins[key] = pin
            self._new_pins.add(key)
            _log.info(
                "instance report key pinned on first use: service=%s instance=%s key_id=%s",
                *key,
                pin.key_id,
            )
        doc = verified.document
        report = _from_document(doc, verified.service, verified.instance, received_at)
        if pin.public_key != verified.public_key:
            self._pending[key] = replace(report, pending_key=verified.public_key)
            raise ReportError(
                f"signed by key {verified.key_id}, the pinned key is {pin.key_id} "
                "(an admin may approve the new key)",
                "key_mismatch",
            )
        floor = _parse_time(previous.signed_high if previous is not None else None)
        if floor is not None and verified.time < floor and report.status != "offline":
            # An older genuine report published again. Offline reports are exempt: the
            # MQTT will is signed when the connection opens, so it is older by design.
            raise ReportError(
                f"dated {report.time}, older than the last genuine report "
                f"({previous.signed_high if previous else None})",
                "replayed",
            )
        high = report.time if floor is None or verified.time > floor else _fmt(floor)
        self._pending.pop(key, None)
        return replace(report, signed_high=high)

    def _forged(
        self,
        service: str,
        instance: str,
        previous: InstanceReport | None,
        exc: ReportError,
        received_at: float,
    ) -> InstanceReport:
        pending = self._pending.get((service, instance))
        pending_key = None
        if exc.reason == "key_mismatch" and pending is not None:
            pending_key = pending.pending_key
        if previous is None or previous.forged_reason != exc.reason:
            _log.warning(
                "forged applied report: service=%s instance=%s reason=%s detail=%s",
                service,
                instance,
                exc.reason,
                exc,
                extra={"service": service, "instance": instance, "reason": exc.reason},
            )
        if previous is None:  # nothing genuine known: show no claim of the forged report
            previous = InstanceReport(
                service=service, instance=instance, status="unknown", version=None,
                epoch=None, reason=None, detail=None, time=None, received_at=received_at,
            )  # fmt: skip
        return replace(
            previous,
            forged=True,
            forged_reason=exc.reason,
            pending_key=pending_key or previous.pending_key,
        )

    def pending_key_id(self, service: str, instance: str) -> str | None:
        pending = self._pending.get((service, instance))
        report = self._reports.get(service, {}).get(instance)
        public = pending.pending_key if pending is not None else None
        if public is None and report is not None:
            public = report.pending_key
        return None if public is None else _key_id(public)

    def approve(self, service: str, instance: str, key_id: str, actor: str) -> PinnedKey:
        """The pin an admin approves: the instance's unapproved key whose id is ``key_id``.

        Raises :class:`KeyApprovalError` (404 unknown instance, 409 no such key). The
        caller stores the pin, then calls :meth:`pinned`.
        """
        report = self._reports.get(service, {}).get(instance)
        if report is None and (service, instance) not in self._pins:
            raise KeyApprovalError(
                404, "Unknown instance", f"no report was received from {service}/{instance}"
            )
        pending = self._pending.get((service, instance))
        public = pending.pending_key if pending is not None else None
        if public is None and report is not None:
            public = report.pending_key
        if public is None:
            raise KeyApprovalError(
                409,
                "No key to approve",
                f"{service}/{instance} has not sent a validly signed report with an unapproved key",
            )
        seen = _key_id(public)
        if seen != key_id:
            raise KeyApprovalError(
                409,
                "Key id does not match",
                f"the unapproved key seen for {service}/{instance} is {seen}, not {key_id}",
            )
        return PinnedKey(service, instance, public, seen, _now_iso(), actor)

    def pinned(self, pin: PinnedKey) -> InstanceReport | None:
        """Put an approved (and stored) pin in force; the report the new key signed, if
        still held, becomes the instance's genuine state."""
        key = (pin.service, pin.instance)
        self._pins[key] = pin
        self._new_pins.discard(key)
        pending = self._pending.pop(key, None)
        known = self._reports.setdefault(pin.service, {})
        current = known.get(pin.instance)
        if pending is not None and pending.pending_key == pin.public_key:
            report = replace(
                pending, pending_key=None, forged=False, forged_reason=None,
                signed_high=pending.time,
            )  # fmt: skip
        elif current is not None:  # a new key may come with another clock: new floor
            report = replace(current, pending_key=None, signed_high=None)
        else:
            return None
        known[pin.instance] = report
        self._mark(pin.service, pin.instance)
        if self._on_report is not None:
            self._on_report(report)
        return report

    def take_pins(self) -> list[PinnedKey]:
        """Keys pinned on first use since the last call (to save)."""
        keys, self._new_pins = self._new_pins, set()
        return [self._pins[k] for k in sorted(keys) if k in self._pins]

    def restore_pins(self, pins: Iterable[PinnedKey]) -> None:
        for pin in pins:
            self._new_pins.add((pin.service, pin.instance))
        self.changed.set()

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


def _key_id(public_key: str) -> str:
    return hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]


def _fmt(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _from_document(
    doc: dict[str, Any], service: str, instance: str, received_at: float
) -> InstanceReport:
    return InstanceReport(
        service=service,
        instance=instance,
        status=_opt_str(doc.get("status"), 32) or "unknown",
        version=_opt_int(doc.get("version")),
        epoch=_opt_int(doc.get("epoch")),
        reason=_opt_str(doc.get("reason")),
        detail=_opt_str(doc.get("detail")),
        time=_opt_str(doc.get("time"), 64),
        received_at=received_at,
        freshness=_opt_str(doc.get("freshness"), 16),
    )
