"""Live events for UIs (``GET /api/v1/events``, Server-Sent Events).

``EventHub`` keeps the most recent events in a bounded ring, in memory. Event ids are
``<boot>-<seq>``: a client that reconnects with ``Last-Event-ID`` gets every event it
missed; when they cannot be replayed (the manager restarted, or the client fell further
behind than the ring holds) it gets one ``reset`` event and reloads what it shows.

Kinds: ``ready`` (the stream is live), ``version`` (a version was stored: service, version,
epoch, who, change id; never values), ``applied`` (an instance's report: status, version),
``reset``. Published from the event loop's thread (the writer's and the tracker's hooks).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from .instances import InstanceReport
from .store import StoredVersion

__all__ = ["Event", "EventHub"]


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    id: str
    kind: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        body = json.dumps(self.data, separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.kind}\ndata: {body}\n\n".encode()


class EventHub:
    """The recent events and a wake-up for the streams waiting on the next one."""

    def __init__(self, *, history: int = 1000, retry_ms: int = 2000) -> None:
        self._boot = secrets.token_hex(4)
        self._seq = 0
        self._recent: deque[Event] = deque(maxlen=history)
        self._wakeup = asyncio.Event()
        self._retry_ms = retry_ms

    @property
    def last_id(self) -> str:
        return f"{self._boot}-{self._seq}"

    def publish(self, kind: str, data: dict[str, Any]) -> Event:
        self._seq += 1
        event = Event(self._seq, f"{self._boot}-{self._seq}", kind, data)
        self._recent.append(event)
        self._wakeup.set()
        self._wakeup = asyncio.Event()
        return event

    def versions_stored(self, stored: Sequence[StoredVersion]) -> None:
        """The writer's hook: one ``version`` event per stored version."""
        for v in stored:
            self.publish(
                "version",
                {
                    "service": v.service,
                    "version": v.version,
                    "epoch": v.epoch,
                    "created_by": v.created_by,
                    "created_at": v.created_at,
                    "change_id": v.change_id,
                },
            )

    def report_received(self, report: InstanceReport) -> None:
        """The tracker's hook: one ``applied`` event per applied report."""
        self.publish(
            "applied",
            {
                "service": report.service,
                "instance": report.instance,
                "status": report.status,
                "version": report.version,
                "epoch": report.epoch,
                "reason": report.reason,
                "forged": report.forged,
                "forged_reason": report.forged_reason,
            },
        )

    def _cursor(self, last_event_id: str | None) -> int | None:
        """Where a stream resumes: the seq after which to send, or None to reset."""
        if not last_event_id:
            return self._seq  # a new stream: what happens from now on
        boot, _, seq = last_event_id.strip().partition("-")
        if boot != self._boot or not seq.isdigit() or int(seq) > self._seq:
            return None  # an id of another run of the manager
        return int(seq)

    async def stream(self, last_event_id: str | None, heartbeat_s: float) -> AsyncIterator[bytes]:
        """The event stream of one client (ends when the client goes away)."""
        yield f"retry: {self._retry_ms}\n\n".encode()
        cursor = self._cursor(last_event_id)
        if cursor is None:
            yield Event(self._seq, self.last_id, "reset", {}).encode()
            cursor = self._seq
        yield b"event: ready\ndata: {}\n\n"  # no id: it must not move the client's cursor
        while True:
            wakeup = self._wakeup
            pending = [e for e in self._recent if e.seq > cursor]
            if pending and pending[0].seq > cursor + 1:
                # the ring no longer holds what this client missed
                yield Event(self._seq, self.last_id, "reset", {}).encode()
                cursor = self._seq
                continue
            for event in pending:
                yield event.encode()
                cursor = event.seq
            try:
                await asyncio.wait_for(wakeup.wait(), heartbeat_s)
            except TimeoutError:
                yield b": keep-alive\n\n"
