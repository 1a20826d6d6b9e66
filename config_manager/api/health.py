"""``/healthz`` (alive), ``/readyz`` (database, broker, outbox), ``/metrics`` (Prometheus)."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import generate_latest

from ..metrics import Metrics
from ..store import StorageError
from .deps import PublisherDep, StoreDep
from .openapi import api_router
from .schemas import ReadinessPublic

__all__ = ["router"]

router = api_router(tags=["health"])
# The Prometheus text format 0.0.4 (what ``generate_latest`` writes).
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadinessPublic,
    responses={503: {"model": ReadinessPublic, "description": "Not ready (same body)."}},
)
async def readyz(store: StoreDep, publisher: PublisherDep, request: Request) -> JSONResponse:
    """Ready when the database is open and can store changes and the broker is connected;
    says what is pending, and in ``detail`` why it is not ready."""
    depth: int | None = None
    storage = "database closed"
    if store.is_open:
        with contextlib.suppress(StorageError):  # shown by storage_problem() below
            depth = await store.outbox_depth() - publisher.acknowledged_unmarked
        storage = store.storage_problem() or ""
    failure = publisher.failure
    reasons = [
        f"storage: {storage}" if storage else "",
        ""
        if publisher.connected or publisher.standby
        else f"broker: {publisher.last_error or 'not connected'}",
        f"publisher stopped: {failure}" if failure else "",
    ]
    ready = not any(reasons)
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "detail": "; ".join(r for r in reasons if r) or None,
        "database": "open" if store.is_open else "closed",
        "storage": "writable" if not storage else "not writable",
        "storage_error": storage or None,
        "schema_version": store.schema_version,
        "broker": "connected" if publisher.connected else "disconnected",
        "broker_error": publisher.last_error,
        # PostgreSQL replicas: 'standby' while another replica holds the publisher lease
        # (this one accepts reads and writes; the other publishes them).
        "publisher": "standby" if publisher.standby else "publishing",
        "publisher_failure": failure,
        "outbox_depth": depth,
        "publication": "unknown" if depth is None else "pending" if depth else "up to date",
        "epoch": await store.epoch() if store.is_open else None,
        # Stored configs that no longer pass today's models (schema evolution): the service
        # keeps running them; its next write must fix these fields.
        "invalid_configs": await _invalid_configs(request),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def _invalid_configs(request: Request) -> dict[str, list[Any]]:
    writer = getattr(request.app.state, "writer", None)
    if writer is None or not writer.store.is_open:
        return {}
    with contextlib.suppress(StorageError):
        found: dict[str, list[Any]] = await writer.invalid_configs()
        return found
    return {}


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus metrics (text exposition format 0.0.4).",
            "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request, store: StoreDep, publisher: PublisherDep) -> Response:
    m: Metrics = request.app.state.metrics
    m.outbox_depth.set(await store.outbox_depth() - publisher.acknowledged_unmarked)
    return Response(generate_latest(m.registry), media_type=PROMETHEUS_TEXT)
