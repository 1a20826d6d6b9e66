"""The config in force and the all-or-nothing apply, with no IO.

:class:`ConfigState` takes raw bytes through the pure pipeline and decides: applied,
duplicate (ignored quietly), rejected (a reason code) or failed (a callback refused the
update; the previous config was restored). The MQTT loop, LKG writes and applied reports
live in :mod:`config_lib._client`, which acts on the returned :class:`Decision`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from pydantic import BaseModel

from ._change import ConfigChange, ConfigSource, changed_fields
from ._envelope import Envelope, Position
from ._exceptions import ConfigLibError, Duplicate, ServiceRetired, VoidEpoch
from ._metrics import ConfigMetrics
from ._pipeline import Accepted, ConfigPipeline

__all__ = [
    "ChangeCallback",
    "ConfigState",
    "Decision",
    "DecisionStatus",
    "SyncRunner",
    "is_async_callback",
]

M = TypeVar("M", bound=BaseModel)
logger = logging.getLogger("config_lib")

ChangeCallback: TypeAlias = Callable[[ConfigChange[M]], Awaitable[None] | None]
DecisionStatus = Literal["applied", "duplicate", "rejected", "failed", "retired"]
CALLBACK_FAILED = "callback_failed"


@dataclass(frozen=True, slots=True)
class Decision(Generic[M]):
    """What happened to one received message. ``detail`` never holds config values."""

    status: DecisionStatus
    reason: str | None = None
    detail: str | None = None
    accepted: Accepted[M] | None = None
    change: ConfigChange[M] | None = None


def _name(callback: object) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)


SyncRunner: TypeAlias = Callable[[Callable[[], object]], Awaitable[object]]
"""Runs a plain function somewhere (a thread) and returns its result when awaited."""


def is_async_callback(callback: object) -> bool:
    """True for ``async def`` functions and methods, and objects with an async ``__call__``."""
    if inspect.iscoroutinefunction(callback):
        return True
    call = getattr(callback, "__call__", None)  # noqa: B004 - an object's async __call__
    return call is not None and inspect.iscoroutinefunction(call)


async def _call(
    callback: ChangeCallback[M], change: ConfigChange[M], run_sync: SyncRunner | None
) -> None:
    """Run one callback: an async one on the event loop; a plain function through
    ``run_sync`` (the library's callback thread) when given, else inline. A plain function
    that returns an awaitable has it awaited on the loop."""
    if run_sync is None or is_async_callback(callback):
        result: object = callback(change)
    else:
        result = await run_sync(lambda: callback(change))
    if inspect.isawaitable(result):
        await result


class ConfigState(Generic[M]):
    """The config in force, its origin and position, the callbacks and the counters."""

    def __init__(
        self,
        pipeline: ConfigPipeline[M],
        *,
        current: M | None,
        source: ConfigSource,
        position: Position | None = None,
        metrics: ConfigMetrics | None = None,
        run_sync: SyncRunner | None = None,
    ) -> None:
        self.pipeline = pipeline
        # Where plain-function callbacks run (None: inline, on the caller's loop).
        self.run_sync = run_sync
        self.current = current
        self.source: ConfigSource = source
        self.position = position
        self.retired_at: Position | None = None  # the tombstone's position, once retired
        # The keyset's floor reset: positions at epochs >= this are void (never applied,
        # and no longer a replay floor).
        self.void_from: int | None = None
        self.metrics = metrics or ConfigMetrics()
        # A tuple replaced on every change: registering from another thread (the threaded
        # adapter) never races with an apply iterating over it.
        self._callbacks: tuple[ChangeCallback[M], ...] = ()
        self._values: Mapping[str, Any] | None = None
        self._values_of: M | None = None

    @property
    def version(self) -> int | None:
        return None if self.position is None else self.position[1]

    @property
    def epoch(self) -> int | None:
        return None if self.position is None else self.position[0]

    def voided(self, epoch: int) -> bool:
        return self.void_from is not None and epoch >= self.void_from

    def on_change(self, callback: ChangeCallback[M]) -> Callable[[], None]:
        """Register ``callback``; returns the function that unregisters it."""
        self._callbacks = (*self._callbacks, callback)
        return lambda: self.remove(callback)

    def remove(self, callback: ChangeCallback[M]) -> None:
        """Unregister ``callback`` (every registration of it); unknown callbacks are ignored."""
        self._callbacks = tuple(cb for cb in self._callbacks if cb is not callback)

    async def offer(
        self, raw: bytes, *, check: Callable[[Envelope], None] | None = None
    ) -> Decision[M]:
        """Run ``raw`` through the pipeline and, if it passes, apply it all-or-nothing.

        ``check`` (the freshness rules) may refuse a verified envelope by raising a
        :class:`~config_lib.ConfigLibError` before anything is applied.
        """
        screened = self.screen(raw, check=check)
        if isinstance(screened, Decision):
            return screened
        return await self.apply(screened)

    def screen(
        self,
        raw: bytes,
        *,
        check: Callable[[Envelope], None] | None = None,
        after: Position | None = None,
    ) -> Accepted[M] | Decision[M]:
        """Count ``raw`` as received and run it through the pipeline (no callback, no
        change): the accepted config, or the decision that refuses it.

        The replay floor is the position in force (or the tombstone's); ``after`` raises
        it (an envelope already waiting to be applied).
        """
        self.metrics.received += 1
        try:
            last = self.floor(after)
            accepted = self.pipeline.accept(raw, last=last)
            if self.voided(accepted.envelope.epoch):
                raise VoidEpoch(
                    f"epoch {accepted.envelope.epoch} is void (the keyset's floor reset voids "
                    f"epochs from {self.void_from})"
                )
            if check is not None:
                check(accepted.envelope)
        except Duplicate as exc:
            self.metrics.duplicate += 1
            return Decision("duplicate", exc.reason, str(exc))
        except ServiceRetired as exc:
            # The last config stays in force; older envelopes are refused from now on.
            self.retired_at = exc.position
            return Decision("retired", exc.reason, str(exc))
        except ConfigLibError as exc:
            self.metrics.rejected[exc.reason] += 1
            return Decision("rejected", exc.reason, str(exc))
        return accepted

    def floor(self, after: Position | None = None) -> Position | None:
        """The highest of the position in force, the tombstone's and ``after``: only a newer
        envelope may be applied."""
        candidates = [p for p in (self.position, self.retired_at, after) if p is not None]
        # A void position (the keyset's floor reset) orders nothing.
        candidates = [p for p in candidates if not self.voided(p[0])]
        return max(candidates) if candidates else None

    async def apply(self, accepted: Accepted[M]) -> Decision[M]:
        """Call every callback in registration order; on a failure restore the previous one.

        Restoring calls each callback that was called (the failing one included, since it
        may have applied part of the update) again, in reverse order, with ``old`` and
        ``new`` swapped and ``restore=True``. The previous config stays in force.
        """
        old, new = self.current, accepted.config
        epoch, version = accepted.position
        if old is None:  # first config of a service that had none: nothing to change from
            self._commit(accepted)
            return Decision("applied", accepted=accepted)
        old_values = self._values if self._values_of is old else None
        change = ConfigChange(
            old=old,
            new=new,
            changed=changed_fields(old, new, old_values=old_values, new_values=accepted.values),
            version=version,
            epoch=epoch,
            source="broker",
        )
        called: list[ChangeCallback[M]] = []
        for callback in self._callbacks:
            called.append(callback)
            try:
                await _call(callback, change, self.run_sync)
            # A user callback boundary: whatever a service's callback raises must not stop
            # the subscription or leave a half-applied config, so every Exception is caught,
            # logged (type only: its message may hold values) and the update is rolled back.
            except Exception as exc:
                await self._restore(called, change)
                self.metrics.failed += 1
                code = getattr(exc, "reason", None)
                if isinstance(code, str) and code:
                    # A deliberate, operator-facing failure: its code and message are meant
                    # to be reported (see _report.py).
                    reason, detail = code, f"callback {_name(callback)}: {exc}"
                else:
                    reason = CALLBACK_FAILED
                    detail = f"callback {_name(callback)} raised {type(exc).__name__}"
                logger.debug("config callback traceback", exc_info=exc)
                return Decision("failed", reason, detail, accepted, change)
        self._commit(accepted)
        return Decision("applied", accepted=accepted, change=change)

    def _commit(self, accepted: Accepted[M]) -> None:
        # The dump of the config in force, if known: the next diff needs only the new one.
        self._values, self._values_of = accepted.values, accepted.config
        self.current = accepted.config
        self.position = accepted.position
        self.source = "broker"
        self.metrics.applied += 1

    async def _restore(self, called: list[ChangeCallback[M]], change: ConfigChange[M]) -> None:
        back = ConfigChange(
            old=change.new,
            new=change.old,
            changed=change.changed,
            version=self.version,
            epoch=self.epoch,
            source=self.source,
            restore=True,
        )
        for callback in reversed(called):
            try:
                await _call(callback, back, self.run_sync)
            # Same user callback boundary as in apply(): keep restoring the others.
            except Exception as exc:
                logger.error(
                    "config callback raised while restoring the previous config: "
                    "callback=%s error=%s",
                    _name(callback),
                    type(exc).__name__,
                    extra={"callback": _name(callback), "error": type(exc).__name__},
                )
