"""``/healthz`` (alive), ``/readyz`` (database, broker, outbox), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..metrics import Metrics
from .deps import PublisherDep, StoreDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(store: StoreDep, publisher: PublisherDep) -> JSONResponse:
    """Ready when the database is open and the broker connected; says what is pending."""
    depth = await store.outbox_depth() if store.is_open else None
    failure = publisher.failure
    ready = store.is_open and publisher.connected and failure is None
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "database": "open" if store.is_open else "closed",
        "schema_version": store.schema_version,
        "broker": "connected" if publisher.connected else "disconnected",
        "broker_error": publisher.last_error,
        "publisher_failure": failure,
        "outbox_depth": depth,
        "publication": "pending" if depth else "up to date",
        "epoch": await store.epoch() if store.is_open else None,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(request: Request, store: StoreDep) -> Response:
    m: Metrics = request.app.state.metrics
    m.outbox_depth.set(await store.outbox_depth())
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
