"""``OutboxPublisher``: the manager's one MQTT connection.

It publishes every outbox row — signed, retained, QoS 1, in write order — and marks rows
done only after the broker's PUBACK; on every (re)connect it first drains the outbox, then
republishes the current version of every service so that a broker that lost its retained
store heals itself. On the same connection it follows ``config/applied/#`` and feeds the
:class:`~config_manager.instances.InstanceTracker`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self

import aiomqtt

from config_lib import MqttEndpoint, SigningKey, applied_wildcard, sign_envelope, updated_topic

from .instances import InstanceTracker
from .metrics import Metrics
from .store import ConfigStore, StoredVersion

__all__ = ["OutboxPublisher", "PublisherLimits"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublisherLimits:
    timeout_s: float = 5.0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 5.0
    batch: int = 200
    keepalive_s: int = 10


class OutboxPublisher:
    """Async context manager owning the MQTT connection task."""

    def __init__(
        self,
        *,
        store: ConfigStore,
        endpoint: MqttEndpoint,
        signing_key: SigningKey,
        metrics: Metrics,
        tracker: InstanceTracker,
        limits: PublisherLimits = PublisherLimits(),
    ) -> None:
        self._store = store
        self._endpoint = endpoint
        self._key = signing_key
        self._metrics = metrics
        self._tracker = tracker
        self._limits = limits
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._acked_upto = 0  # every outbox id <= this one has been acknowledged
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.last_error: str | None = None
        self.republished = asyncio.Event()  # set after each (re)connect's republish

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="config-manager-outbox-publisher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            # Broad on purpose: the task already died with this error; we are closing anyway.
            except Exception as err:
                _log.error("outbox publisher had stopped with an error: %r", err)
        self._set_connected(False)

    # -- public --------------------------------------------------------------------------
    @property
    def failure(self) -> str | None:
        """Why the publisher task stopped, if it stopped on its own (a bug)."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        exc = task.exception()
        return repr(exc) if exc else "stopped"

    def notify(self) -> None:
        """A write committed new outbox rows."""
        self._wake.set()

    async def wait_published(self, outbox_ids: Sequence[int], wait_s: float) -> bool:
        """Wait until the broker acknowledged these outbox rows; False on timeout/offline."""
        target = max(outbox_ids, default=0)
        deadline = time.monotonic() + wait_s
        while self._acked_upto < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.connected:
                return False
            event = self._progress
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return False
        return True

    # -- the connection task -----------------------------------------------------------
    def _set_connected(self, value: bool) -> None:
        self.connected = value
        self._metrics.broker_connected.set(1 if value else 0)
        self._signal_progress()

    def _signal_progress(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def _run(self) -> None:
        delay = self._limits.reconnect_min_s
        kwargs = self._endpoint.client_kwargs()
        while True:
            client = aiomqtt.Client(
                **kwargs,
                identifier=f"config-manager-{secrets.token_hex(4)}",
                timeout=self._limits.timeout_s,
                keepalive=self._limits.keepalive_s,
            )
            try:
                async with client:
                    self.last_error = None
                    self._set_connected(True)
                    delay = self._limits.reconnect_min_s
                    _log.info("connected to the broker at %s", self._endpoint)
                    await client.subscribe(applied_wildcard(), qos=1)
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._publish_loop(client), name="outbox-drain")
                        group.create_task(self._receive_loop(client), name="applied-reports")
            except* aiomqtt.MqttError as errors:
                self.last_error = "; ".join(str(e) for e in errors.exceptions)
            self._set_connected(False)
            _log.warning(
                "broker %s unavailable (%s); retrying in %.1fs",
                self._endpoint,
                self.last_error,
                delay,
            )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
            delay = min(delay * 2, self._limits.reconnect_max_s)

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        await self._drain(client)
        await self._republish_current(client)
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._drain(client)

    async def _publish_batch(
        self, client: aiomqtt.Client, versions: Sequence[StoredVersion]
    ) -> None:
        epoch = await self._store.epoch()
        payloads = [
            (
                updated_topic(v.service),
                sign_envelope(
                    service=v.service,
                    version=v.version,
                    epoch=epoch,
                    config=v.values,
                    key=self._key,
                ),
            )
            for v in versions
        ]
        # Tasks start in creation order and each hands its message to the client before its
        # first await, so messages leave in version order while PUBACKs are awaited together.
        async with asyncio.TaskGroup() as group:
            for topic, payload in payloads:
                group.create_task(client.publish(topic, payload, qos=1, retain=True))

    async def _drain(self, client: aiomqtt.Client) -> None:
        while True:
            items = await self._store.pending(self._limits.batch)
            if not items:
                self._metrics.outbox_depth.set(0)
                return
            versions = [
                StoredVersion(i.service, i.version, 0, i.values, i.created_at, "", "", i.id)
                for i in items
            ]
            await self._publish_batch(client, versions)
            ids = [i.id for i in items]
            await self._store.mark_published(ids)
            now = time.time()
            for item in items:
                created = datetime.fromisoformat(item.created_at).timestamp()
                self._metrics.publish_latency.observe(max(0.0, now - created))
            self._metrics.published.labels(kind="outbox").inc(len(items))
            self._acked_upto = max(self._acked_upto, *ids)
            self._metrics.outbox_depth.set(await self._store.outbox_depth())
            self._signal_progress()

    async def _republish_current(self, client: aiomqtt.Client) -> None:
        current = await self._store.current_all()
        if current:
            await self._publish_batch(client, current)
            self._metrics.published.labels(kind="republish").inc(len(current))
        self.republished.set()

    async def _receive_loop(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            raw = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
            report = self._tracker.handle(message.topic.value, raw, time.time())
            if report is not None:
                self._metrics.applied_reports.labels(status=report.status).inc()
