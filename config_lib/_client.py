"""ConfigLibrary: a service's signed config, kept current over MQTT.

::

    async with ConfigLibrary(service="stt", model=SttConfig) as cfg:
        cfg.on_change(lambda change: print(change.changed))
        print(cfg.current, cfg.source, cfg.version)

Startup precedence (written once, here): the newest valid of the broker's retained
message and the LKG file; else ``CONFIG_<SERVICE>_*`` environment variables over the
model's defaults; else the defaults alone. The broker gets at most
``settings.initial_wait`` seconds; an unreachable broker never blocks startup longer.

Freshness (see docs/protocol.md): the library also follows the signed freshness record
on ``config/freshness/<service>``. It never applies a version older than one a record
named; without an LKG (or with ``require_fresh``) startup waits up to
``settings.fresh_wait`` for a config that matches a fresh record; :attr:`freshness` is
``waiting``, ``stale`` or ``fresh``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel

from ._backoff import Backoff
from ._change import ConfigSource
from ._envelope import Envelope, Position, check_order, verify_envelope
from ._exceptions import (
    ConfigLibError,
    Duplicate,
    InvalidConfig,
    KeyFileError,
    LibraryStateError,
    NoConfig,
    NotAuthorised,
    ServiceRetired,
    VoidEpoch,
)
from ._files import write_atomic
from ._freshness import FreshnessGate, FreshnessRecord, FreshnessState, verify_freshness
from ._keys import DataKey, SigningKey, TrustStore
from ._keyset import Keyset, verify_keyset
from ._lkg import LkgStore
from ._metrics import ConfigMetrics
from ._mqtt import MqttEndpoint
from ._pipeline import Accepted, ConfigPipeline
from ._report import AppliedReport, load_or_create_report_key
from ._settings import LibrarySettings
from ._settle import settler
from ._sources import env_prefix, from_defaults, from_env, has_env
from ._state import ChangeCallback, ConfigState, Decision
from ._tasks import stop_tasks
from ._topics import (
    KEYSET_TOPIC,
    applied_topic,
    freshness_topic,
    report_request_topic,
    updated_topic,
    validate_name,
)
from ._transport import LibraryClient

__all__ = ["ConfigLibrary"]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
logger = logging.getLogger("config_lib")


class _Lifecycle(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class ConfigLibrary(Generic[M]):
    """Subscribe to ``config/updated/<service>``, verify, validate and hot-apply.

    Keyword-only. ``trust``, ``root``, ``data_keys`` and ``endpoint`` override what
    ``settings`` would load (handy in tests). With a root key (``root``, or
    ``settings.root_path()``) the trusted signing keys are those of the root-signed keyset
    in force (``config/keyset``, kept beside the LKG file), not a trust store file.
    ``endpoint`` None with ``settings.mqtt_url`` None runs without a broker. An async
    context manager that owns its one background task (the MQTT session with reconnects);
    it cannot be entered twice.
    """

    def __init__(
        self,
        *,
        service: str,
        model: type[M],
        settings: LibrarySettings | None = None,
        trust: TrustStore | None = None,
        data_keys: Iterable[DataKey] | None = None,
        endpoint: MqttEndpoint | None = None,
        instance_id: str | None = None,
        require_fresh: bool | None = None,
        root: TrustStore | None = None,
    ) -> None:
        self.service = validate_name(service)
        self.model = model
        self.settings = settings if settings is not None else LibrarySettings()
        self.instance_id = validate_name(
            instance_id or self.settings.resolved_instance_id(), "instance"
        )
        self._trust = trust
        self._root = root
        # Keyset mode (a root key is configured): the keyset in force and where it is kept.
        self._keyset: Keyset | None = None
        self._keyset_path: Path | None = None
        # The exact bytes of the envelope in force (a re-signed copy rewrites the LKG).
        self._in_force_raw: bytes | None = None
        self._data_keys = list(data_keys) if data_keys is not None else None
        self._endpoint = endpoint if endpoint is not None else self.settings.endpoint(service)
        self._topic = updated_topic(service)
        self._freshness_topic = freshness_topic(service)
        self._require_fresh = (
            require_fresh if require_fresh is not None else self.settings.require_fresh
        )
        self._gate = FreshnessGate(skew=timedelta(seconds=self.settings.freshness_skew))
        self._freshness: FreshnessState = "waiting"
        self._fresh_event = asyncio.Event()  # set whenever the state becomes fresh
        self._gate_wake = asyncio.Event()  # a new record: re-arm the expiry timer
        # When the expiry timer fires (None: not armed). A record that expires later does
        # not wake it: it fires, finds the newer record and re-arms (one task switch less
        # per record and library).
        self._expiry_at: datetime | None = None
        # Startup without a signed config: verified envelopes are held here (newest only)
        # until a fresh record says whether they are current, or the wait ends.
        self._holding = False
        self._candidate: Accepted[M] | None = None
        self._apply_lock = asyncio.Lock()
        # Latest wins (docs/config_lib.md): the MQTT loop verifies each envelope and leaves
        # the newest here; the applier task applies it once the previous apply is done, so
        # versions that arrive while a callback runs are skipped.
        self._pending: Accepted[M] | None = None
        self._pending_messages = 0  # messages decided when it is (superseded ones included)
        self._applying: Accepted[M] | None = None
        self._apply_wake = asyncio.Event()
        self._applier_task: asyncio.Task[None] | None = None
        # Plain-function callbacks run here, one at a time, off the event loop.
        self._callback_thread: ThreadPoolExecutor | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        self._freshness_refused = False  # the broker's ACL refused config/freshness/<service>
        self._applied_topic = applied_topic(service, self.instance_id)
        self._lifecycle = _Lifecycle.NEW
        self._state: ConfigState[M] | None = None
        self._pending_callbacks: list[ChangeCallback[M]] = []
        self._metrics = ConfigMetrics()
        self._lkg: LkgStore[M] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._synced = asyncio.Event()
        self._changed = asyncio.Condition()
        self._handled = 0
        self._report: AppliedReport | None = None
        # The instance's own key: every applied report it publishes is signed with it.
        self._report_key: SigningKey | None = None
        self._session_connected = False
        self._broker_error: NotAuthorised | None = None
        self._requests_refused = False  # the broker closed the connection on config/report/
        # The trust store file, when loaded from settings: reloaded when it changes, so a
        # new signing key can be trusted without a restart (key rotation).
        self._trust_file: Path | None = None
        # The data key file, when loaded from settings: reloaded when it changes (master
        # key rotation); keys already loaded are kept for what was encrypted with them.
        self._data_key_file: Path | None = None
        self._data_key_stamp: tuple[int, int, int] | None = None
        self._trust_stamp: tuple[int, int, int] | None = None
        # The position in force once its LKG write and report are done (what waiters see).
        self._settled: Position | None = None
        # The LKG file could not be written (disk full, read-only...): why, and the bytes
        # of the envelope in force, saved again at the next message.
        self._lkg_error: str | None = None
        self._lkg_unsaved: bytes | None = None
        # Deferred settling (config_lib/_settle.py): the LKG file of the envelope in force
        # and the report in self._report are due; the bytes being written right now.
        self._lkg_due = False
        self._report_due = False
        self._lkg_writing: bytes | None = None
        self._member = False

    # -- public state ---------------------------------------------------------------

    @property
    def current(self) -> M:
        """The validated config in force."""
        state = self._require_state()
        if state.current is None:  # pragma: no cover - __aenter__ refuses to return then
            raise NoConfig(f"no config for {self.service!r}")
        return state.current

    @property
    def version(self) -> int | None:
        """Version in force; None when running on env/defaults."""
        return self._require_state().version

    @property
    def epoch(self) -> int | None:
        return self._require_state().epoch

    @property
    def position(self) -> Position | None:
        return self._require_state().position

    @property
    def source(self) -> ConfigSource:
        return self._require_state().source

    @property
    def freshness(self) -> FreshnessState:
        """``waiting`` (startup), ``fresh`` (a valid, unexpired freshness record names
        nothing newer than the config in force) or ``stale`` (otherwise)."""
        return self._freshness

    @property
    def freshness_record(self) -> FreshnessRecord | None:
        """The newest valid freshness record received (it may have expired since)."""
        return self._gate.record

    @property
    def keyset(self) -> Keyset | None:
        """The root-signed keyset in force (None without a root key, or before the first)."""
        return self._keyset

    @property
    def metrics(self) -> ConfigMetrics:
        """Counters: received, applied, duplicate, failed, rejected[reason]."""
        return self._metrics

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def broker_error(self) -> NotAuthorised | None:
        """Why the broker refused this MQTT user, while it does (None once a session works).

        The library keeps serving its config and retries with backoff, so fixing the ACL
        or the password heals it without a restart.
        """
        return self._broker_error

    @property
    def report_key_id(self) -> str | None:
        """Id of the key this instance signs its applied reports with (set once entered);
        the manager's instance view shows the id it pinned, to compare."""
        return None if self._report_key is None else self._report_key.key_id

    @property
    def last_report(self) -> AppliedReport | None:
        """The applied report most recently decided (published when connected)."""
        return self._report

    def on_change(self, callback: ChangeCallback[M]) -> Callable[[], None]:
        """Register a sync or async ``callback(change)``; returns the unsubscribe function.

        Callbacks run one at a time, in registration order, for every applied update after
        startup: ``async def`` ones on the event loop, plain functions on this library's
        callback thread. If one raises, the update is rolled back (see docs). Versions
        that arrive while a callback runs are skipped for the newest (latest wins).
        """
        if self._state is not None:
            return self._state.on_change(callback)
        self._pending_callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._pending_callbacks:
                self._pending_callbacks.remove(callback)
            if self._state is not None:
                self._state.remove(callback)

        return unsubscribe

    async def wait_for_version(
        self,
        version: int,
        *,
        epoch: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - a bounded wait is the point of this helper
    ) -> M:
        """Wait until ``version`` (of ``epoch``, if given) or newer is in force.

        Returns the config then in force; raises TimeoutError after ``timeout`` seconds.
        The LKG file and the applied report are written before this returns.
        """

        def reached() -> bool:
            pos = self._settled
            if pos is None:
                return False
            return pos >= (epoch, version) if epoch is not None else pos[1] >= version

        await self._wait(reached, timeout)
        return self.current

    async def wait_for_freshness(
        self,
        state: FreshnessState,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a bounded wait is the point of this helper
    ) -> None:
        """Wait until :attr:`freshness` is ``state``; raises TimeoutError after ``timeout``."""
        await self._wait(lambda: self._freshness == state, timeout)

    async def wait_for_keyset(
        self,
        version: int,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a bounded wait is the point of this helper
    ) -> Keyset:
        """Wait until a keyset of ``version`` or newer is in force (a root key is set)."""

        def reached() -> bool:
            return self._keyset is not None and self._keyset.version >= version

        await self._wait(reached, timeout)
        assert self._keyset is not None
        return self._keyset

    async def wait_for_received(
        self,
        count: int,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a bounded wait is the point of this helper
    ) -> None:
        """Wait until ``count`` messages in total have been received and fully handled."""
        await self._wait(lambda: self._handled >= count and not self._unsettled(), timeout)

    async def wait_for_broker_error(
        self,
        count: int = 1,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a bounded wait is the point of this helper
    ) -> NotAuthorised | None:
        """Wait until the broker has refused this user ``count`` times in total.

        Returns :attr:`broker_error` (None if a later session was accepted); raises
        TimeoutError after ``timeout`` seconds.
        """
        await self._wait(lambda: self._metrics.not_authorised >= count, timeout)
        return self._broker_error

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._lifecycle is not _Lifecycle.NEW:
            raise LibraryStateError("a ConfigLibrary can be entered only once")
        self._lifecycle = _Lifecycle.OPEN
        root_file = None if self._root is not None else self.settings.root_path()
        if root_file is not None:
            self._root = TrustStore.load(root_file)
        if self._root is not None:
            trust = self._load_keyset(self._root)
            if self._keyset is None:
                # No keyset yet (a service moving to a root key): the trust store it had
                # verifies its LKG file until the first keyset replaces it.
                trust = self._trust or self._fallback_trust()
        elif self._trust is not None:
            trust = self._trust
        else:
            self._trust_file = self.settings.trust_path()
            self._trust_stamp = _file_stamp(self._trust_file)
            trust = self.settings.load_trust()
        if self._data_keys is not None:
            data_keys = self._data_keys
        else:
            self._data_key_file = self.settings.data_key_path(self.service)
            self._data_key_stamp = _file_stamp(self._data_key_file)
            data_keys = self.settings.load_data_keys(self.service)
        pipeline = ConfigPipeline(
            service=self.service,
            model=self.model,
            trust=trust,
            data_keys=data_keys,
            limits=self.settings.limits,
        )
        self._report_key = load_or_create_report_key(
            self.settings.report_key_path(self.service, self.instance_id)
        )
        self._state = self._initial_state(pipeline)
        if self._keyset is not None and self._keyset.void_epochs_from is not None:
            self._void(self._keyset.void_epochs_from)
        self._settled = self._state.position
        for callback in self._pending_callbacks:
            self._state.on_change(callback)
        self._pending_callbacks.clear()
        self._report = self._make_report("applied")

        settler().members += 1  # until _close()
        self._member = True
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        try:
            if self._endpoint is not None:
                started = time.monotonic()
                self._holding = self._state.position is None and self.settings.fresh_wait > 0
                self._task = self._tg.create_task(
                    self._run_mqtt(self._endpoint), name=f"config_lib:{self.service}:mqtt"
                )
                self._expiry_task = self._tg.create_task(
                    self._watch_expiry(), name=f"config_lib:{self.service}:freshness"
                )
                self._applier_task = self._tg.create_task(
                    self._run_applier(), name=f"config_lib:{self.service}:apply"
                )
                try:
                    async with asyncio.timeout(self.settings.initial_wait):
                        await self._synced.wait()
                        # What the broker had is verified; wait until it is also applied.
                        async with self._changed:
                            await self._changed.wait_for(
                                lambda: self._pending is None and self._applying is None
                            )
                except TimeoutError:
                    logger.warning(
                        "broker not reached within %.1fs, serving %s config: service=%s",
                        self.settings.initial_wait,
                        self._state.source,
                        self.service,
                        extra={"service": self.service, "source": self._state.source},
                    )
                await self._wait_fresh(started)
            else:
                await self._set_freshness("stale", "no broker configured")
            if self._require_fresh and self._freshness != "fresh":
                raise NoConfig(
                    f"no fresh config for {self.service!r} within {self.settings.fresh_wait:.0f}s "
                    f"(require_fresh is set; freshness is {self._freshness})"
                )
            if self._state.current is None:
                raise NoConfig(
                    f"no config for {self.service!r}: no signed config from the broker or "
                    f"the LKG file, and env {env_prefix(self.service)}* / defaults do not "
                    f"validate"
                )
        except BaseException:
            await self._close()
            raise
        logger.info(
            "config ready: service=%s instance=%s source=%s version=%s epoch=%s freshness=%s",
            self.service,
            self.instance_id,
            self._state.source,
            self._state.version,
            self._state.epoch,
            self._freshness,
            extra=self._log_fields(),
        )
        return self

    async def _wait_fresh(self, started: float) -> None:
        """Startup's freshness wait, then leave ``waiting`` for ``fresh`` or ``stale``.

        Without a signed config (or with ``require_fresh``) and a reachable broker, wait
        until ``settings.fresh_wait`` after ``started`` for a config that matches a fresh
        record. Then apply the newest valid envelope held back, if any (state ``stale``).
        """
        wanted = self._holding or self._require_fresh
        reachable = self._client is not None or self._require_fresh
        remaining = self.settings.fresh_wait - (time.monotonic() - started)
        if wanted and reachable and self._freshness != "fresh" and remaining > 0:
            try:
                async with asyncio.timeout(remaining):
                    await self._fresh_event.wait()
            except TimeoutError:
                logger.warning(
                    "no config matching a fresh signed freshness record within %.1fs: service=%s",
                    self.settings.fresh_wait,
                    self.service,
                    extra={"service": self.service},
                )
        async with self._apply_lock:
            self._holding = False
            candidate, self._candidate = self._candidate, None
            if candidate is not None and candidate.position != self._require_state().position:
                await self._apply_candidate(candidate)
            await self._update_freshness(reason="startup")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def aclose(self) -> None:
        """Stop the MQTT session (publishing an ``offline`` report first) and close."""
        await self._close()

    async def _close(self) -> None:
        if self._lifecycle is _Lifecycle.CLOSED:
            return
        # Nothing deferred is lost: the LKG file and the report of the config in force
        # first (an apply may finish while this waits: settle again).
        while self._lifecycle is _Lifecycle.OPEN and self._unsettled():
            await settler().settle_now(self)
        if self._closing():
            return  # closed by another caller meanwhile
        self._lifecycle = _Lifecycle.CLOSED  # from now on _publish() sends nothing
        client = self._client
        if client is not None and self._report is not None:
            offline = self._report.stamped(status="offline", reason="stopped")
            try:
                await client.publish(
                    self._applied_topic,
                    offline.to_bytes(self._report_key),
                    qos=1,
                    retain=True,
                    timeout=1.0,
                )
            except aiomqtt.MqttError as exc:
                logger.debug("offline report not sent: %s", exc)
        tasks = [t for t in (self._task, self._expiry_task, self._applier_task) if t is not None]
        if tasks:
            await stop_tasks(tasks)
        if self._tg is not None:
            await self._tg.__aexit__(None, None, None)
        self._client = None
        self._pending = None
        if self._unsettled():  # applied while the offline report was sent: its LKG file
            await settler().settle_now(self)
        if self._member:  # counted among the settler's members since __aenter__
            self._member = False
            settler().members -= 1
        if self._callback_thread is not None:
            # A callback still blocking there keeps running on its own; nothing waits for it.
            self._callback_thread.shutdown(wait=False, cancel_futures=True)

    # -- keyset ---------------------------------------------------------------------

    def _load_keyset(self, root: TrustStore) -> TrustStore:
        """The keyset kept beside the LKG file (verified with the root; an expired one still
        loads: it was in force), or an empty trust store until the broker's arrives."""
        self._keyset_path = path = self.settings.keyset_path(self.service)
        if path is not None and path.exists():
            try:
                self._keyset = verify_keyset(path.read_bytes(), root=root)
            except (ConfigLibError, OSError) as exc:
                logger.warning(
                    "kept keyset refused, waiting for the broker's: service=%s path=%s "
                    "reason=%s detail=%s",
                    self.service,
                    path,
                    getattr(exc, "reason", "unreadable"),
                    exc,
                    extra={"service": self.service, "keyset_path": str(path)},
                )
        return self._keyset.trust if self._keyset is not None else TrustStore()

    def _fallback_trust(self) -> TrustStore:
        path = self.settings.trust_path()
        if not path.exists():
            return TrustStore()
        try:
            return TrustStore.load(path)
        except KeyFileError:
            return TrustStore()

    async def _handle_keyset(self, payload: Any) -> None:
        """A keyset: verify with the root, keep it if newer, trust exactly its keys."""
        if not payload or self._root is None:
            return
        state = self._require_state()
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        self._metrics.keysets_received += 1
        try:
            await self._accept_keyset(state, raw, self._root)
        finally:
            async with self._changed:
                self._changed.notify_all()

    async def _accept_keyset(self, state: ConfigState[M], raw: bytes, root: TrustStore) -> None:
        try:
            keyset = verify_keyset(raw, root=root, current=self._keyset, now=datetime.now(UTC))
        except ConfigLibError as exc:
            self._metrics.keysets_rejected[exc.reason] += 1
            if exc.reason != "keyset_duplicate":
                logger.warning(
                    "keyset refused: service=%s reason=%s detail=%s",
                    self.service,
                    exc.reason,
                    exc,
                    extra={**self._log_fields(), "reason": exc.reason},
                )
            return
        async with self._apply_lock:
            # On disk first, then in force: whoever sees the new keyset (wait_for_keyset, a
            # restart right after) finds the file already written.
            if self._keyset_path is not None:
                try:
                    await asyncio.to_thread(write_atomic, self._keyset_path, raw, mode=0o600)
                except OSError as exc:
                    logger.error(
                        "keyset not written (kept in memory): service=%s path=%s error=%s",
                        self.service,
                        self._keyset_path,
                        exc.strerror,
                        extra=self._log_fields(),
                    )
            self._keyset = keyset
            state.pipeline.trust = keyset.trust
            if keyset.void_epochs_from is not None:
                self._void(keyset.void_epochs_from)
        logger.info(
            "keyset accepted: service=%s version=%s keys=%s expires_at=%s",
            self.service,
            keyset.version,
            ",".join(keyset.trust),
            keyset.expires_at.isoformat(),
            extra={**self._log_fields(), "keyset_version": keyset.version},
        )

    def _void(self, from_epoch: int) -> None:
        """The root-signed floor reset: positions at epochs >= ``from_epoch`` are void."""
        state = self._require_state()
        if state.void_from != from_epoch:
            logger.warning(
                "epochs from %s declared void by the root (floor reset): service=%s "
                "version_in_force=%s epoch_in_force=%s",
                from_epoch,
                self.service,
                state.version,
                state.epoch,
                extra=self._log_fields(),
            )
        state.void_from = from_epoch
        self._gate.void(from_epoch)

    async def _resigned(self, raw: bytes) -> None:
        """A duplicate with other bytes: if it is the config in force re-signed (same
        position, same config, a trusted key), rewrite the LKG file with it so that the
        retired key can be dropped. Callbacks are not run: nothing changed."""
        async with self._apply_lock:  # the applier's LKG writes never interleave with this
            await self._resign_lkg(raw)

    async def _resign_lkg(self, raw: bytes) -> None:
        state = self._require_state()
        kept = self._in_force_raw
        if kept is None or raw == kept or state.position is None:
            return
        try:
            envelope = verify_envelope(
                raw, trust=state.pipeline.trust, service=self.service, limits=state.pipeline.limits
            )
            self._gate.check_issued_at(envelope, datetime.now(UTC))
        except ConfigLibError:
            return  # cannot happen for a verified duplicate but for the clock: keep the old
        if envelope.position != state.position or envelope.retired:
            return
        if json.loads(kept).get("config") != envelope.config:
            logger.warning(
                "a different config signed at the version in force was ignored: service=%s "
                "version=%s key=%s",
                self.service,
                envelope.version,
                envelope.key_id,
                extra=self._log_fields(),
            )
            self._metrics.rejected["conflicting_duplicate"] += 1
            return
        self._in_force_raw = raw
        self._metrics.resigned += 1
        logger.info(
            "config in force re-signed: service=%s version=%s key=%s (LKG rewritten)",
            self.service,
            envelope.version,
            envelope.key_id,
            extra={**self._log_fields(), "key_id": envelope.key_id},
        )
        self._defer(lkg=True)

    # -- startup sources ------------------------------------------------------------

    def _initial_state(self, pipeline: ConfigPipeline[M]) -> ConfigState[M]:
        path = self.settings.lkg_path(self.service)
        if path is not None:
            self._lkg = LkgStore(path, pipeline)
            lkg = self._lkg.load()
            if lkg is not None:
                self._in_force_raw = lkg.envelope.raw
                return ConfigState(
                    pipeline,
                    current=lkg.config,
                    source="lkg",
                    position=lkg.position,
                    metrics=self._metrics,
                    run_sync=self._run_sync,
                )
        config, source = self._fallback()
        return ConfigState(
            pipeline,
            current=config,
            source=source,
            metrics=self._metrics,
            run_sync=self._run_sync,
        )

    def _fallback(self) -> tuple[M | None, ConfigSource]:
        if self.settings.env_fallback and has_env(self.service):
            try:
                return from_env(self.model, self.service), "env"
            except InvalidConfig as exc:
                logger.warning(
                    "environment config invalid, trying defaults: service=%s detail=%s",
                    self.service,
                    exc,
                    extra={"service": self.service, "reason": exc.reason},
                )
        try:
            return from_defaults(self.model), "defaults"
        except InvalidConfig as exc:
            logger.warning(
                "model defaults do not validate, waiting for a signed config: service=%s detail=%s",
                self.service,
                exc,
                extra={"service": self.service, "reason": exc.reason},
            )
            return None, "defaults"

    # -- MQTT session ---------------------------------------------------------------

    async def _run_mqtt(self, endpoint: MqttEndpoint) -> None:
        """Connect, subscribe, handle messages; on loss reconnect with capped backoff+jitter."""
        s = self.settings
        backoff = Backoff(s.reconnect_min_delay, s.reconnect_max_delay)
        while self._lifecycle is _Lifecycle.OPEN:
            self._session_connected = False
            refused: NotAuthorised | None = None
            try:
                await self._session(endpoint)
                error = "session ended"
            except NotAuthorised as exc:
                refused = exc
                error = str(exc)
            except aiomqtt.MqttError as exc:
                error = str(exc)
            finally:
                self._client = None
            if self._lifecycle is not _Lifecycle.OPEN:
                return
            # Tell a waiting startup that the broker is not there: serve what we have.
            self._synced.set()
            connected = self._session_connected
            if connected:
                backoff.reset()
            wait = backoff.next_delay()
            if refused is not None:
                await self._not_authorised(refused, endpoint, wait)
            else:
                logger.warning(
                    "broker %s: service=%s error=%s retry_in=%.2fs",
                    "connection lost" if connected else "unreachable",
                    self.service,
                    error,
                    wait,
                    extra={"service": self.service, "broker": str(endpoint), "retry_in": wait},
                )
            await asyncio.sleep(wait)

    async def _not_authorised(
        self, exc: NotAuthorised, endpoint: MqttEndpoint, wait: float
    ) -> None:
        """Count a refusal; log it once (ERROR) until it changes or a session works."""
        self._metrics.not_authorised += 1
        previous, self._broker_error = self._broker_error, exc
        async with self._changed:
            self._changed.notify_all()
        fields = {
            "service": self.service,
            "broker": str(endpoint),
            "reason": exc.reason,
            "operation": exc.operation,
            "topic": exc.topic,
            "retry_in": wait,
        }
        if previous is not None and (previous.operation, previous.topic) == (
            exc.operation,
            exc.topic,
        ):
            logger.debug("broker still refuses: service=%s %s", self.service, exc, extra=fields)
            return
        logger.error(
            "broker refused: not authorised: service=%s %s (keeping the config in force, "
            "retrying in %.2fs)",
            self.service,
            exc,
            wait,
            extra=fields,
        )

    async def _session(self, endpoint: MqttEndpoint) -> None:
        """One connection: subscribe, report, then handle messages until it drops."""
        s = self.settings
        will = aiomqtt.Will(
            self._applied_topic,
            self._make_report("offline", reason="connection_lost").to_bytes(self._report_key),
            qos=1,
            retain=True,
        )
        client = LibraryClient(
            **endpoint.client_kwargs(),
            will=will,
            timeout=s.connect_timeout,
            keepalive=s.keepalive,
            logger=logging.getLogger("config_lib.mqtt"),
            # Small packets both ways (PUBACK, then the report): without this, Nagle's
            # algorithm and the broker's delayed ACK add tens of milliseconds per update.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        user = endpoint.username
        try:
            try:
                await client.__aenter__()
            except aiomqtt.MqttCodeError as exc:  # the CONNACK's refusal code
                if _credentials_refused(exc):
                    raise NotAuthorised(
                        f"the broker refused MQTT user {user!r} at connect ({exc.rc}): check "
                        "its user name and password",
                        operation="connect",
                    ) from None
                raise
            try:
                # The keyset first (with a root key): its retained message then arrives
                # before the config it lets us verify.
                if self._root is not None:
                    try:
                        granted = await _unless_closed(
                            client, client.subscribe(KEYSET_TOPIC, qos=1)
                        )
                    except _ConnectionClosed:
                        granted = None
                    if granted is None or any(_refused(code) for code in granted):
                        raise NotAuthorised(
                            f"the broker refused MQTT user {user!r} a subscription to "
                            f"{KEYSET_TOPIC}: the ACL must let every service read it "
                            "('pattern read config/keyset')",
                            operation="subscribe",
                            topic=KEYSET_TOPIC,
                        )
                # The config, then its freshness record (their order of arrival does not
                # matter: at startup envelopes are held until a record decides).
                for topic in (self._topic, self._freshness_topic):
                    freshness = topic == self._freshness_topic
                    if freshness and self._freshness_refused:
                        continue  # an ACL without freshness records: no record, stays stale
                    # Records at QoS 0 (docs/config_lib.md, "Many libraries in one
                    # process"): no PUBACK for the second message of every update.
                    qos = 0 if freshness else 1
                    try:
                        granted = await _unless_closed(client, client.subscribe(topic, qos=qos))
                    except _ConnectionClosed:
                        granted = None
                        # RabbitMQ's way of refusing: the next session does without records.
                        self._freshness_refused = freshness
                    if freshness and granted is not None and any(map(_refused, granted)):
                        self._freshness_refused = True
                        logger.warning(
                            "freshness records not allowed by the broker's ACL (add "
                            "'pattern read config/freshness/%%u'): service=%s",
                            self.service,
                            extra={"service": self.service},
                        )
                        continue
                    if granted is None or any(_refused(code) for code in granted):
                        how = "closed the connection" if granted is None else "answered a failure"
                        raise NotAuthorised(
                            f"the broker {how} when MQTT user {user!r} subscribed to {topic}: "
                            "the ACL does not let this user read it (the user name must be the "
                            "service name)",
                            operation="subscribe",
                            topic=topic,
                        )
                # Report requests (docs/protocol.md): optional, an older ACL may refuse it.
                request_topic = report_request_topic(self.service)
                if not self._requests_refused:
                    try:
                        asked = await _unless_closed(client, client.subscribe(request_topic, qos=1))
                    except _ConnectionClosed:
                        # RabbitMQ's way of refusing: the next session does without them.
                        self._requests_refused = True
                        raise NotAuthorised(
                            f"the broker closed the connection when MQTT user {user!r} "
                            f"subscribed to {request_topic} (report requests, optional: "
                            "reconnecting without them)",
                            operation="subscribe",
                            topic=request_topic,
                        ) from None
                    if any(_refused(code) for code in asked):
                        logger.info(
                            "report requests not allowed by the broker's ACL: service=%s topic=%s",
                            self.service,
                            request_topic,
                            extra={"service": self.service},
                        )
                self._client = client
                report = self._report or self._make_report("applied")
                # The broker queues the retained config right after the SUBACK and before the
                # PUBACK of this report, so once it is acknowledged every retained message is
                # already in the client's queue: `pending` tells when startup has seen them.
                try:
                    await _unless_closed(client, self._publish(report, qos=1))
                except _ConnectionClosed:
                    self._client = None
                    raise NotAuthorised(
                        f"the broker closed the connection when MQTT user {user!r} published "
                        f"its report to {self._applied_topic}: the ACL does not let this user "
                        "write it",
                        operation="publish",
                        topic=self._applied_topic,
                    ) from None
                self._session_connected = True
                if self._broker_error is not None:
                    logger.info(
                        "broker accepts this user again: service=%s", self.service,
                        extra={"service": self.service},
                    )  # fmt: skip
                self._broker_error = None
                logger.info(
                    "connected to broker: service=%s broker=%s topic=%s",
                    self.service,
                    endpoint,
                    self._topic,
                    extra={"service": self.service, "broker": str(endpoint)},
                )
                pending = len(client.messages)
                if pending == 0:
                    self._synced.set()
                while True:
                    # (topic, payload); MqttError once disconnected
                    topic, payload = await client.next_message()
                    if self._lifecycle is not _Lifecycle.OPEN:
                        return  # closing: a cancellation was swallowed, stop anyway
                    # Exact topics (no wildcards subscribed): a string comparison.
                    if topic == self._topic:
                        await self._handle(payload)
                    elif topic == KEYSET_TOPIC:
                        await self._handle_keyset(payload)
                    elif topic == self._freshness_topic:
                        await self._handle_record(payload)
                    elif topic == request_topic:
                        # Asked to report again: the latest report, as it is (no payload
                        # is read; only the manager may publish here).
                        await self._publish(self._report or self._make_report("applied"), qos=1)
                    pending -= 1
                    if pending == 0:
                        self._synced.set()
            finally:
                await client.__aexit__(None, None, None)
        finally:
            # aiomqtt leaves the socket open when the connection attempt fails or is
            # cancelled before CONNACK; reinitialise() closes it (and its loop reader).
            client._client.reinitialise()

    async def _handle(self, payload: Any) -> None:
        state = self._require_state()
        if not payload:
            logger.info(
                "retained config cleared on the broker, keeping the current one: service=%s",
                self.service,
                extra=self._log_fields(),
            )
            return
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        self._refresh_trust(state.pipeline)
        self._refresh_data_keys(state.pipeline)
        decided = True  # False when the envelope waits for the applier
        try:
            if self._holding:
                async with self._apply_lock:
                    if self._holding:
                        await self._hold(raw)
                        return
            queued = self._pending or self._applying
            screened = state.screen(
                raw,
                check=self._check_fresh,
                after=None if queued is None else queued.position,
            )
            if isinstance(screened, Decision):
                await self._act_on(screened)
                if screened.status == "duplicate":
                    await self._resigned(raw)
                return
            superseded = self._pending
            if superseded is not None:
                self._metrics.coalesced += 1
                logger.debug(
                    "config version %s skipped, version %s is newer: service=%s",
                    superseded.envelope.version,
                    screened.envelope.version,
                    self.service,
                    extra=self._log_fields(),
                )
            self._pending = screened
            self._pending_messages += 1
            self._apply_wake.set()
            decided = False
        finally:
            if decided:
                self._handled += 1
                self._mark_settled()
            async with self._changed:
                self._changed.notify_all()

    async def _run_applier(self) -> None:
        """Apply the newest verified envelope, one apply at a time (latest wins)."""
        while True:
            await self._apply_wake.wait()
            self._apply_wake.clear()
            while (candidate := self._pending) is not None:
                messages = self._pending_messages
                self._pending, self._pending_messages = None, 0
                self._applying = candidate
                try:
                    async with self._apply_lock:
                        await self._apply_candidate(candidate)
                finally:
                    self._applying = None
                    self._handled += messages
                    self._mark_settled()
                    async with self._changed:
                        self._changed.notify_all()

    async def _run_sync(self, function: Callable[[], object]) -> object:
        """Run a plain-function callback on this library's callback thread; await it."""
        if self._callback_thread is None:
            self._callback_thread = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"config_lib-{self.service}-callbacks"
            )
        return await asyncio.get_running_loop().run_in_executor(self._callback_thread, function)

    def _check_fresh(self, envelope: Envelope) -> None:
        if self._require_state().voided(envelope.epoch):
            raise VoidEpoch(f"epoch {envelope.epoch} is void (the keyset's floor reset)")
        self._gate.check(envelope, datetime.now(UTC))

    async def _hold(self, raw: bytes) -> None:
        """Startup without a signed config: verify ``raw`` and keep it until a record says."""
        state = self._require_state()
        state.metrics.received += 1
        try:
            accepted = state.pipeline.accept(raw)
            self._check_fresh(accepted.envelope)
        except ServiceRetired as exc:  # a tombstone: nothing to hold, the service is retired
            state.retired_at = exc.position
            await self._act_on(Decision("retired", exc.reason, str(exc)))
            return
        except ConfigLibError as exc:
            state.metrics.rejected[exc.reason] += 1
            await self._act_on(Decision("rejected", exc.reason, str(exc)))
            return
        held = self._candidate
        if held is None or accepted.position > held.position:
            self._candidate = accepted
        if self._gate.fresh_record(datetime.now(UTC)) is not None:
            await self._release_candidate()

    async def _release_candidate(self) -> None:
        """A fresh record is known: apply the held envelope if it matches, else drop it."""
        candidate, self._candidate = self._candidate, None
        record = self._gate.fresh_record(datetime.now(UTC))
        if record is not None and record.position is None:  # the manager has no config
            self._holding = False
            await self._update_freshness()
            return
        if candidate is None:
            retired = self._require_state().retired_at
            at = None if record is None else record.position
            if at is not None and retired is not None and retired >= at:
                self._holding = False  # the record names the tombstone: retired is current
                await self._update_freshness()
            return
        await self._apply_candidate(candidate)
        self._holding = self._require_state().position is None
        await self._update_freshness()

    async def _apply_candidate(self, candidate: Accepted[M]) -> None:
        """Apply a verified envelope, the freshness and replay rules checked again first
        (a record or a tombstone may have arrived while it waited)."""
        state = self._require_state()
        try:
            check_order(candidate.position, state.floor())
            self._check_fresh(candidate.envelope)
        except Duplicate:
            return
        except ConfigLibError as exc:
            state.metrics.rejected[exc.reason] += 1
            await self._act_on(Decision("rejected", exc.reason, str(exc)))
            return
        decision = await state.apply(candidate)
        await self._update_freshness(publish=False)
        await self._act_on(decision)
        self._mark_settled()

    async def _handle_record(self, payload: Any) -> None:
        """A freshness record: verify, keep if newest, re-evaluate the state."""
        if not payload:
            logger.info(
                "freshness record cleared on the broker: service=%s",
                self.service,
                extra=self._log_fields(),
            )
            return
        state = self._require_state()
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        self._refresh_trust(state.pipeline)
        self._metrics.records_received += 1
        try:
            record = verify_freshness(raw, trust=state.pipeline.trust, service=self.service)
            if state.voided(record.epoch):
                raise VoidEpoch(f"freshness record at void epoch {record.epoch} (floor reset)")
            self._gate.offer(record, datetime.now(UTC))
        except ConfigLibError as exc:
            self._metrics.records_rejected[exc.reason] += 1
            if exc.reason != "record_duplicate":
                logger.warning(
                    "freshness record refused: service=%s reason=%s detail=%s",
                    self.service,
                    exc.reason,
                    exc,
                    extra={**self._log_fields(), "reason": exc.reason},
                )
            return
        kept = self._gate.record
        if self._expiry_at is None or (kept is not None and kept.expires_at < self._expiry_at):
            self._gate_wake.set()
        if self._holding:
            async with self._apply_lock:
                if self._holding:
                    await self._release_candidate()
                await self._update_freshness()
        else:  # never waits for a callback in progress (the applier holds the lock)
            await self._update_freshness()
        async with self._changed:
            self._changed.notify_all()

    async def _update_freshness(self, reason: str | None = None, *, publish: bool = True) -> None:
        """Recompute the freshness state (not during startup's wait) and act on a change."""
        if self._holding:
            return
        state = self._require_state()
        now = datetime.now(UTC)
        position = state.position
        if state.retired_at is not None and (position is None or position < state.retired_at):
            position = state.retired_at  # a retired service is current at its tombstone
        new = self._gate.state(position, now)
        if reason is None:
            record = self._gate.record
            if record is None:
                reason = "no freshness record"
            elif record.expired(now):
                reason = "freshness record expired"
            else:
                reason = "a newer version is named by the freshness record"
        await self._set_freshness(new, reason, publish=publish)

    async def _set_freshness(
        self, new: FreshnessState, reason: str, *, publish: bool = True
    ) -> None:
        old = self._freshness
        if new == old:
            return
        self._freshness = new
        self._metrics.freshness = new
        if new == "fresh":
            self._fresh_event.set()
            logger.info(
                "config is fresh: service=%s version=%s",
                self.service,
                self._require_state().version,
                extra=self._log_fields(),
            )
        else:
            self._fresh_event.clear()
            # Logged once per transition, never per message.
            logger.warning(
                "config is stale (%s), keeping the config in force: service=%s version=%s",
                reason,
                self.service,
                self._require_state().version,
                extra={**self._log_fields(), "freshness": new},
            )
        async with self._changed:
            self._changed.notify_all()
        if publish and self._report is not None:
            await self._publish(self._report.stamped(freshness=new))

    async def _watch_expiry(self) -> None:
        """Wake when the kept record expires (a frozen broker sends nothing) and re-evaluate."""
        while self._lifecycle is _Lifecycle.OPEN:
            self._gate_wake.clear()
            record = self._gate.fresh_record(datetime.now(UTC))
            delay = None
            self._expiry_at = None
            if record is not None:
                self._expiry_at = record.expires_at
                delay = max(0.0, (record.expires_at - datetime.now(UTC)).total_seconds()) + 0.01
            try:
                async with asyncio.timeout(delay):
                    await self._gate_wake.wait()
            except TimeoutError:
                pass
            if self._state is not None and not self._holding and self._freshness != "waiting":
                await self._update_freshness()

    async def _act_on(self, decision: Decision[M]) -> None:
        fields = self._log_fields()
        attempted: dict[str, int | None] = {"attempted_version": None, "attempted_epoch": None}
        if decision.accepted is not None:
            attempted = {
                "attempted_version": decision.accepted.envelope.version,
                "attempted_epoch": decision.accepted.envelope.epoch,
            }
        if decision.status == "duplicate":
            logger.debug("duplicate config ignored: service=%s", self.service, extra=fields)
            if self._lkg_unsaved is not None:  # the file owed: written again, report cleared
                self._defer(lkg=True, report=self._make_report("applied"))
            return
        if decision.status == "retired":
            logger.warning(
                "service retired by the config manager, keeping the config in force: "
                "service=%s version_in_force=%s",
                self.service,
                fields["version"],
                extra=fields,
            )
            await self._publish(
                self._make_report("retired", reason="retired", detail=decision.detail)
            )
            return
        if decision.status == "rejected":
            logger.warning(
                "config rejected: service=%s reason=%s detail=%s version_in_force=%s",
                self.service,
                decision.reason,
                decision.detail,
                fields["version"],
                extra={**fields, "reason": decision.reason},
            )
            await self._publish(
                self._make_report("rejected", reason=decision.reason, detail=decision.detail)
            )
            return
        if decision.status == "failed":
            logger.error(
                "config update failed and was rolled back: service=%s reason=%s detail=%s "
                "version_in_force=%s",
                self.service,
                decision.reason,
                decision.detail,
                fields["version"],
                extra={**fields, "reason": decision.reason, **attempted},
            )
            await self._publish(
                self._make_report(
                    "failed", reason=decision.reason, detail=decision.detail, **attempted
                )
            )
            return
        assert decision.accepted is not None
        changed = sorted(decision.change.changed) if decision.change is not None else []
        logger.info(
            "config applied: service=%s version=%s epoch=%s changed=%s",
            self.service,
            fields["version"],
            fields["epoch"],
            ",".join(changed) or "-",
            extra={**fields, "changed": changed},
        )
        self._in_force_raw = decision.accepted.envelope.raw
        # The LKG file and the report are settled later, off the path of the other
        # libraries of this process (config_lib/_settle.py); the report is in force now
        # (a freshness change or a report request sends it as it is).
        self._defer(lkg=True, report=self._make_report("applied", **attempted))

    # -- deferred settling (config_lib/_settle.py) ----------------------------------

    def _defer(self, *, lkg: bool = False, report: AppliedReport | None = None) -> None:
        """Mark the LKG file of the envelope in force and/or ``report`` due; the process's
        settler writes and publishes them once it is quiet."""
        if lkg and self._lkg is not None:
            self._lkg_due = True
        if report is not None:
            self._report = report
            self._report_due = True
        if self._lkg_due or self._report_due:
            settler().request(self)

    def _closing(self) -> bool:
        return self._lifecycle is _Lifecycle.CLOSED

    def _unsettled(self) -> bool:
        return self._lkg_due or self._report_due or self._lkg_writing is not None

    def _mark_settled(self) -> None:
        """What waiters see advances to the position in force once nothing is owed for it."""
        if not self._unsettled():
            self._settled = self._require_state().position

    def _settle_lkg(self) -> Callable[[], OSError | None] | None:
        """The due LKG write of the envelope in force (run off the loop), or None."""
        raw, store = self._in_force_raw, self._lkg
        if not self._lkg_due or raw is None or store is None:
            return None
        self._lkg_due = False
        self._lkg_writing = raw

        def write() -> OSError | None:
            try:
                store.save(raw)
            except OSError as exc:
                return exc
            return None

        return write

    def _settled_lkg(self, error: OSError | None) -> None:
        """The outcome of the LKG write: on failure (disk full, read-only...) count it, log
        it once per episode and put it in the due report; the config stays applied, the
        file is written again at the next message."""
        raw, self._lkg_writing = self._lkg_writing, None
        assert self._lkg is not None
        assert raw is not None
        path = self._lkg.path
        if error is not None:
            exc = error
            self._metrics.lkg_save_failed += 1
            self._lkg_unsaved = raw
            problem = (
                f"LKG file {path} not written ({exc.strerror or type(exc).__name__}); "
                "the config is applied, the file is written again at the next update"
            )
            if self._lkg_error is None:
                logger.error(
                    "LKG file not written, running on the applied config without it: "
                    "service=%s path=%s error=%s",
                    self.service,
                    path,
                    exc.strerror,
                    extra={**self._log_fields(), "lkg_path": str(path)},
                )
            self._lkg_error = problem
            report = self._report
            if self._report_due and report is not None and report.status == "applied":
                self._report = report.stamped(reason="lkg_not_saved", detail=problem)
            return
        self._lkg_unsaved = None
        if self._lkg_error is not None:
            self._lkg_error = None
            logger.warning(
                "LKG file written again: service=%s path=%s",
                self.service,
                path,
                extra={**self._log_fields(), "lkg_path": str(path)},
            )

    async def _settle_report(self) -> None:
        """Publish the due report (the newest: superseded ones are never sent), then let
        waiters see the position in force."""
        report = self._report
        if self._report_due and report is not None:
            try:
                await self._publish(report)
            except aiomqtt.MqttError as exc:  # the connection is going: sent on the next one
                logger.debug("applied report not sent: %s", exc)
            self._report_due = False
        self._mark_settled()
        async with self._changed:
            self._changed.notify_all()

    async def _publish(self, report: AppliedReport, *, qos: int = 0) -> None:
        """Remember ``report`` as the latest and publish it retained if connected.

        QoS 0 is enough for reports after the first one of a connection: TCP delivers them
        in order while the connection lives, and the latest report is published again
        (QoS 1) on every new connection. It also spares the broker's PUBACK, which with
        Nagle's algorithm on the broker side would delay the next config by a delayed-ACK
        timeout.
        """
        self._report = report
        self._report_due = False  # the newest report: one deferred earlier is superseded
        client = self._client
        if client is None or self._lifecycle is _Lifecycle.CLOSED:
            return  # republished on the next connection; nothing after the offline report
        body = report.to_bytes(self._report_key)
        if qos == 0:
            # Fire and forget, as QoS 0 is: hand the packet to paho's queue and go on.
            # aiomqtt's publish() would wait until paho has written it to the socket (a
            # task, a timer and a few loop turns per report); the session's socket
            # callbacks write it just the same, in order.
            info = client._client.publish(self._applied_topic, body, 0, True)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise aiomqtt.MqttCodeError(info.rc, "Could not publish the applied report")
            return
        await client.publish(
            self._applied_topic, body, qos=qos, retain=True, timeout=self.settings.connect_timeout
        )

    def _refresh_trust(self, pipeline: ConfigPipeline[M]) -> None:
        """Reload the trust store file if it was replaced or changed since it was read."""
        path = self._trust_file
        if path is None:
            return
        stamp = _file_stamp(path)
        if stamp == self._trust_stamp:
            return
        self._trust_stamp = stamp
        try:
            trust = TrustStore.load(path)
        except KeyFileError as exc:
            logger.warning(
                "trust store changed but cannot be loaded, keeping the previous keys: "
                "service=%s error=%s",
                self.service,
                exc,
                extra={"service": self.service, "trust_store": str(path)},
            )
            return
        pipeline.trust = trust
        logger.info(
            "trust store reloaded: service=%s keys=%s",
            self.service,
            ",".join(trust),
            extra={"service": self.service, "trust_store": str(path), "keys": list(trust)},
        )

    def _refresh_data_keys(self, pipeline: ConfigPipeline[M]) -> None:
        """Reload the data key file if it changed; keep the keys loaded before as well."""
        path = self._data_key_file
        if path is None:
            return
        stamp = _file_stamp(path)
        if stamp == self._data_key_stamp:
            return
        self._data_key_stamp = stamp
        try:
            loaded = self.settings.load_data_keys(self.service)
        except KeyFileError as exc:
            logger.warning(
                "data key file changed but cannot be loaded, keeping the previous keys: "
                "service=%s error=%s",
                self.service,
                exc,
                extra={"service": self.service},
            )
            return
        known = {k.key_id for k in loaded}
        pipeline.data_keys = (*loaded, *(k for k in pipeline.data_keys if k.key_id not in known))
        logger.info(
            "data keys reloaded: service=%s keys=%s",
            self.service,
            ",".join(k.key_id for k in pipeline.data_keys),
            extra={"service": self.service},
        )

    # -- helpers --------------------------------------------------------------------

    def _make_report(self, status: Any, **extra: Any) -> AppliedReport:
        state = self._require_state()
        return AppliedReport.now(
            instance=self.instance_id,
            service=self.service,
            status=status,
            version=state.version,
            epoch=state.epoch,
            source=state.source,
            freshness=self._freshness,
            **extra,
        )

    def _log_fields(self) -> dict[str, Any]:
        state = self._state
        return {
            "service": self.service,
            "instance": self.instance_id,
            "version": None if state is None else state.version,
            "epoch": None if state is None else state.epoch,
            "source": None if state is None else state.source,
        }

    def _require_state(self) -> ConfigState[M]:
        if self._state is None:
            raise LibraryStateError("use the ConfigLibrary inside `async with` first")
        return self._state

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)


