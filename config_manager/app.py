"""``create_app(settings)``: the FastAPI application. Nothing is opened at import time.

The lifespan checks the start conditions, loads the keys, opens the database (one
aiosqlite connection) and starts the outbox publisher (which also follows applied
reports); all of it lives on ``app.state`` until shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from config_lib import (
    KeyFileError,
    TrustStore,
    load_master_key,
    load_or_create_master_key,
    load_or_create_signing_key,
    stop_tasks,
)

from .api import (
    configs,
    events,
    health,
    history,
    keys,
    presets,
    services,
    sync,
    tokens,
    whoami,
)
from .api.docs import install_docs
from .api.openapi import install_openapi
from .bootstrap import startup_problems
from .compat_check import compatibility_problem
from .dialects import PostgresUrl
from .events import EventHub
from .instances import InstanceTracker
from .keyring import (
    KeyRing,
    KeyWatcher,
    SigningState,
    load_signing_state,
    retired_master_files,
)
from .lease import PublisherLease
from .lockfile import database_lock, hold_lock
from .metrics import Metrics
from .middleware import BodyLimitMiddleware, RequestIdMiddleware, ServerTimingMiddleware
from .problems import install_problem_handlers
from .publisher import OutboxPublisher, PublisherLimits
from .ratelimit import RateLimits
from .registry import SchemaRegistry
from .settings import ManagerSettings
from .store import ConfigStore, StorageLimits, StoredVersion
from .writes import CompatibilityCheck, ConfigWriter

__all__ = ["StartupError", "create_app"]

_log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"


class StartupError(RuntimeError):
    """The manager refuses to start (missing keys, placeholder secrets...)."""


def _load_keys(settings: ManagerSettings) -> KeyRing:
    if settings.dev_mode:
        load_or_create_signing_key(settings.signing_key_file)
        master, _ = load_or_create_master_key(settings.master_key_file)
    else:
        master = load_master_key(settings.master_key_file)
    try:
        state = load_signing_state(
            settings.signing_key_file, settings.keyset_file, settings.root_public_key_file
        )
    except KeyFileError as exc:
        raise StartupError(str(exc)) from None
    signing = state.signing
    trust = (
        TrustStore.load(settings.trust_store_file)
        if settings.trust_store_file.exists()
        else TrustStore([signing.public_key])
    )
    if state.keyset is None and signing.key_id not in trust:
        raise StartupError(
            f"the signing key {signing.key_id} is not in the trust store "
            f"{settings.trust_store_file}: services would refuse every config"
        )
    retired = [load_master_key(path) for path in retired_master_files(settings.master_key_file)]
    return KeyRing(
        signing, state.trust(trust), master, keyset=state.keyset, retired_masters=retired
    )


def create_app(
    settings: ManagerSettings,
    *,
    registry: SchemaRegistry | None = None,
    compatibility: CompatibilityCheck | None = compatibility_problem,
) -> FastAPI:
    """Build the app.

    ``registry`` defaults to the ``config_manager.schemas`` entry points; ``compatibility``
    to the cross-service rules of :mod:`config_manager.compatibility`.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        problems = startup_problems(settings)
        if problems:
            raise StartupError("refusing to start:\n  " + "\n  ".join(problems))
        keys = _load_keys(settings)
        reg = registry if registry is not None else SchemaRegistry.from_entry_points()
        metrics: Metrics = app.state.metrics
        hub = EventHub(history=settings.events_history)
        tracker = InstanceTracker(on_report=hub.report_received)
        endpoint = settings.mqtt_endpoint()
        async with AsyncExitStack() as stack:
            # One manager per database: a second one would publish the same rows twice
            # (a SQLite file: this lock file; PostgreSQL: the store's advisory lock).
            if not isinstance(settings.database, PostgresUrl):
                stack.enter_context(
                    hold_lock(database_lock(settings.db_file), f"the database {settings.db_file}")
                )
            store = await stack.enter_async_context(
                ConfigStore(
                    settings.database,
                    metrics=metrics,
                    limits=StorageLimits(
                        retry_min_s=settings.storage_retry_min_s,
                        retry_max_s=settings.storage_retry_max_s,
                        min_free_bytes=settings.storage_min_free_bytes,
                    ),
                )
            )
            # The instance view as last saved: it does not wait for the broker to redeliver
            # retained reports to the wildcard subscription (not every broker does).
            tracker.load(await store.instances())
            tracker.load_pins(await store.instance_keys())
            lease = None
            if isinstance(settings.database, PostgresUrl):
                # Replicas: every manager on this database writes; one publishes.
                lease = PublisherLease(
                    settings.database,
                    f"{socket.gethostname()}:{os.getpid()}:{store.replica}",
                    settings.publisher_lease_s,
                )
            publisher = await stack.enter_async_context(
                OutboxPublisher(
                    lease=lease,
                    store=store,
                    endpoint=endpoint,
                    signing_key=keys.signing,
                    metrics=metrics,
                    tracker=tracker,
                    limits=PublisherLimits(
                        timeout_s=settings.mqtt_timeout_s,
                        reconnect_min_s=settings.reconnect_min_s,
                        reconnect_max_s=settings.reconnect_max_s,
                        batch=settings.outbox_batch,
                        freshness_interval_s=settings.freshness_interval_s,
                        freshness_expiry_s=settings.freshness_expiry_s,
                    ),
                    services=lambda: list(reg),
                    trust=keys.trust,
                    keyset=keys.keyset,
                )
            )

            def rotated(state: SigningState) -> None:
                keys.signing, keys.keyset = state.signing, state.keyset
                keys.trust = state.trust(keys.trust)
                publisher.rotate(state.signing, state.keyset, keys.trust)

            watcher = KeyWatcher(
                signing_file=settings.signing_key_file,
                keyset_file=settings.keyset_file,
                root_file=settings.root_public_key_file,
                on_change=rotated,
                interval_s=settings.keys_poll_s,
            )
            watching = asyncio.create_task(watcher.run(), name="config-manager-key-watcher")
            stack.push_async_callback(stop_tasks, [watching])
            app.state.store = store
            app.state.registry = reg
            app.state.keys = keys
            app.state.tracker = tracker
            app.state.publisher = publisher
            app.state.events = hub

            def notify(stored: Sequence[StoredVersion] = ()) -> None:
                publisher.notify(stored)
                hub.versions_stored(stored)

            app.state.writer = ConfigWriter(
                store=store,
                registry=reg,
                keys=keys,
                metrics=metrics,
                notify=notify,
                prepare=publisher.prepare,
                compatibility=compatibility,
            )
            # Closed first (LIFO): changes queued for a group commit commit before the
            # publisher and the store close.
            stack.push_async_callback(app.state.writer.aclose)
            # Schema evolution: today's models against every stored current config. One
            # that no longer passes stays in force (nothing is dropped); /sync, /readyz and
            # configctl list it, and the service's next write must fix it.
            for service, errors in (await app.state.writer.invalid_configs()).items():
                _log.warning(
                    "stored config of %s no longer passes its model: %s",
                    service,
                    "; ".join(
                        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                        for e in errors
                    ),
                )
            _log.info(
                "config manager ready: %d services, database %s, broker %s",
                len(reg),
                settings.database,
                endpoint,
            )
            yield

    app = FastAPI(
        title="Config manager",
        version="1",
        summary="Typed, versioned, signed configuration published over MQTT.",
        lifespan=lifespan,
        docs_url=None,  # served from local assets by install_docs: works offline
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.rate_limits = RateLimits(
        auth_failures=settings.rate_limit_auth_failures, writes=settings.rate_limit_writes
    )
    install_problem_handlers(app, storage_retry_after_s=math.ceil(settings.storage_retry_max_s))
    install_openapi(
        app,
        lambda: getattr(app.state, "registry", None) or registry or SchemaRegistry(),
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ServerTimingMiddleware)
    app.add_middleware(RequestIdMiddleware)
    for router in (
        health.router,
        services.router,
        configs.router,
        history.router,
        sync.router,
        presets.router,
        tokens.router,
        whoami.router,
        keys.router,
        events.router,
    ):
        app.include_router(router)
    install_docs(app)
    if (STATIC_DIR / "index.html").exists():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="editor")
    else:
        app.add_api_route("/", _editor_not_built, include_in_schema=False)
    return app


async def _editor_not_built() -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><title>signed-config</title><p>The web editor is not built: run "
        "<code>make editor</code> (npm ci and npm run build in <code>editor/</code>). "
        '<a href="docs">API docs</a></p>',
        status_code=503,
    )
