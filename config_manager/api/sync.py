"""``/api/v1/sync``: the fleet at a glance: per service the current version and what each
instance runs (in sync, behind, failed, rejected, offline)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from ..instances import InstanceReport
from ..problems import Problem
from ..writes import etag_for
from .deps import TrackerDep, Viewer, WriterDep
from .schemas import SyncPublic

__all__ = ["instance_state", "router"]

router = APIRouter(prefix="/api/v1", tags=["sync"])
STATES = ("in_sync", "behind", "failed", "rejected", "offline")


def instance_state(report: InstanceReport, epoch: int, version: int) -> str:
    """One instance's state against the service's current (epoch, version)."""
    if report.status == "offline":
        return "offline"
    if report.status in ("failed", "rejected"):
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
                }
            )
        services.append(
            {
                "service": service,
                "version": version,
                "epoch": current_epoch,
                "etag": etag_for(current_epoch, version),
                "config_valid": not errors,
                "config_errors": errors or [],
                "in_sync": all(i["state"] == "in_sync" for i in instances),
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
            "invalid_configs": invalid,
        },
    }
