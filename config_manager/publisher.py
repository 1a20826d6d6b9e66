"""``OutboxPublisher``: the manager's MQTT connections (one out, one in).

It publishes every outbox row — signed, retained, QoS 1, in write order — and marks rows
done only after the broker's PUBACK; on every (re)connect it first drains the outbox, then
republishes the current version of every service so that a broker that lost its retained
store heals itself. On a second connection, made and lost together with the first, it
follows ``config/applied/#`` and feeds the :class:`~config_manager.instances.InstanceTracker`
(report traffic on the publishing connection would delay PUBACKs: Nagle on the broker).

Freshness (TUF's timestamp role): after each publication, and every
``freshness_interval_s``, it signs and publishes retained on ``config/freshness/<service>``
a record naming the (epoch, version, SHA-256) of the envelope last published for that
service, valid for ``freshness_expiry_s``; on each interval it also republishes that same
envelope (the same bytes), so a replayed or tampered retained message is overwritten
within one interval.

Fleet-safe epochs: at every (re)connection, before publishing anything, it reads back the
retained envelopes and freshness records of every known service (exact topics), keeps
those that verify with its own trust store (messages it signed itself; never applied
reports, which service users can write) and, if any names a position above the
database's, raises the database's epoch above the highest epoch seen. So a recreated
database, or a clock that went backwards, still reaches every running instance.

Keyset (docs/protocol.md, *Keyset*): at every (re)connection, before any envelope, it
publishes the root-signed keyset retained on ``config/keyset``. :meth:`rotate` hands it
a new signing key and keyset (the operator's ``python -m config_manager keys`` command,
noticed by :class:`~config_manager.keyring.KeyWatcher`): it publishes the new keyset,
then re-signs every current envelope under the new key (same version, same epoch) with
its freshness record, so services rewrite their LKG files and the old key can be dropped.

It refuses to sign a version that skips ahead of the last one it signed in the same
epoch (a version is always previous + 1; a rollback is a new version): the publisher
stops with :class:`SigningRefused` rather than sign it.

Replicas (PostgreSQL): given a :class:`~config_manager.lease.PublisherLease`, it connects
and publishes only while this replica holds the lease; every publish checks the lease's
deadline first, and a lost lease ends the session (back to waiting for the lease). Each
new generation raises the epoch (after the fleet read-back) before anything is published,
then the outbox is drained and every current config republished. Writes committed by
other replicas reach it through the store's change notifications (outbox drained again).

A storage fault (disk full...) never stops it: publishing needs no disk, so acknowledged
rows keep being published; the marks "published" that cannot be written are kept in memory
and retried with backoff, and a failed read of the outbox is retried the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import aiomqtt

from config_lib import (
    KEYSET_TOPIC,
    Backoff,
    ConfigLibError,
    Keyset,
    MqttEndpoint,
    SigningKey,
    TrustStore,
    applied_wildcard,
    envelope_digest,
    freshness_topic,
    report_request_topic,
    sign_envelope,
    sign_freshness,
    stop_tasks,
    updated_topic,
    verify_envelope,
    verify_freshness,
)

from .dialects import database_errors
from .instances import InstanceTracker
from .lease import LeaseLost, PublisherLease
from .metrics import Metrics
from .store import ConfigStore, StorageError, StoredVersion

__all__ = ["OutboxPublisher", "PublisherLimits", "SigningRefused"]

# A topic no service can have (names start with a letter or digit): the broker's PUBACK
# of a publication to it arrives after every retained message of earlier subscriptions.
_PROBE_TOPIC = "config/freshness/~readback"


class _LostConnectionIsAWarning(logging.Filter):
    """paho's errors about the socket of one of our connections (the broker went away, as
    when it restarts) are warnings: the publisher reconnects with backoff and says so itself
    (``broker ... unavailable``, a warning). Other paho errors stay errors."""

    _SOCKET = ("failed to receive on socket", "timeout on socket")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(self._SOCKET):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


# The log of the publisher's MQTT connections (paho's, through aiomqtt).
_MQTT_LOG = logging.getLogger("config_manager.publisher.mqtt")
_MQTT_LOG.addFilter(_LostConnectionIsAWarning())


class SigningRefused(RuntimeError):
    """The publisher was asked to sign a version that is not previous + 1 (a bug)."""


class NotLeader(aiomqtt.MqttError):
    """This replica may not publish (publisher lease lost or its deadline passed): the
    session ends like a lost connection, and the publisher waits for the lease again."""


class _FencedClient(aiomqtt.Client):
    """An aiomqtt client that checks the publisher lease before every publish."""

    def __init__(self, *args: Any, lease: PublisherLease | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lease = lease

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        if self._lease is not None:
            try:
                self._lease.check()
            except LeaseLost as exc:
                raise NotLeader(str(exc)) from None
        await super().publish(*args, **kwargs)


_log = logging.getLogger(__name__)
# not a storage fault (a query the database refused), or the store closed
_SAVE_ERRORS: tuple[type[Exception], ...] = (*database_errors(), RuntimeError)


@dataclass(frozen=True, slots=True)
class PublisherLimits:
    timeout_s: float = 5.0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 5.0
    batch: int = 200
    keepalive_s: int = 10
    freshness_interval_s: float = 30.0
    freshness_expiry_s: float = 120.0
    instance_save_delay_s: float = 0.2  # reports arriving meanwhile share one transaction
    mark_delay_s: float = 0.05  # "published" marks wait for a pause in the writes this long


class OutboxPublisher:
    """Async context manager owning the task that runs the MQTT connections."""

    def __init__(
        self,
        *,
        store: ConfigStore,
        endpoint: MqttEndpoint,
        signing_key: SigningKey,
        metrics: Metrics,
        tracker: InstanceTracker,
        limits: PublisherLimits = PublisherLimits(),
        services: Callable[[], Iterable[str]] | None = None,
        trust: TrustStore | None = None,
        keyset: Keyset | None = None,
        lease: PublisherLease | None = None,
    ) -> None:
        self._store = store
        self._lease = lease
        self._folded: int | None = None  # the lease generation the epoch was raised for
        self._drain = False  # another replica committed: drain the outbox
        self.standby = False  # waiting for the publisher lease another replica holds
        self._keeper: asyncio.Task[None] | None = None
        self._endpoint = endpoint
        self._key = signing_key
        self._metrics = metrics
        self._tracker = tracker
        self._limits = limits
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._acked_upto = 0  # every outbox id <= this one has been acknowledged
        self._queue: deque[StoredVersion] = deque()  # committed, not yet published
        self._unmarked: set[int] = set()  # acknowledged, not yet marked in the database
        # After a storage fault: retry the marks (and outbox reads) with backoff.
        self._db_backoff = Backoff(limits.reconnect_min_s, limits.reconnect_max_s)
        self._mark_not_before = 0.0
        # service -> (version, epoch, envelope, the values signed)
        self._presigned: dict[str, tuple[int, int, bytes, dict[str, Any]]] = {}
        # service -> (version, epoch, envelope bytes) last acknowledged by the broker: what
        # the freshness records name and what every interval republishes, byte for byte.
        self._published: dict[str, tuple[int, int, bytes]] = {}
        self._services = services  # registered services: a record even before any config
        self._trust = trust if trust is not None else TrustStore([signing_key.public_key])
        # The root-signed keyset's exact bytes (published as they are) and its floor reset:
        # positions at epochs >= void_from are not the fleet's (read-back ignores them).
        self._keyset = keyset.raw if keyset is not None else None
        self._void_from = keyset.void_epochs_from if keyset is not None else None
        if self._void_from is not None:
            store.void_from = self._void_from
        self._rotation: tuple[SigningKey, Keyset | None, TrustStore] | None = None
        self.rotated = asyncio.Event()  # set when a rotation has been published
        self._last_signed: dict[str, tuple[int, int]] = {}  # service -> (epoch, version)
        self.fleet_epoch: int | None = None  # highest epoch of our own messages on the broker
        self._task: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        self.connected = False
        self.last_error: str | None = None
        self.republished = asyncio.Event()  # set after each (re)connect's republish
        # POST /sync/force: services to ask for reports, and who waits for it to be done.
        self._force: tuple[list[str], asyncio.Future[None]] | None = None

    async def __aenter__(self) -> Self:
        self._store.on_change.append(self._remote_change)
        if self._lease is not None:
            self._keeper = asyncio.create_task(self._lease.keep(), name="publisher-lease")
        self._task = asyncio.create_task(self._run(), name="config-manager-outbox-publisher")
        self._saver = asyncio.create_task(
            self._save_instances_loop(), name="config-manager-instance-saver"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks = [t for t in (self._task, self._saver, self._keeper) if t is not None]
        self._task = self._saver = self._keeper = None
        for task, error in await stop_tasks(tasks):
            _log.error("%s had stopped with an error: %r", task.get_name(), error)
        self._set_connected(False)
        with contextlib.suppress(ValueError):
            self._store.on_change.remove(self._remote_change)
        if self._lease is not None:  # publishing has stopped: a successor need not wait
            await self._lease.release()
            await self._lease.close()
        await self._save_instances()  # what arrived since the last batch

    # -- public --------------------------------------------------------------------------
    @property
    def failure(self) -> str | None:
        """Why the publisher task stopped, if it stopped on its own (a bug)."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        exc = task.exception()
        return repr(exc) if exc else "stopped"

    async def resync(self, services: Sequence[str], wait_s: float) -> bool:
        """Republish every current config (retained) and ask every instance of ``services``
        to report again (docs/protocol.md, *Report request*). True once the broker
        acknowledged all of it; False when not connected or slower than ``wait_s``."""
        if not self.connected:
            return False
        if self._force is None or self._force[1].done():
            self._force = (list(services), asyncio.get_running_loop().create_future())
        else:
            self._force[0].extend(s for s in services if s not in self._force[0])
        done = self._force[1]
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(done), wait_s)
        except TimeoutError:
            return False
        return True

    async def _forced(self, client: aiomqtt.Client) -> None:
        """Carry out a pending resync (only with an empty queue: nothing older follows)."""
        force = self._force
        if force is None or force[1].done():
            return
        await self._republish_current(client)
        async with asyncio.TaskGroup() as group:
            for service in force[0]:
                group.create_task(
                    client.publish(report_request_topic(service), b"{}", qos=1, retain=False)
                )
        if not force[1].done():
            force[1].set_result(None)

    def rotate(self, key: SigningKey, keyset: Keyset | None, trust: TrustStore) -> None:
        """Sign with ``key`` from now on; publish ``keyset`` and re-sign every current
        envelope (done by the publishing loop, between two batches)."""
        self._rotation = (key, keyset, trust)
        self.rotated.clear()
        self._wake.set()

    async def _rotate(self, client: aiomqtt.Client) -> None:
        """Carry out a pending rotation (only with an empty queue)."""
        rotation, self._rotation = self._rotation, None
        if rotation is None:
            return
        key, keyset, trust = rotation
        old = self._key.key_id
        self._key, self._trust = key, trust
        if keyset is not None:
            self._keyset = keyset.raw
            self._void_from = self._store.void_from = keyset.void_epochs_from
            floor = self._store.fleet_floor
            if self._void_from is not None and floor is not None and floor >= self._void_from:
                self._store.fleet_floor = self.fleet_epoch = None  # the void range's
            await self._publish_keyset(client)
        # Everything signed so far is signed again under the new key (same positions).
        # Their records go first: a service holding a position receives the record naming
        # the new bytes before the bytes themselves (else digest_mismatch).
        self._presigned.clear()
        self._published.clear()
        await self._republish_current(client, records_first=True)
        _log.warning(
            "signing key rotated: %s -> %s (keyset version %s); current configs re-signed",
            old,
            key.key_id,
            keyset.version if keyset is not None else "-",
        )
        self.rotated.set()

    async def _publish_keyset(self, client: aiomqtt.Client) -> None:
        if self._keyset is not None:
            await client.publish(KEYSET_TOPIC, self._keyset, qos=1, retain=True)
            self._metrics.published.labels(kind="keyset").inc()

    def _remote_change(self) -> None:
        """Another replica committed something: its outbox rows are in the database."""
        self._drain = True
        self._wake.set()

    def notify(self, stored: Sequence[StoredVersion] = ()) -> None:
        """A write committed these versions (and their outbox rows): publish them.

        While connected they are queued in memory and published without reading them
        back; while disconnected nothing is queued (memory stays bounded) and the outbox
        in the database is drained at the next connection.
        """
        if self.connected:
            self._queue.extend(stored)
        self._wake.set()

    def prepare(self, service: str, version: int, epoch: int, values: dict[str, Any]) -> None:
        """Sign the envelope of a version being committed, ahead of its publication.

        Used only if that exact (version, epoch) is then published; one entry per service.
        """
        try:
            payload = self._sign(service, version, epoch, values)
        except SigningRefused as exc:
            # Not signed ahead; the publication path refuses it again, loudly.
            _log.error("%s", exc)
            return
        self._presigned[service] = (version, epoch, payload, values)

    def _sign(self, service: str, version: int, epoch: int, values: dict[str, Any]) -> bytes:
        """The one place envelopes are signed: never a version skipping ahead."""
        last = self._last_signed.get(service)
        if last is not None and last[0] == epoch and version > last[1] + 1:
            self._metrics.sign_refused.inc()
            raise SigningRefused(
                f"refusing to sign {service} version {version} (epoch {epoch}): the last "
                f"version signed is {last[1]}; versions must follow one another"
            )
        payload = sign_envelope(
            service=service, version=version, epoch=epoch, config=values, key=self._key
        )
        if last is None or (epoch, version) > last:
            self._last_signed[service] = (epoch, version)
        return payload

    def _envelope(self, version: StoredVersion, epoch: int) -> bytes:
        done = self._published.get(version.service)
        if done is not None and done[:2] == (version.version, epoch):
            return done[2]  # the same bytes again: the digest in the records stays valid
        ready = self._presigned.get(version.service)
        # Signed ahead of the commit: only for exactly the values committed (a change that
        # failed to commit leaves its signature behind; another may take its version).
        if (
            ready is not None
            and ready[:2] == (version.version, epoch)
            and ready[3] is version.values
        ):
            del self._presigned[version.service]
            return ready[2]
        return self._sign(version.service, version.version, epoch, version.values)

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
                # asyncio.timeout, not wait_for: no task of its own (Python 3.11), so the
                # writer wakes in the loop turn the acknowledgement is signalled in.
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                return False
        return True

    # -- the connection task -----------------------------------------------------------
    def _set_connected(self, value: bool) -> None:
        self.connected = value
        if not value:
            # Everything committed is in the database's outbox: drained at reconnection.
            # What the broker acknowledged stays to be marked (it is published).
            self._queue.clear()
        self._metrics.broker_connected.set(1 if value else 0)
        self._signal_progress()

    def _signal_progress(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def _run(self) -> None:
        backoff = Backoff(self._limits.reconnect_min_s, self._limits.reconnect_max_s)
        kwargs = self._endpoint.client_kwargs()
        while True:
            if self._lease is not None and not self._lease.valid:
                self.standby = True
                self.last_error = "standby: another replica holds the publisher lease"
                await self._lease.acquire()
                self.standby = False
            # Two connections: envelopes out on one, applied reports in on the other, so
            # that report traffic never delays a PUBACK (Nagle on the broker's side).
            ident = f"config-manager-{secrets.token_hex(4)}"
            publishing = _FencedClient(
                **kwargs,
                lease=self._lease,
                identifier=ident,
                logger=_MQTT_LOG,
                timeout=self._limits.timeout_s,
                keepalive=self._limits.keepalive_s,
            )
            # A batch's envelopes and records are in flight together, by design: aiomqtt's
            # warning past 10 pending publications (a log line per message) would cost more
            # than the publication itself.
            publishing.pending_calls_threshold = 2 * self._limits.batch + 10
            listening = aiomqtt.Client(
                **kwargs,
                identifier=ident + "-reports",
                logger=_MQTT_LOG,
                timeout=self._limits.timeout_s,
                keepalive=self._limits.keepalive_s,
            )
            try:
                async with publishing, listening:
                    self.last_error = None
                    # ``connected`` (and so /readyz) waits for the epoch read-back in the
                    # publish loop: a write accepted before it could be signed at an epoch
                    # the read-back is about to raise.
                    backoff.reset()
                    _log.info("connected to the broker at %s", self._endpoint)
                    await listening.subscribe(applied_wildcard(), qos=1)
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._publish_loop(publishing), name="outbox-drain")
                        group.create_task(self._receive_loop(listening), name="applied-reports")
                        if self._lease is not None:
                            group.create_task(self._until_lease_lost(), name="lease-watch")
            except* aiomqtt.MqttError as errors:
                self.last_error = "; ".join(str(e) for e in errors.exceptions)
            except* StorageError as errors:
                # Handled where it happens (marks and reads are retried); should one still
                # get here, the session restarts after a backoff instead of the task dying.
                self.last_error = "; ".join(str(e) for e in errors.exceptions)
            for client in (publishing, listening):
                _retrieve_disconnect_error(client)
            # What the broker acknowledged before the connection was lost stays published:
            # marked now (the outage may be long), not published again at reconnection.
            with contextlib.suppress(*_SAVE_ERRORS):
                await self._mark_acknowledged()
            self._set_connected(False)
            delay = backoff.next_delay()
            _log.warning(
                "broker %s unavailable (%s); retrying in %.1fs",
                self._endpoint,
                self.last_error,
                delay,
            )
            await asyncio.sleep(delay)

    async def _until_lease_lost(self) -> None:
        assert self._lease is not None
        await self._lease.lost.wait()
        raise NotLeader("the publisher lease was lost")

    async def _fold_generation(self) -> None:
        """A new lease generation publishes at a new epoch: above the old holder's, so
        instances refuse whatever it may still send."""
        lease = self._lease
        if lease is None or lease.generation is None or lease.generation == self._folded:
            return
        old = await self._store.epoch()
        new = await self._store.bump_epoch()
        self._folded = lease.generation
        _log.warning(
            "publisher lease generation %d: epoch %d -> %d; republishing every config",
            lease.generation,
            old,
            new,
        )

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        # The database is the truth at every (re)connection: drain its outbox first, then
        # republish each service's current version (heals a broker that lost its store).
        await self._readback_epoch(client)
        await self._fold_generation()
        self._drain = False
        await self._publish_keyset(client)  # before any envelope it lets services verify
        self._set_connected(True)
        await self._drain_outbox(client)
        await self._republish_current(client)
        interval = self._limits.freshness_interval_s
        next_tick = time.monotonic() + interval
        # From here on every commit is queued in memory by notify(), in commit order. The
        # freshness tick runs in this same loop, so it never races a queued publication.
        while True:
            if not self._queue:
                # Bookkeeping off the write path: the marks wait for a pause in the writes
                # (a burst's marks are written together, or every ``batch`` rows).
                if self._unmarked and await self._quiet(self._limits.mark_delay_s):
                    await self._mark_acknowledged()
                await self._rotate(client)
                await self._forced(client)
                if not self._queue:
                    await self._idle(next_tick)
            if self._drain:  # another replica's commits: read from the outbox, in order
                self._drain = False
                await self._drain_outbox(client)
            if time.monotonic() >= next_tick and not self._queue:
                await self._refresh(client)
                next_tick = time.monotonic() + interval
                continue
            self._wake.clear()
            batch: list[StoredVersion] = []
            while self._queue and len(batch) < self._limits.batch:
                item = self._queue.popleft()
                if item.outbox_id is not None and item.outbox_id > self._acked_upto:
                    batch.append(item)
            if batch:
                await self._publish_outbox_rows(client, batch)
            if len(self._unmarked) >= self._limits.batch:
                await self._mark_acknowledged()

    async def _publish_batch(
        self,
        client: aiomqtt.Client,
        versions: Sequence[StoredVersion],
        *,
        records_first: bool = False,
        acknowledged: Callable[[], None] | None = None,
    ) -> None:
        """Sign and publish ``versions``' envelopes, then their freshness records.

        ``acknowledged`` runs once the broker acknowledged every envelope, before the
        records are sent: a writer waiting for its version may answer then (its envelope
        is on the broker); the record follows on the same connection.
        """
        epoch = await self._store.epoch()
        signed = [(v, self._envelope(v, epoch)) for v in versions]
        if records_first:
            await self._publish_records(
                client, {v.service: (v.version, epoch, payload) for v, payload in signed}
            )
        # Tasks start in creation order and each hands its message to the client before its
        # first await, so messages leave in version order while PUBACKs are awaited together.
        async with asyncio.TaskGroup() as group:
            for v, payload in signed:
                group.create_task(
                    client.publish(updated_topic(v.service), payload, qos=1, retain=True)
                )
        changed: dict[str, tuple[int, int, bytes]] = {}
        for v, payload in signed:
            done = self._published.get(v.service)
            if done is None or (epoch, v.version) >= (done[1], done[0]):
                self._published[v.service] = changed[v.service] = (v.version, epoch, payload)
        if acknowledged is not None:
            acknowledged()
            # Let the woken writers answer before the records are signed (one loop turn):
            # the records are off a write's critical path.
            await asyncio.sleep(0)
        if not records_first:  # (a rotation signed and sent them before the envelopes)
            # The records only once the envelopes are acknowledged: a record naming a
            # version must not reach an instance before that version's envelope can have.
            await self._publish_records(client, changed)

    async def _readback_epoch(self, client: aiomqtt.Client) -> None:
        """Raise the database's epoch above any newer position of our own on the broker."""
        current = {v.service: v for v in await self._store.current_all()}
        names = set(current) | set(self._services() if self._services is not None else ())
        if not names:
            return
        topics = {updated_topic(s): s for s in names} | {freshness_topic(s): s for s in names}
        for topic in sorted(topics):
            await client.subscribe(topic, qos=1)
        # Retained messages are queued right after each SUBACK, so once this PUBACK is in,
        # every one of them is already in the client's queue.
        await client.publish(_PROBE_TOPIC, b"", qos=1)
        pending = len(client.messages)
        highest: dict[str, tuple[int, int]] = {}
        if pending:
            async for message in client.messages:
                service = topics.get(message.topic.value)
                payload = message.payload
                if service is not None and isinstance(payload, bytes) and payload:
                    found = self._own_position(service, message.topic.value, payload)
                    if found is not None and found > highest.get(service, (-1, -1)):
                        highest[service] = found
                pending -= 1
                if pending <= 0:
                    break
        await client.unsubscribe(sorted(topics))
        if not highest:
            return
        self.fleet_epoch = max(epoch for epoch, _ in highest.values())
        self._store.fleet_floor = max(self._store.fleet_floor or 0, self.fleet_epoch)
        epoch = await self._store.epoch()
        ahead = sorted(
            service
            for service, position in highest.items()
            if position > (epoch, current[service].version if service in current else 0)
        )
        if ahead:
            new = await self._store.raise_epoch_above(self.fleet_epoch)
            _log.warning(
                "the broker holds configs signed by this manager's key at a position above "
                "the database's (services %s, epoch up to %d): epoch %d -> %d, so every "
                "instance accepts what this database publishes",
                ", ".join(ahead),
                self.fleet_epoch,
                epoch,
                new,
            )

    def _own_position(self, service: str, topic: str, payload: bytes) -> tuple[int, int] | None:
        """(epoch, version) of a retained message if it verifies with our trust store."""
        try:
            if topic == updated_topic(service):
                env = verify_envelope(payload, trust=self._trust, service=service)
                found = env.position
            else:
                record = verify_freshness(payload, trust=self._trust, service=service)
                found = (record.epoch, record.version)
        except ConfigLibError as exc:
            _log.warning(
                "ignoring a retained message on %s that is not ours (%s)", topic, exc.reason
            )
            return None
        if self._void_from is not None and found[0] >= self._void_from:
            _log.info("ignoring a retained message on %s at void epoch %d", topic, found[0])
            return None
        return found

    async def _publish_records(
        self, client: aiomqtt.Client, entries: dict[str, tuple[int, int, bytes]]
    ) -> None:
        """Sign and publish one freshness record per service in ``entries``."""
        async with asyncio.TaskGroup() as group:
            self._start_records(client, entries, group)

    def _start_records(
        self,
        client: aiomqtt.Client,
        entries: dict[str, tuple[int, int, bytes]],
        group: asyncio.TaskGroup,
    ) -> None:
        """Sign the freshness records of ``entries``; their publications run in ``group``."""
        expires = timedelta(seconds=self._limits.freshness_expiry_s)
        for service, (version, epoch, payload) in sorted(entries.items()):
            record = sign_freshness(
                service=service,
                epoch=epoch,
                version=version,
                envelope_sha256=envelope_digest(payload) if version else None,
                key=self._key,
                expires_in=expires,
            )
            group.create_task(client.publish(freshness_topic(service), record, qos=1, retain=True))
        if entries:
            self._metrics.published.labels(kind="freshness").inc(len(entries))

    async def _refresh(self, client: aiomqtt.Client) -> None:
        """The interval's work: the same envelope bytes again, then a new record each."""
        entries = dict(self._published)
        async with asyncio.TaskGroup() as group:
            for service, (_, _, payload) in sorted(entries.items()):
                group.create_task(
                    client.publish(updated_topic(service), payload, qos=1, retain=True)
                )
        if entries:
            self._metrics.published.labels(kind="refresh").inc(len(entries))
        await self._publish_records(client, {**self._unconfigured(), **entries})

    def _unconfigured(self) -> dict[str, tuple[int, int, bytes]]:
        """Registered services without any config: their record says version 0."""
        if self._services is None:
            return {}
        epoch = self._store.epoch_now
        return {s: (0, epoch, b"") for s in self._services() if s not in self._published}

    async def _quiet(self, wait_s: float) -> bool:
        """Whether nothing wakes the publisher (a commit...) within ``wait_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait_s)
        return not self._wake.is_set()

    @property
    def acknowledged_unmarked(self) -> int:
        """Outbox rows the broker acknowledged whose "published" mark is not written yet."""
        return len(self._unmarked)

    async def _idle(self, until: float) -> None:
        """Wait for a commit, at most until ``until`` (monotonic: the next freshness tick);
        with marks left over from a storage fault, retry them in time."""
        deadline = until
        if self._unmarked:
            deadline = min(deadline, self._mark_not_before)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))

    async def _drain_outbox(self, client: aiomqtt.Client) -> None:
        """Publish every unpublished outbox row of the database, in write order."""
        after = 0
        while True:
            try:
                items = await self._store.pending(self._limits.batch, after=after)
            except StorageError:
                await asyncio.sleep(self._db_backoff.next_delay())  # logged by the store
                continue
            if not items:
                self._metrics.outbox_depth.set(0)
                return
            after = items[-1].id
            # Rows this process already had acknowledged only lack their mark: publishing
            # them again would show subscribers an older version after a newer one.
            self._unmarked.update(i.id for i in items if i.id <= self._acked_upto)
            fresh = [
                StoredVersion(i.service, i.version, 0, i.values, i.created_at, "", "", i.id)
                for i in items
                if i.id > self._acked_upto
            ]
            if fresh:
                await self._publish_outbox_rows(client, fresh)
            await self._mark_acknowledged()

    async def _publish_outbox_rows(
        self, client: aiomqtt.Client, rows: Sequence[StoredVersion]
    ) -> None:
        ids = [r.outbox_id for r in rows if r.outbox_id is not None]

        def acknowledged() -> None:
            # The envelopes are acknowledged by the broker: waiting writers may answer now
            # (their freshness records follow). The rows are marked later (batched); if the
            # process dies first they are published once more after the restart (a
            # duplicate, which subscribers ignore), never lost.
            self._acked_upto = max(self._acked_upto, *ids)
            self._unmarked.update(ids)
            self._signal_progress()

        await self._publish_batch(client, rows, acknowledged=acknowledged)
        now = time.time()
        for row in rows:
            created = datetime.fromisoformat(row.created_at).timestamp()
            self._metrics.publish_latency.observe(max(0.0, now - created))
        self._metrics.published.labels(kind="outbox").inc(len(rows))

    async def _mark_acknowledged(self) -> None:
        if not self._unmarked or time.monotonic() < self._mark_not_before:
            return
        ids, self._unmarked = sorted(self._unmarked), set()
        try:
            for start in range(0, len(ids), self._limits.batch):
                await self._store.mark_published(ids[start : start + self._limits.batch])
        except StorageError:
            # Only bookkeeping (the broker has them): keep the ids and retry after a backoff.
            # The store logged the fault; a restart meanwhile only republishes (duplicates).
            self._unmarked.update(ids)
            self._mark_not_before = time.monotonic() + self._db_backoff.next_delay()
            return
        self._db_backoff.reset()

    async def _republish_current(
        self, client: aiomqtt.Client, *, records_first: bool = False
    ) -> None:
        current = await self._store.current_all()  # retired services left out
        if current:
            await self._publish_batch(client, current, records_first=records_first)
            self._metrics.published.labels(kind="republish").inc(len(current))
        tombstones = self._store.tombstones()
        if tombstones:
            epoch = await self._store.epoch()
            stones: dict[str, tuple[int, int, bytes]] = {}
            for service, version in tombstones:
                done = self._published.get(service)
                if done is not None and done[:2] == (version, epoch):
                    payload = done[2]  # the same bytes again (the records name them)
                else:
                    payload = sign_envelope(
                        service=service,
                        version=version,
                        epoch=epoch,
                        config={},
                        key=self._key,
                        retired=True,
                    )
                stones[service] = (version, epoch, payload)
            async with asyncio.TaskGroup() as group:
                for service, (_, _, payload) in stones.items():
                    group.create_task(
                        client.publish(updated_topic(service), payload, qos=1, retain=True)
                    )
            self._metrics.published.labels(kind="tombstone").inc(len(tombstones))
            # From now on the tombstone is what this service's records name and what every
            # interval republishes (never the config it replaced).
            self._published.update(stones)
            await self._publish_records(client, stones)
        await self._publish_records(client, self._unconfigured())
        self.republished.set()

    async def _save_instances_loop(self) -> None:
        backoff = Backoff(self._limits.reconnect_min_s, self._limits.reconnect_max_s)
        while True:
            await self._tracker.changed.wait()
            # Batch a burst (every instance reporting one update) into one transaction.
            await asyncio.sleep(self._limits.instance_save_delay_s)
            if await self._save_instances():
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next_delay())  # storage fault: retry later

    async def _save_instances(self) -> bool:
        """Save what changed; False (changes kept for the next attempt) if it failed."""
        reports, removed = self._tracker.take_changes()
        pins = self._tracker.take_pins()
        keys = [(r.service, r.instance) for r in reports] + removed
        try:
            await self._store.save_instances(reports, removed, pins)
        except StorageError as exc:  # the store logs the fault once per episode
            self._tracker.restore_changes(keys)
            self._tracker.restore_pins(pins)
            _log.debug("instance reports not saved (kept for the next attempt): %s", exc)
            return False
        except _SAVE_ERRORS as exc:  # not a storage fault, or the store closed
            self._tracker.restore_changes(keys)
            self._tracker.restore_pins(pins)
            _log.error("instance reports not saved (kept for the next attempt): %s", exc)
            return False
        except asyncio.CancelledError:  # shutting down: the final save takes them
            self._tracker.restore_changes(keys)
            self._tracker.restore_pins(pins)
            raise
        return True

    async def _receive_loop(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            raw = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
            report = self._tracker.handle(message.topic.value, raw, time.time())
            if report is None:
                continue
            if report.forged:
                self._metrics.forged_reports.labels(reason=report.forged_reason).inc()
            else:
                self._metrics.applied_reports.labels(status=report.status).inc()


def _retrieve_disconnect_error(client: aiomqtt.Client) -> None:
    """Mark aiomqtt's "connection lost" future as seen.

    On a lost connection ``Client.__aexit__`` returns early without retrieving that
    future's exception; asyncio would then log "Future exception was never retrieved"
    for the connection that was not iterating messages when the broker went away.
    """
    closed: asyncio.Future[None] = client._disconnected  # aiomqtt has no public accessor
    if closed.done() and not closed.cancelled():
        closed.exception()
