"""Dependencies of the routes, as ``Annotated`` aliases (state lives on ``app.state``)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from config_lib import canonical_bytes

from ..instances import InstanceTracker
from ..problems import Problem
from ..publisher import OutboxPublisher
from ..ratelimit import RateLimits
from ..registry import SchemaRegistry
from ..settings import ManagerSettings
from ..store import ConfigStore, IdempotencyClaim
from ..tokens import Role, hash_token
from ..writes import ConfigWriter, WriteContext

__all__ = [
    "Admin",
    "AdminWrite",
    "Editor",
    "EditorAction",
    "EditorWrite",
    "JsonBody",
    "Principal",
    "PublisherDep",
    "RegistryDep",
    "SettingsDep",
    "StoreDep",
    "TrackerDep",
    "Viewer",
    "WriteRequest",
    "WriterDep",
]

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
_JSON_TYPES = ("application/json", "application/merge-patch+json")
_bearer = HTTPBearer(auto_error=False, description="API token (`scm_...`)")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name, role and scope (None: every service)."""

    name: str
    role: Role
    services: frozenset[str] | None = None

    def may(self, service: str | None) -> bool:
        """Whether this token may act on ``service`` (None: something of no one service)."""
        if self.services is None:
            return True
        return service is not None and service in self.services

    def require_unscoped(self, what: str) -> None:
        if self.services is not None:
            raise Problem(
                403,
                "Forbidden",
                f"{what} covers every service; token {self.name!r} is limited to "
                f"{', '.join(sorted(self.services))}",
                kind="forbidden",
            )


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


def _auth_failed(request: Request) -> None:
    """Count a failed authentication against the client's address (429 over the limit)."""
    limits: RateLimits = request.app.state.rate_limits
    limits.auth_failed(request.client.host if request.client else "unknown")


def _require(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request,
        store: StoreDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        challenge = {"WWW-Authenticate": 'Bearer realm="config-manager"'}
        if credentials is None or not credentials.credentials:
            _auth_failed(request)
            raise Problem(
                401,
                "Unauthorized",
                "send Authorization: Bearer <token>",
                kind="unauthorized",
                headers=challenge,
            )
        record = await store.token_by_hash(hash_token(credentials.credentials))
        if record is None or record.revoked_at is not None:
            _auth_failed(request)
            raise Problem(
                401,
                "Unauthorized",
                "unknown or revoked token",
                kind="unauthorized",
                headers=challenge,
            )
        principal = Principal(
            record.name,
            Role(record.role),
            frozenset(record.services) if record.services is not None else None,
        )
        if not principal.role.allows(role):
            raise Problem(
                403,
                "Forbidden",
                f"this needs the {role.value} role; token {record.name!r} is {record.role}",
                kind="forbidden",
            )
        # Scope: checked on every route that names a service in its path.
        service = request.path_params.get("service")
        if isinstance(service, str) and not principal.may(service):
            scope = ", ".join(sorted(principal.services or ()))
            raise Problem(
                403,
                "Forbidden",
                f"token {record.name!r} is limited to {scope}",
                kind="out-of-scope",
                service=service,
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


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """A write's context, and the first outcome when its ``Idempotency-Key`` was seen."""

    ctx: WriteContext
    principal: Principal
    replay: dict[str, Any] | None = None


def request_id(request: Request) -> str | None:
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


async def _no_body() -> None:
    return None


def _write_request(role: Role, *, with_body: bool = True) -> Callable[..., Awaitable[WriteRequest]]:
    # Dependencies given as defaults: they are built here, from this function's arguments
    # (string annotations would be resolved in the module's globals).
    async def dependency(
        request: Request,
        store: StoreDep,
        principal: Principal = Depends(_require(role)),  # noqa: B008
        body: Any = Depends(read_json_body if with_body else _no_body),  # noqa: B008
        idempotency_key: Annotated[
            str | None,
            Header(
                description="Makes a retry safe: the same token, key and body within 24 h "
                "get the first outcome; the same key with another body is a 422."
            ),
        ] = None,
    ) -> WriteRequest:
        limits: RateLimits = request.app.state.rate_limits
        limits.write(principal.name)
        ctx = WriteContext(principal.name, request_id(request))
        if idempotency_key is None:
            return WriteRequest(ctx, principal)
        if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise Problem(
                400,
                "Bad Idempotency-Key",
                "an Idempotency-Key is 1-200 visible ASCII characters",
                kind="bad-idempotency-key",
            )
        digest = hashlib.sha256(
            canonical_bytes({"method": request.method, "path": request.url.path, "body": body})
        ).hexdigest()
        claim = IdempotencyClaim(principal.name, idempotency_key, digest)
        seen = await store.idempotent_result(principal.name, idempotency_key)
        if seen is not None:
            if seen[0] != digest:
                raise Problem(
                    422,
                    "Idempotency-Key reused",
                    "this Idempotency-Key was used for a different request in the last 24 h",
                    kind="idempotency-key-reused",
                )
            return WriteRequest(ctx, principal, seen[1])
        return WriteRequest(WriteContext(principal.name, ctx.request_id, claim), principal)

    return dependency


EditorWrite = Annotated[WriteRequest, Depends(_write_request(Role.editor))]
AdminWrite = Annotated[WriteRequest, Depends(_write_request(Role.admin))]
EditorAction = Annotated[WriteRequest, Depends(_write_request(Role.editor, with_body=False))]
"""A write without a body (apply a preset)."""
