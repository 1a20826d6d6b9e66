"""``/api/v1/presets`` and ``/api/v1/compatibility``."""

from __future__ import annotations

from typing import Any

from ..compat_check import violation_errors
from ..compatibility import check_compatibility
from ..presets import PRESETS, Preset, get_preset, preset_names
from ..problems import Problem
from ..writes import ConfigWriter, WriteContext, etag_for
from .deps import EditorAction, Principal, PublisherDep, SettingsDep, Viewer, WriterDep
from .openapi import api_router, problems
from .schemas import (
    CompatibilityPublic,
    PresetAppliedPublic,
    PresetPreviewPublic,
    PresetPublic,
)

__all__ = ["router"]

router = api_router(prefix="/api/v1", tags=["presets"])


@router.get("/presets", response_model=list[PresetPublic])
async def list_presets(_: Viewer) -> list[dict[str, Any]]:
    """Named changes; each is one JSON Merge Patch per service it touches."""
    return [PRESETS[name].to_dict() for name in preset_names()]


def _checked_preset(name: str, principal: Principal, writer: ConfigWriter) -> Preset:
    """The preset, if the token may change all its services and all are registered."""
    try:
        preset = get_preset(name)
    except KeyError as exc:
        raise Problem(404, "Unknown preset", str(exc.args[0]), kind="unknown-preset") from None
    outside = [s for s in preset.services if not principal.may(s)]
    if outside:
        raise Problem(
            403,
            "Forbidden",
            f"preset {name!r} changes {', '.join(outside)}, outside token "
            f"{principal.name!r}'s services",
            kind="out-of-scope",
        )
    missing = [s for s in preset.services if s not in writer.registry]
    if missing:
        raise Problem(
            409,
            "Preset needs unregistered services",
            f"preset {name!r} changes {', '.join(missing)}, which this manager does not know",
            kind="preset-services",
            services=missing,
        )
    return preset


@router.post(
    "/presets/{name}/preview",
    response_model=PresetPreviewPublic,
    responses=problems(404, 409, 422),
)
async def preview_preset(name: str, principal: Viewer, writer: WriterDep) -> dict[str, Any]:
    """What applying the preset would do, nothing stored: per service the RFC 6902 diff
    from its current config (secrets redacted) and the cross-service rules' verdict on the
    result. A patch that makes a service's config invalid is a 422, as applying it would be."""
    preset = _checked_preset(name, principal, writer)
    patches = preset.to_dict()["patches"]
    services: list[dict[str, Any]] = []
    changes = []
    for service in preset.services:
        current = await writer.current(service, for_write=True)
        change = writer.plan(current, patch=patches[service])
        changed = not writer.same(current, change)
        if changed:
            changes.append(change)
        services.append(
            {
                "service": service,
                "version": current.version,
                "etag": etag_for(current.epoch, current.version),
                "changed": changed,
                "would_be_version": current.version + 1 if changed else None,
                "patch": writer.diff(service, current.values, change.values) if changed else [],
            }
        )
    violations: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    try:
        await writer.check_compatibility(changes)
    except Problem as problem:
        if problem.kind != "incompatible-config":
            raise
        violations = list(problem.extra.get("violations", []))
        errors = list(problem.extra.get("errors", []))
    return {
        "preset": name,
        "changed": bool(changes),
        "services": services,
        "compatible": not violations,
        "violations": violations,
        "errors": errors,
    }


@router.post(
    "/presets/{name}/apply",
    response_model=PresetAppliedPublic,
    responses=problems(404, 409, 422),
)
async def apply_preset(
    name: str,
    write: EditorAction,
    writer: WriterDep,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Apply a preset as ONE change: every service's new version commits, or none does.

    Applying a preset that changes nothing stores nothing (``changed``: false)."""
    preset = _checked_preset(name, write.principal, writer)
    if write.replay is not None:
        stored = (
            await writer.store.by_change(write.replay["change_id"])
            if write.replay.get("change_id")
            else []
        )
    else:
        ctx = WriteContext(
            write.ctx.actor,
            write.ctx.request_id,
            write.ctx.idempotency,
            "preset",
            {"preset": name},
        )
        stored = await writer.write_patches(preset.patches, actor=write.ctx.actor, ctx=ctx)
    ids = [s.outbox_id for s in stored if s.outbox_id is not None]
    published = bool(ids) and await publisher.wait_published(ids, settings.publish_wait_s)
    if write.replay is not None and stored:
        published = all([await writer.store.is_published(s.service, s.version) for s in stored])
    return {
        "preset": name,
        "change_id": stored[0].change_id if stored else None,
        "versions": [
            {
                "service": s.service,
                "version": s.version,
                "epoch": s.epoch,
                "etag": etag_for(s.epoch, s.version),
            }
            for s in stored
        ],
        "changed": bool(stored),
        "publication": ("published" if published else "pending") if stored else "unchanged",
    }


@router.get("/compatibility", response_model=CompatibilityPublic)
async def compatibility(_: Viewer, writer: WriterDep) -> dict[str, Any]:
    """The cross-service rules evaluated on the stored configs (defaults where none)."""
    configs = {}
    versions = {}
    for service in writer.registry:
        try:
            current = await writer.current(service)
        except Problem:
            continue
        configs[service] = writer.current_model(current)
        versions[service] = current.version
    violations = check_compatibility(configs)
    return {
        "compatible": not violations,
        "versions": versions,
        "violations": [v.to_dict() for v in violations],
        "errors": violation_errors(violations),
    }
