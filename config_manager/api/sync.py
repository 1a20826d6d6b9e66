"""``/api/v1/sync``: the fleet at a glance: per service the current version and what each
instance runs (in sync, behind, failed, rejected, offline) and its freshness state."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request

from ..instances import InstanceReport
from ..problems import Problem
from ..store import AuditEntry
from ..writes import etag_for
from .deps import Admin, PublisherDep, SettingsDep, TrackerDep, Viewer, WriterDep, request_id
from .openapi import api_router
from .schemas import SyncForcePublic, SyncPublic

__all__ = ["instance_state", "router"]

router = api_router(prefix="/api/v1", tags=["sync"])
STATES = ("in_sync", "behind", "failed", "rejected", "offline", "retired")


def instance_state(report: InstanceReport, epoch: int, version: int) -> str:
    """One instance's state against the service's current (epoch, version)."""
    if report.status == "offline":
        return "offline"
    if report.status in ("failed", "rejected", "retired"):
        return report.status
    if (report.epoch, report.version) == (epoch, version):
        return "in_sync"
    return "behind"


@router.get("/sync", response_model=SyncPublic)
async def sync(writer: WriterDep, tracker: TrackerDep, principal: Viewer) -> dict[str, Any]:
    """Per service: current version, whether its stored config still passes today's model,
    and each instance's state; plus a fleet summary."""
    epoch = await writer.store.epoch()
    summary = {state: 0 for state in STATES}
    services = []
    now = time.time()
    invalid = 0
    stale = 0
    forged = 0
    for service in writer.registry:
        if not principal.may(service):
            continue
        try:
            current = await writer.current(service)
            version, current_epoch = current.version, current.epoch
        except Problem:
            version, current_epoch = 0, epoch  # required fields, nothing stored yet
        errors = await writer.stored_errors(service)
        invalid += bool(errors)
        instances = []
        for report in tracker.for_service(service):
            state = instance_state(report, current_epoch, version)
            summary[state] += 1
            stale += report.freshness == "stale"
            forged += report.forged
            instances.append(
                {
                    "instance": report.instance,
                    "state": state,
                    "status": report.status,
                    "version": report.version,
                    "epoch": report.epoch,
                    "reason": report.reason,
                    "detail": report.detail,
                    "reported_at": report.time,
                    "age_s": round(max(0.0, now - report.received_at), 3),
                    "freshness": report.freshness,
                    "forged": report.forged,
                    "forged_reason": report.forged_reason,
                }
            )
        services.append(
            {
                "service": service,
                "version": version,
                "epoch": current_epoch,
                "etag": etag_for(current_epoch, version),
                "retired_at": writer.store.retired().get(service),
                "config_valid": not errors,
                "config_errors": errors or [],
                "in_sync": all(i["state"] in ("in_sync", "retired") for i in instances),
                "instances": instances,
            }
        )
    return {
        "epoch": epoch,
        "services": services,
        "summary": {
            "services": len(services),
            "instances": sum(summary.values()),
            **summary,
            "stale": stale,
            "forged": forged,
            "invalid_configs": invalid,
        },
    }


@router.post("/sync/force", response_model=SyncForcePublic)
async def sync_force(
    writer: WriterDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    admin: Admin,
    request: Request,
) -> dict[str, Any]:
    """Republish every service's current config (retained) and ask every instance to
    report again (``config/report/<service>``); audited."""
    admin.require_unscoped("a forced sync")
    services = list(writer.registry)
    done = await publisher.resync(services, max(settings.publish_wait_s, 0.1))
    await writer.store.add_audit(
        AuditEntry(
            actor=admin.name,
            action="sync.force",
            request_id=request_id(request),
            reason=None if done else "broker unreachable or slow: republished at reconnection",
            detail={"services": services},
        )
    )
    return {"services": services, "publication": "published" if done else "pending"}
