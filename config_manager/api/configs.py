"""``/api/v1/configs``: read all or one, PUT, PATCH (merge), dry-run validate, roll back."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from config_lib import MAX_POSITION, mask_secrets

from ..problems import Problem
from ..publisher import OutboxPublisher
from ..settings import ManagerSettings
from ..store import AuditEntry
from ..writes import ConfigWriter, CurrentConfig, WriteOutcome, etag_for, parse_if_match
from .deps import (
    Admin,
    Editor,
    EditorWrite,
    IfMatch,
    IfMatchOptional,
    JsonBody,
    PublisherDep,
    SettingsDep,
    Viewer,
    WriterDep,
    WriteRequest,
    json_model,
    request_id,
)
from .lean import LeanRoute
from .openapi import DOCUMENT, MERGE_PATCH, api_router, config_body, problems
from .schemas import AllConfigsPublic, ConfigPublic, RetiredPublic, ValidationPublic, WritePublic

__all__ = ["router"]

router = api_router(prefix="/api/v1/configs", tags=["configs"])
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Awaitable[dict[str, Any]]])


def _public(current: CurrentConfig) -> dict[str, Any]:
    return {
        "service": current.service,
        "version": current.version,
        "epoch": current.epoch,
        "etag": etag_for(current.epoch, current.version),
        "values": current.masked,
        "updated_at": current.updated_at,
        "updated_by": current.updated_by,
    }


@router.get("", response_model=AllConfigsPublic)
async def get_all_configs(principal: Viewer, writer: WriterDep) -> dict[str, Any]:
    """Every registered service's current config in one document (secrets masked); a token
    limited to some services sees those."""
    configs: dict[str, Any] = {}
    for service in writer.registry:
        if not principal.may(service):
            continue
        try:
            configs[service] = _public(await writer.current(service))
        except Problem:
            continue  # required fields and nothing stored yet: no config to show
    return {"epoch": await writer.store.epoch(), "configs": configs}


@router.get("/{service}", response_model=ConfigPublic, responses=problems(404))
async def get_config(
    service: str, _: Viewer, writer: WriterDep, response: Response
) -> dict[str, Any]:
    current = await writer.current(service)
    response.headers["ETag"] = etag_for(current.epoch, current.version)
    return _public(current)


async def _replayed(
    request: WriteRequest, writer: ConfigWriter, response: Response
) -> dict[str, Any]:
    """The first outcome of a write whose Idempotency-Key was seen (same body)."""
    assert request.replay is not None
    [[service, version]] = request.replay["versions"]
    stored = await writer.store.version(service, version)
    if stored is None:  # version 0: the first write found nothing to change
        current = await writer.current(service, for_write=True)
    else:
        current = CurrentConfig(
            service,
            stored.version,
            await writer.store.epoch(),
            stored.values,
            stored.created_at,
            stored.created_by,
        )
    changed = request.replay.get("change_id") is not None
    published = changed and await writer.store.is_published(service, version)
    response.headers["ETag"] = etag_for(current.epoch, current.version)
    response.headers["Idempotent-Replayed"] = "true"
    response.headers["Config-Changed"] = "true" if changed else "false"
    return {
        **_public(current),
        "changed": changed,
        "publication": ("published" if published else "pending") if changed else "unchanged",
    }


async def _answer(
    outcome: WriteOutcome,
    publisher: OutboxPublisher,
    settings: ManagerSettings,
    response: Response,
) -> dict[str, Any]:
    published = False
    timings = dict(outcome.timings)
    if outcome.outbox_id is not None and settings.publish_wait_s > 0:
        waited = time.perf_counter()
        published = await publisher.wait_published([outcome.outbox_id], settings.publish_wait_s)
        timings["publish"] = time.perf_counter() - waited
    current = outcome.current
    response.headers["ETag"] = etag_for(current.epoch, current.version)
    response.headers["Config-Changed"] = "true" if outcome.changed else "false"
    # W3C Server-Timing: where the time of this write went (lock wait, validation and
    # encryption, the durable commit, the wait for the broker's PUBACK), in ms.
    response.headers["Server-Timing"] = ", ".join(
        f"{name};dur={seconds * 1000:.3f}" for name, seconds in timings.items()
    )
    publication = "unchanged" if not outcome.changed else "published" if published else "pending"
    return {**_public(current), "changed": outcome.changed, "publication": publication}


async def _write(
    service: str,
    if_match: str,
    writer: ConfigWriter,
    publisher: OutboxPublisher,
    settings: ManagerSettings,
    request: WriteRequest,
    response: Response,
    **body: Any,
) -> dict[str, Any]:
    if request.replay is not None:
        return await _replayed(request, writer, response)
    expected = parse_if_match(if_match, await writer.store.epoch())
    outcome = await writer.write(
        service, expected_version=expected, actor=request.ctx.actor, ctx=request.ctx, **body
    )
    return await _answer(outcome, publisher, settings, response)


def _write_route(method: str, media: str) -> Callable[[_Endpoint], _Endpoint]:
    """PUT and PATCH: served by :class:`LeanRoute` (the write path's hot routes)."""

    def register(endpoint: _Endpoint) -> _Endpoint:
        router.add_api_route(
            "/{service}",
            endpoint,
            methods=[method],
            route_class_override=LeanRoute,
            response_model=WritePublic,
            responses=problems(404, 409, 422),
            openapi_extra=config_body(media),
        )
        return endpoint

    return register


@_write_route("PUT", DOCUMENT)
async def put_config(
    service: str,
    request: EditorWrite,
    body: JsonBody,
    if_match: IfMatch,
    writer: WriterDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    response: Response,
) -> dict[str, Any]:
    return await _write(
        service, if_match, writer, publisher, settings, request, response, document=body
    )


@_write_route("PATCH", MERGE_PATCH)
async def patch_config(
    service: str,
    request: EditorWrite,
    body: JsonBody,
    if_match: IfMatch,
    writer: WriterDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    response: Response,
) -> dict[str, Any]:
    return await _write(
        service, if_match, writer, publisher, settings, request, response, patch=body
    )


@router.post(
    "/{service}/validate",
    response_model=ValidationPublic,
    responses=problems(404, 409, 422),
    openapi_extra=config_body(DOCUMENT),
)
async def validate_config(
    service: str,
    principal: Editor,
    body: JsonBody,
    if_match: IfMatchOptional,
    writer: WriterDep,
) -> dict[str, Any]:
    """Dry run of a PUT: validates (and checks If-Match when given); stores nothing."""
    current = await writer.current(service, for_write=True)
    expected = current.version if if_match is None else parse_if_match(if_match, current.epoch)
    outcome = await writer.write(
        service, expected_version=expected, document=body, actor=principal.name, dry_run=True
    )
    values = mask_secrets(outcome.change.values)
    return {
        "service": service,
        "based_on_version": outcome.current.version,
        "would_be_version": outcome.current.version + 1,
        "values": values,
    }


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Versions never exceed the protocol's bound (2^48-1): a larger one is a 422 that says
    # so, and the OpenAPI document promises no more (a fuzzer's positive case stays valid).
    to_version: int = Field(
        ge=1, le=MAX_POSITION, description="The version whose document becomes current again."
    )


@router.post("/{service}/rollback", response_model=WritePublic, responses=problems(404, 409, 422))
async def rollback_config(
    service: str,
    request: EditorWrite,
    wanted: Annotated[RollbackRequest, Depends(json_model(RollbackRequest))],
    if_match: IfMatch,
    writer: WriterDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    response: Response,
) -> dict[str, Any]:
    """A new version whose document equals ``to_version``'s, checked against today's model and
    the cross-service rules (422 ``rollback-invalid`` naming the fields when it fails)."""
    if request.replay is not None:
        return await _replayed(request, writer, response)
    expected = parse_if_match(if_match, await writer.store.epoch())
    outcome = await writer.rollback(
        service, to_version=wanted.to_version, expected_version=expected, ctx=request.ctx
    )
    return await _answer(outcome, publisher, settings, response)


@router.delete("/{service}", response_model=RetiredPublic, responses=problems(404, 409))
async def retire_service(
    service: str,
    admin: Admin,
    writer: WriterDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    request: Request,
) -> dict[str, Any]:
    """Retire a service: its retained message becomes a signed tombstone (instances keep
    their last config and report ``retired``), the manager stops republishing its config,
    and writes to it are refused (409). Its history stays. Works for a service whose model
    is no longer registered too."""
    store = writer.store
    stored = await store.current(service)
    if stored is None:
        raise Problem(
            404,
            "Nothing to retire",
            f"no config of {service!r} was ever stored",
            kind="unknown-service",
            service=service,
        )
    if service in store.retired():
        raise Problem(
            409,
            "Service retired",
            f"{service} was already retired at {store.retired()[service]}",
            kind="service-retired",
            service=service,
        )
    async with writer.exclusive():  # no write of this service is half-way (nor queued)
        at = await store.retire(
            service,
            audit=AuditEntry(
                actor=admin.name,
                action="retire",
                service=service,
                version=stored.version,
                request_id=request_id(request),
                detail={"tombstone_version": stored.version + 1},
            ),
        )
    published = await publisher.resync([], max(settings.publish_wait_s, 0.1))
    return {
        "service": service,
        "retired_at": at,
        "last_version": stored.version,
        "tombstone_version": stored.version + 1,
        "publication": "published" if published else "pending",
    }
