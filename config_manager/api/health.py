"""``/healthz`` (alive), ``/readyz`` (database, broker, outbox), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import generate_latest

from ..metrics import Metrics
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
async def metrics(request: Request, store: StoreDep) -> Response:
    m: Metrics = request.app.state.metrics
    m.outbox_depth.set(await store.outbox_depth())
    return Response(generate_latest(m.registry), media_type=PROMETHEUS_TEXT)
