"""History and accounting: versions (paged), diffs, the audit log, signed export and import."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query

from config_lib import encrypt_secrets, mask_secrets

from ..history import EXPORT_FORMAT, sign_head, verify_export
from ..problems import Problem
from ..store import StoredVersion
from ..writes import ConfigWriter, WriteContext, etag_for
from .deps import AdminWrite, JsonBody, PublisherDep, SettingsDep, StoreDep, Viewer, WriterDep
from .openapi import api_router, problems
from .schemas import AuditPublic, DiffPublic, ImportPublic, VersionPublic

__all__ = ["router"]

router = api_router(prefix="/api/v1", tags=["history"])


def _version_public(v: StoredVersion) -> dict[str, Any]:
    return {
        "service": v.service,
        "version": v.version,
        "epoch": v.epoch,
        "created_at": v.created_at,
        "created_by": v.created_by,
        "change_id": v.change_id,
        "values": mask_secrets(v.values),
    }


@router.get(
    "/configs/{service}/versions", response_model=list[VersionPublic], responses=problems(404)
)
async def list_versions(
    service: str,
    _: Viewer,
    writer: WriterDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[
        int | None, Query(ge=1, description="Only versions below this one (next page).")
    ] = None,
) -> list[dict[str, Any]]:
    """Stored versions, newest first (secrets masked); page on with ``before=<last version>``."""
    writer.model(service)
    return [_version_public(v) for v in await store.history(service, limit, before)]


@router.get(
    "/configs/{service}/versions/{version}", response_model=VersionPublic, responses=problems(404)
)
async def get_version(service: str, version: int, _: Viewer, writer: WriterDep) -> dict[str, Any]:
    writer.model(service)
    stored = await writer.store.version(service, version)
    if stored is None:
        raise Problem(
            404,
            "No such version",
            f"{service} has no version {version}",
            kind="unknown-version",
            service=service,
            version=version,
        )
    return _version_public(stored)


async def _values_at(writer: ConfigWriter, service: str, version: int) -> dict[str, Any]:
    if version == 0:  # the model's defaults (nothing for a model with required fields)
        defaults = writer.registry.defaults(service)
        if defaults is None:
            return {}
        values: dict[str, Any] = encrypt_secrets(
            defaults, service=service, key=writer.keys.data_key(service)
        )
        return values
    stored = await writer.store.version(service, version)
    if stored is None:
        raise Problem(
            404,
            "No such version",
            f"{service} has no version {version}",
            kind="unknown-version",
            service=service,
            version=version,
        )
    return stored.values


@router.get("/configs/{service}/diff", response_model=DiffPublic, responses=problems(404))
async def diff_versions(
    service: str,
    _: Viewer,
    writer: WriterDep,
    from_: Annotated[int, Query(alias="from", ge=0, description="0: the model's defaults")],
    to: Annotated[int | None, Query(ge=0, description="default: the current version")] = None,
) -> dict[str, Any]:
    """RFC 6902 JSON Patch from version ``from`` to version ``to``; a changed secret is an
    operation with the mask as value and ``"secret": "changed"``, never its value."""
    writer.model(service)
    if to is None:
        stored = await writer.store.current(service)
        to = stored.version if stored is not None else 0
    old = await _values_at(writer, service, from_)
    new = await _values_at(writer, service, to)
    return {"service": service, "from": from_, "to": to, "patch": writer.diff(service, old, new)}


def _since(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise Problem(
            400, "Bad since", f"since={value!r} is not an ISO 8601 time", kind="bad-since"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@router.get("/audit", response_model=list[AuditPublic], responses=problems(400))
async def audit(
    principal: Viewer,
    store: StoreDep,
    service: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: Annotated[
        str | None,
        Query(
            description="ISO 8601 time, e.g. 2026-11-29T20:00:00Z",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The audit log, newest first: every change (accepted or refused, with the reason) and
    every administrative event, with actor, time, request id and the redacted diff."""
    return [
        {
            "id": r.id,
            "at": r.at,
            "actor": r.actor,
            "action": r.action,
            "outcome": r.outcome,
            "service": r.service,
            "version": r.version,
            "request_id": r.request_id,
            "reason": r.reason,
            "detail": r.detail,
        }
        for r in await store.audit(
            service=service,
            actor=actor,
            action=action,
            since=_since(since),
            limit=limit,
            services=sorted(principal.services) if principal.services is not None else None,
        )
    ]


