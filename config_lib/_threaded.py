"""For plain threaded code: the same ConfigLibrary, run on an event loop in a daemon thread.

::

    handle = initialize_and_subscribe("stt", SttConfig, mqtt_url="mqtt://127.0.0.1:1883")
    handle.register_callback(lambda change: print(change.new.beam_size))
    beam = handle.get_config().beam_size
    handle.sync_module_constants(my_module)   # keeps my_module.BEAM_SIZE etc. current
    handle.close()

Plain callbacks run on the library's callback thread (not the caller's), one at a time,
in registration order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType, TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from pydantic import BaseModel, SecretStr

from ._change import ConfigChange, ConfigSource
from ._client import ConfigLibrary
from ._exceptions import LibraryStateError
from ._keys import DataKey, TrustStore
from ._metrics import ConfigMetrics
from ._mqtt import MqttEndpoint
from ._settings import LibrarySettings
from ._state import ChangeCallback

__all__ = ["ThreadedConfig", "initialize_and_subscribe", "sync_module_constants"]

M = TypeVar("M", bound=BaseModel)
logger = logging.getLogger("config_lib")


class _ConfigSourceLike(Protocol[M]):
    @property
    def current(self) -> M: ...

    def on_change(self, callback: ChangeCallback[M]) -> Callable[[], None]: ...


class ThreadedConfig(Generic[M]):
    """A running ConfigLibrary on its own thread; every method is safe from any thread."""

    def __init__(self, factory: Callable[[], ConfigLibrary[M]], *, start_timeout: float) -> None:
        self._factory = factory
        self._start_timeout = start_timeout
        self._ready = threading.Event()
        self._cfg: ConfigLibrary[M] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, name="config_lib", daemon=True)

    def start(self) -> Self:
        """Start the thread and wait until the first config is in force."""
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise TimeoutError(f"config_lib did not start within {self._start_timeout:.1f}s")
        if self._error is not None:
            raise self._error
        return self

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        # The thread's top level: whatever ended the loop is handed to the caller of
        # start() if it happened during startup, and logged otherwise; never lost.
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = exc
            else:
                logger.error("config_lib thread stopped: %r", exc)
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self._factory() as cfg:
            self._cfg = cfg
            self._ready.set()
            await self._stop.wait()

    def _lib(self) -> ConfigLibrary[M]:
        if self._cfg is None:
            raise LibraryStateError("the threaded config is not running; call start() first")
        return self._cfg

    # -- reading --------------------------------------------------------------------

    def get_config(self) -> M:
        """The validated config in force (an immutable snapshot if the model is frozen)."""
        return self._lib().current

    @property
    def current(self) -> M:
        return self._lib().current

    @property
    def version(self) -> int | None:
        return self._lib().version

    @property
    def source(self) -> ConfigSource:
        return self._lib().source

    @property
    def metrics(self) -> ConfigMetrics:
        return self._lib().metrics

    # -- changes --------------------------------------------------------------------

    def register_callback(self, callback: Callable[[ConfigChange[M]], None]) -> Callable[[], None]:
        """Call ``callback(change)`` on the library's callback thread after each applied
        update."""
        return self._lib().on_change(callback)

    def on_change(self, callback: ChangeCallback[M]) -> Callable[[], None]:
        return self._lib().on_change(callback)

    def sync_module_constants(
        self,
        module: ModuleType,
        mapping: Mapping[str, str] | None = None,
        *,
        reveal_secrets: bool = False,
    ) -> Callable[[], None]:
        """Keep ``module``'s UPPER_CASE constants equal to config fields; see the function."""
        return sync_module_constants(self, module, mapping, reveal_secrets=reveal_secrets)

    def wait_for_version(
        self, version: int, *, epoch: int | None = None, timeout: float = 10.0
    ) -> M:
        """Block until ``version`` or newer is in force; raises TimeoutError."""
        loop = self._loop
        if loop is None:
            raise LibraryStateError("the threaded config is not running")
        future = asyncio.run_coroutine_threadsafe(
            self._lib().wait_for_version(version, epoch=epoch, timeout=timeout), loop
        )
        return future.result(timeout + 1.0)

    # -- lifecycle ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the library's thread is alive."""
        return self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the library (it reports ``offline``) and join its thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            # The loop may close between the check and the call: nothing left to stop then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def initialize_and_subscribe(
    service_name: str,
    config_model: type[M],
    *,
    mqtt_url: str | None = None,
    settings: LibrarySettings | None = None,
    trust: TrustStore | None = None,
    data_keys: Iterable[DataKey] | None = None,
    endpoint: MqttEndpoint | None = None,
    instance_id: str | None = None,
    start_timeout: float | None = None,
) -> ThreadedConfig[M]:
    """Start a :class:`ConfigLibrary` for ``service_name`` on a daemon thread; returns its handle.

    Blocks until the first config is in force (at most about ``initial_wait`` seconds when
    the broker is unreachable, plus ``fresh_wait`` without a signed config).
    ``mqtt_url`` overrides ``settings.mqtt_url``.
    """
    base = settings if settings is not None else LibrarySettings()
    if mqtt_url is not None:
        base = LibrarySettings.model_validate({**base.model_dump(), "mqtt_url": mqtt_url})
    keys = list(data_keys) if data_keys is not None else None

    def factory() -> ConfigLibrary[M]:
        return ConfigLibrary(
            service=service_name,
            model=config_model,
            settings=base,
            trust=trust,
            data_keys=keys,
            endpoint=endpoint,
            instance_id=instance_id,
        )

    timeout = start_timeout or base.initial_wait + base.fresh_wait + base.connect_timeout + 5.0
    return ThreadedConfig(factory, start_timeout=timeout).start()


