"""``/api/v1/configs/{service}``: read, replace (PUT), merge (PATCH), dry-run validate."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Response

from config_lib import mask_secrets

from ..publisher import OutboxPublisher
from ..settings import ManagerSettings
from ..writes import ConfigWriter, CurrentConfig, etag_for, parse_if_match
from .deps import (
    Editor,
    IdempotencyKey,
    IfMatch,
    IfMatchOptional,
    JsonBody,
    PublisherDep,
    SettingsDep,
    Viewer,
    WriterDep,
)
from .openapi import DOCUMENT, MERGE_PATCH, api_router, config_body, problems
from .schemas import ConfigPublic, ValidationPublic, WritePublic

__all__ = ["router"]

router = api_router(prefix="/api/v1/configs", tags=["configs"])


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


@router.get("/{service}", response_model=ConfigPublic, responses=problems(404))
async def get_config(
    service: str, _: Viewer, writer: WriterDep, response: Response
) -> dict[str, Any]:
    current = await writer.current(service)
    response.headers["ETag"] = etag_for(current.epoch, current.version)
    return _public(current)


async def _write(
    service: str,
    if_match: str,
    writer: ConfigWriter,
    publisher: OutboxPublisher,
    settings: ManagerSettings,
    actor: str,
    response: Response,
    **body: Any,
) -> dict[str, Any]:
    expected = parse_if_match(if_match, await writer.store.epoch())
    outcome = await writer.write(service, expected_version=expected, actor=actor, **body)
    published = False
    timings = dict(outcome.timings)
    if outcome.outbox_id is not None and settings.publish_wait_s > 0:
        waited = time.perf_counter()
        published = await publisher.wait_published([outcome.outbox_id], settings.publish_wait_s)
        timings["publish"] = time.perf_counter() - waited
    current = outcome.current
    response.headers["ETag"] = etag_for(current.epoch, current.version)
    # W3C Server-Timing: where the time of this write went (lock wait, validation and
    # encryption, the durable commit, the wait for the broker's PUBACK), in ms.
    response.headers["Server-Timing"] = ", ".join(
        f"{name};dur={seconds * 1000:.3f}" for name, seconds in timings.items()
    )
    return {**_public(current), "publication": "published" if published else "pending"}


@router.put(
    "/{service}",
    response_model=WritePublic,
    responses=problems(404, 422),
    openapi_extra=config_body(DOCUMENT),
)
async def put_config(
    service: str,
    principal: Editor,
    body: JsonBody,
    if_match: IfMatch,
    _key: IdempotencyKey,
    writer: WriterDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    response: Response,
) -> dict[str, Any]:
    return await _write(
        service, if_match, writer, publisher, settings, principal.name, response, document=body
    )


@router.patch(
    "/{service}",
    response_model=WritePublic,
    responses=problems(404, 422),
    openapi_extra=config_body(MERGE_PATCH),
)
async def patch_config(
    service: str,
    principal: Editor,
    body: JsonBody,
    if_match: IfMatch,
    _key: IdempotencyKey,
    writer: WriterDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    response: Response,
) -> dict[str, Any]:
    return await _write(
        service, if_match, writer, publisher, settings, principal.name, response, patch=body
    )


@router.post(
    "/{service}/validate",
    response_model=ValidationPublic,
    responses=problems(404, 422),
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