@router.get("/export")
async def export(
    principal: Viewer,
    writer: WriterDep,
    store: StoreDep,
    history: Annotated[str, Query(pattern="^(full|current)$")] = "full",
) -> dict[str, Any]:
    """Every service's versions (``full``) or current versions (``current``) in chain order,
    secrets as ciphertext, with the chain head signed by the manager."""
    principal.require_unscoped("an export")
    rows, head_hash, count = await store.chain(current_only=history == "current")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    head = {
        "row_hash": head_hash,
        "count": count,
        "epoch": await store.epoch(),
        "exported_at": now,
        "history": history,
    }
    return {
        "format": EXPORT_FORMAT,
        "history": history,
        "exported_at": now,
        "epoch": head["epoch"],
        "versions": rows,
        "head": head,
        "signature": sign_head(head, writer.keys.signing),
    }


@router.post(
    "/import",
    response_model=ImportPublic,
    responses=problems(422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A document from GET /api/v1/export (signed head, hash chain).",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["format", "versions", "head", "signature"],
                        "properties": {
                            "format": {"const": EXPORT_FORMAT},
                            "history": {"enum": ["full", "current"]},
                            "versions": {"type": "array", "items": {"type": "object"}},
                            "head": {"type": "object"},
                            "signature": {
                                "type": "object",
                                "required": ["key_id", "value"],
                                "properties": {
                                    "key_id": {"type": "string"},
                                    "value": {"type": "string"},
                                },
                            },
                        },
                    }
                }
            },
        }
    },
)
async def import_export(
    request: AdminWrite,
    body: JsonBody,
    writer: WriterDep,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Make each service's newest exported version current again, all or nothing, in one
    transaction that bumps the epoch. The export must verify (signed head, hash chain)."""
    request.principal.require_unscoped("an import")
    report = verify_export(body, writer.keys.trust)
    if not report.ok:
        problem = Problem(
            422,
            "Export does not verify",
            "; ".join(report.problems[:5]),
            kind="invalid-export",
            problems=report.problems[:50],
        )
        await writer.refused(
            WriteContext(request.ctx.actor, request.ctx.request_id, None, "import"), problem, []
        )
        raise problem
    latest: dict[str, dict[str, Any]] = {}
    for row in body["versions"]:
        previous = latest.get(row["service"])
        if previous is None or (row["epoch"], row["version"]) >= (
            previous["epoch"],
            previous["version"],
        ):
            latest[row["service"]] = row
    unknown = sorted(s for s in latest if s not in writer.registry)
    if unknown:
        problem = Problem(
            422,
            "Export holds unknown services",
            f"no schema is registered for {', '.join(unknown)}",
            kind="import-unknown-services",
            services=unknown,
        )
        await writer.refused(
            WriteContext(request.ctx.actor, request.ctx.request_id, None, "import"), problem, []
        )
        raise problem
    ctx = WriteContext(
        request.ctx.actor,
        request.ctx.request_id,
        None,
        "import",
        {"export_head": report.head, "exported_at": body.get("exported_at")},
    )
    stored = await writer.import_documents({s: row["values"] for s, row in latest.items()}, ctx=ctx)
    ids = [s.outbox_id for s in stored if s.outbox_id is not None]
    published = bool(ids) and await publisher.wait_published(ids, settings.publish_wait_s)
    epoch = await writer.store.epoch()
    return {
        "epoch": epoch,
        "versions": [
            {
                "service": s.service,
                "version": s.version,
                "epoch": s.epoch,
                "etag": etag_for(s.epoch, s.version),
            }
            for s in stored
        ],
        "publication": "published" if published else "pending",
    }