def _auto_mapping(module: ModuleType, config: BaseModel) -> dict[str, str]:
    """UPPER_CASE module attributes named like a field path: VAD_THRESHOLD -> vad.threshold."""
    mapping: dict[str, str] = {}

    def walk(model: BaseModel, prefix: str, path: str) -> None:
        for name in type(model).model_fields:
            const = f"{prefix}{name}".upper()
            dotted = f"{path}{name}"
            value = getattr(model, name)
            if hasattr(module, const):
                mapping[const] = dotted
            elif isinstance(value, BaseModel):
                walk(value, f"{const}_", f"{dotted}.")

    walk(config, "", "")
    return mapping


def _resolve(config: BaseModel, dotted: str, reveal_secrets: bool) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    if reveal_secrets and isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


def sync_module_constants(
    source: _ConfigSourceLike[M],
    module: ModuleType,
    mapping: Mapping[str, str] | None = None,
    *,
    reveal_secrets: bool = False,
) -> Callable[[], None]:
    """Set ``module``'s constants from the config now and after every change.

    ``mapping`` maps constant names to dotted field paths (``{"VAD_T": "vad.threshold"}``);
    by default every UPPER_CASE attribute named after a field (``BEAM_SIZE`` ->
    ``beam_size``, ``VAD_THRESHOLD`` -> ``vad.threshold``) is kept in sync. Secret fields
    are set as ``SecretStr`` unless ``reveal_secrets``. For gradual migration of code that
    reads module constants; each constant is replaced on its own (readers on other threads
    may briefly see a mix of old and new values). Returns the function that stops syncing.
    """
    current = source.current
    pairs = dict(mapping) if mapping is not None else _auto_mapping(module, current)
    for dotted in pairs.values():
        _resolve(current, dotted, reveal_secrets)  # fail now on a wrong path, not later

    def apply(config: BaseModel) -> None:
        for const, dotted in pairs.items():
            setattr(module, const, _resolve(config, dotted, reveal_secrets))

    apply(current)
    return source.on_change(lambda change: apply(change.new))
