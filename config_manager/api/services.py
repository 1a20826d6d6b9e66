"""``/api/v1/services``: registered services, their schemas, history and running instances."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request

from config_lib import mask_secrets

from ..instances import KeyApprovalError
from ..problems import Problem
from ..registry import secret_schema
from ..store import AuditEntry
from .deps import (
    Admin,
    RegistryDep,
    StoreDep,
    TrackerDep,
    Viewer,
    WriterDep,
    json_model,
    request_id,
)
from .openapi import api_router, problems
from .schemas import (
    InstanceKeyApprove,
    InstanceKeyPublic,
    InstancePublic,
    ServicePublic,
    VersionPublic,
)

__all__ = ["router"]

router = api_router(prefix="/api/v1/services", tags=["services"])


@router.get("", response_model=list[ServicePublic])
async def list_services(
    principal: Viewer, registry: RegistryDep, store: StoreDep, tracker: TrackerDep
) -> list[dict[str, Any]]:
    """Every registered service with its current version, the epoch and the last update."""
    stored = {s.service: s for s in await store.services()}
    epoch = await store.epoch()
    result = []
    for name in registry:
        if not principal.may(name):
            continue
        summary = stored.get(name)
        result.append(
            {
                "name": name,
                "version": summary.version if summary else 0,
                "epoch": epoch,
                "updated_at": summary.updated_at if summary else None,
                "instances": len(tracker.for_service(name)),
            }
        )
    return result


@router.get("/{service}/schema", responses=problems(404))
async def get_schema(service: str, _: Viewer, writer: WriterDep) -> dict[str, Any]:
    """The model's JSON Schema; secret fields carry ``"x-secret": true``."""
    return secret_schema(writer.model(service))


@router.get("/{service}/instances", response_model=list[InstancePublic], responses=problems(404))
async def list_instances(
    service: str, _: Viewer, writer: WriterDep, tracker: TrackerDep
) -> list[dict[str, Any]]:
    """What each instance last reported on ``config/applied/<service>/<instance>``."""
    current = await writer.current(service)
    return [
        {
            "instance": r.instance,
            "status": r.status,
            "version": r.version,
            "epoch": r.epoch,
            "reason": r.reason,
            "detail": r.detail,
            "time": r.time,
            "freshness": r.freshness,
            "received_at": r.received_at,
            "current": (r.epoch, r.version) == (current.epoch, current.version),
            "forged": r.forged,
            "forged_reason": r.forged_reason,
            "key_id": pin.key_id if (pin := tracker.pin(service, r.instance)) else None,
            "pending_key_id": tracker.pending_key_id(service, r.instance),
        }
        for r in tracker.for_service(service)
    ]


@router.post(
    "/{service}/instances/{instance}/key",
    response_model=InstanceKeyPublic,
    responses=problems(404, 409),
)
async def approve_instance_key(
    service: str,
    instance: str,
    admin: Admin,
    writer: WriterDep,
    store: StoreDep,
    tracker: TrackerDep,
    request: Request,
    body: Annotated[InstanceKeyApprove, Depends(json_model(InstanceKeyApprove))],
) -> dict[str, Any]:
    """Approve an instance's new report key (a re-key: new host, lost key file). Until
    then its reports signed with that key are shown as forged (``key_mismatch``); the
    body names the key id shown in ``pending_key_id``. Audited."""
    writer.model(service)  # 404 for an unknown service
    previous = tracker.pin(service, instance)
    try:
        pin = tracker.approve(service, instance, body.key_id, admin.name)
    except KeyApprovalError as exc:
        raise Problem(
            exc.status,
            exc.title,
            exc.detail,
            kind="unknown-instance" if exc.status == 404 else "no-such-key",
            service=service,
            instance=instance,
        ) from None
    await store.pin_instance_key(
        pin,
        AuditEntry(
            actor=admin.name,
            action="instance.key.approve",
            service=service,
            request_id=request_id(request),
            detail={
                "instance": instance,
                "key_id": pin.key_id,
                "previous_key_id": previous.key_id if previous else None,
            },
        ),
    )
    report = tracker.pinned(pin)
    return {
        "service": service,
        "instance": instance,
        "key_id": pin.key_id,
        "previous_key_id": previous.key_id if previous else None,
        "pinned_at": pin.pinned_at,
        "pinned_by": pin.pinned_by,
        "forged": bool(report and report.forged),
    }


@router.get("/{service}/versions", response_model=list[VersionPublic], responses=problems(404))
async def list_versions(
    service: str,
    _: Viewer,
    writer: WriterDep,
    store: StoreDep,
    limit: int = Query(50, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Stored versions, newest first (secrets masked)."""
    writer.model(service)
    return [
        {
            "service": v.service,
            "version": v.version,
            "epoch": v.epoch,
            "created_at": v.created_at,
            "created_by": v.created_by,
            "change_id": v.change_id,
            "values": mask_secrets(v.values),
        }
        for v in await store.history(service, limit)
    ]