class _ConnectionClosed(Exception):
    """The broker closed the connection while a call was waiting for its answer."""


async def _unless_closed(client: aiomqtt.Client, operation: Awaitable[T]) -> T:
    """``await operation``; raise :class:`_ConnectionClosed` as soon as the broker closes
    the connection instead of answering.

    RabbitMQ answers a subscribe or publish the ACL forbids by closing the connection; the
    pending call would otherwise only fail at its timeout.
    """
    task: asyncio.Future[T] = asyncio.ensure_future(operation)
    closed: asyncio.Future[Any] = client._disconnected  # aiomqtt's "connection lost" future
    waiting: set[asyncio.Future[Any]] = {task, closed}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await task
    if not closed.cancelled():
        closed.exception()  # seen here: asyncio must not log it as never retrieved
    raise _ConnectionClosed


def _credentials_refused(exc: aiomqtt.MqttCodeError) -> bool:
    """A CONNACK refusing the user: bad user name or password (4/134), not authorised (5/135)."""
    code = exc.rc
    value = code.value if isinstance(code, ReasonCode) else code
    return value in (4, 5, 134, 135)


def _refused(code: int | ReasonCode) -> bool:
    """A SUBACK code meaning the subscription was refused (0x80 and up)."""
    return code.is_failure if isinstance(code, ReasonCode) else code >= 0x80


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of ``path``: changes when the file is replaced or rewritten."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
