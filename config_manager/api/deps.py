"""Dependencies of the routes, as ``Annotated`` aliases (state lives on ``app.state``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..instances import InstanceTracker
from ..problems import Problem
from ..publisher import OutboxPublisher
from ..registry import SchemaRegistry
from ..settings import ManagerSettings
from ..store import ConfigStore
from ..tokens import Role, hash_token
from ..writes import ConfigWriter

__all__ = [
    "Admin",
    "Editor",
    "JsonBody",
    "Principal",
    "PublisherDep",
    "RegistryDep",
    "SettingsDep",
    "StoreDep",
    "TrackerDep",
    "Viewer",
    "WriterDep",
]

_JSON_TYPES = ("application/json", "application/merge-patch+json")
_bearer = HTTPBearer(auto_error=False, description="API token (`scm_...`)")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: Role


async def get_settings(request: Request) -> ManagerSettings:
    settings: ManagerSettings = request.app.state.settings
    return settings


async def get_store(request: Request) -> ConfigStore:
    store: ConfigStore = request.app.state.store
    return store


async def get_writer(request: Request) -> ConfigWriter:
    writer: ConfigWriter = request.app.state.writer
    return writer


async def get_publisher(request: Request) -> OutboxPublisher:
    publisher: OutboxPublisher = request.app.state.publisher
    return publisher


async def get_registry(request: Request) -> SchemaRegistry:
    registry: SchemaRegistry = request.app.state.registry
    return registry


async def get_tracker(request: Request) -> InstanceTracker:
    tracker: InstanceTracker = request.app.state.tracker
    return tracker


SettingsDep = Annotated[ManagerSettings, Depends(get_settings)]
StoreDep = Annotated[ConfigStore, Depends(get_store)]
WriterDep = Annotated[ConfigWriter, Depends(get_writer)]
PublisherDep = Annotated[OutboxPublisher, Depends(get_publisher)]
RegistryDep = Annotated[SchemaRegistry, Depends(get_registry)]
TrackerDep = Annotated[InstanceTracker, Depends(get_tracker)]


def _require(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        store: StoreDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        challenge = {"WWW-Authenticate": 'Bearer realm="config-manager"'}
        if credentials is None or not credentials.credentials:
            raise Problem(
                401,
                "Unauthorized",
                "send Authorization: Bearer <token>",
                kind="unauthorized",
                headers=challenge,
            )
        record = await store.token_by_hash(hash_token(credentials.credentials))
        if record is None or record.revoked_at is not None:
            raise Problem(
                401,
                "Unauthorized",
                "unknown or revoked token",
                kind="unauthorized",
                headers=challenge,
            )
        principal = Principal(record.name, Role(record.role))
        if not principal.role.allows(role):
            raise Problem(
                403,
                "Forbidden",
                f"this needs the {role.value} role; token {record.name!r} is {record.role}",
                kind="forbidden",
            )
        return principal

    return dependency


Viewer = Annotated[Principal, Depends(_require(Role.viewer))]
Editor = Annotated[Principal, Depends(_require(Role.editor))]
Admin = Annotated[Principal, Depends(_require(Role.admin))]


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json_body(request: Request, settings: SettingsDep) -> Any:
    """The request body as JSON: bounded size (413), JSON media type (415), strict JSON (400)."""
    limit = settings.max_body_bytes
    too_large = Problem(
        413, "Body too large", f"the body must be at most {limit} bytes", kind="too-large"
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in _JSON_TYPES:
        raise Problem(
            415, "Unsupported media type", "send the body as application/json", kind="media-type"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        return json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError) as exc:
        raise Problem(
            400, "Malformed JSON", f"the body is not valid JSON: {exc}", kind="malformed-json"
        ) from None


JsonBody = Annotated[Any, Depends(read_json_body)]
