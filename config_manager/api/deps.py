"""Dependencies of the routes, as ``Annotated`` aliases (state lives on ``app.state``)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from config_lib import canonical_bytes

from ..events import EventHub
from ..instances import InstanceTracker
from ..problems import Problem, describe_error, pydantic_errors
from ..publisher import OutboxPublisher
from ..ratelimit import RateLimits
from ..registry import SchemaRegistry
from ..settings import ManagerSettings
from ..store import ConfigStore, IdempotencyClaim
from ..tokens import Role, hash_token
from ..writes import ConfigWriter, WriteContext
from .openapi import MAX_SAFE_INT, declares, header

__all__ = [
    "Admin",
    "AdminWrite",
    "Editor",
    "EditorAction",
    "EditorWrite",
    "EventsDep",
    "IdempotencyKey",
    "IfMatch",
    "IfMatchOptional",
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
    "json_model",
    "parse_json",
]

_JSON_TYPES = ("application/json", "application/merge-patch+json")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
MAX_JSON_DEPTH: Final = 64
M = TypeVar("M", bound=BaseModel)
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


@declares(503)
async def get_store(request: Request) -> ConfigStore:
    store: ConfigStore = request.app.state.store
    return store


@declares(503)
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


async def get_events(request: Request) -> EventHub:
    hub: EventHub = request.app.state.events
    return hub


SettingsDep = Annotated[ManagerSettings, Depends(get_settings)]
EventsDep = Annotated[EventHub, Depends(get_events)]
StoreDep = Annotated[ConfigStore, Depends(get_store)]
WriterDep = Annotated[ConfigWriter, Depends(get_writer)]
PublisherDep = Annotated[OutboxPublisher, Depends(get_publisher)]
RegistryDep = Annotated[SchemaRegistry, Depends(get_registry)]
TrackerDep = Annotated[InstanceTracker, Depends(get_tracker)]


async def _auth_failed(request: Request) -> None:
    """Count a failed authentication against the client's address (429 over the limit)."""
    limits: RateLimits = request.app.state.rate_limits
    await limits.auth_failed(request.client.host if request.client else "unknown")


def _require(role: Role) -> Callable[..., Awaitable[Principal]]:
    @declares(401, 403, 429)  # 403 also for a token scoped to other services
    async def dependency(
        request: Request,
        store: StoreDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        challenge = {"WWW-Authenticate": 'Bearer realm="config-manager"'}
        if credentials is None or not credentials.credentials:
            await _auth_failed(request)
            raise Problem(
                401,
                "Unauthorized",
                "send Authorization: Bearer <token>",
                kind="unauthorized",
                headers=challenge,
            )
        record = await store.token_by_hash(hash_token(credentials.credentials))
        if record is None or record.revoked_at is not None:
            await _auth_failed(request)
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


class _HugeNumber:
    """A JSON number Python should not convert (too many digits, or not finite)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_int(text: str) -> int | _HugeNumber:
    if len(text.lstrip("-")) > len(str(MAX_SAFE_INT)):
        return _HugeNumber(text)  # never converted: Python refuses over 4300 digits
    value = int(text)
    return value if abs(value) <= MAX_SAFE_INT else _HugeNumber(text)


def _parse_float(text: str) -> int | float | _HugeNumber:
    """JSON has one number type: ``8000.0`` and ``8e3`` are the integer 8000 (as in JSON
    Schema), so an integer field accepts them; a float field accepts integers anyway."""
    value = float(text)
    if not math.isfinite(value):
        return _HugeNumber(text)
    if value.is_integer() and abs(value) <= MAX_SAFE_INT:
        return int(value)
    return value


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _BadJson(f"the key {key!r} appears twice in one object")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise _BadJson(f"{name} is not a JSON number")


class _BadJson(ValueError):
    """A JSON text we refuse, with a message fit for the client."""


def _where(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in ("body", *path))


def _check_parsed(value: Any, path: tuple[str | int, ...] = (), depth: int = 0) -> None:
    """Refuse numbers outside I-JSON and nesting deeper than ``MAX_JSON_DEPTH``."""
    if depth > MAX_JSON_DEPTH:
        raise _BadJson(f"{_where(path)}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, _HugeNumber):
        shown = value.text if len(value.text) <= 24 else f"a {len(value.text)}-character number"
        raise _BadJson(
            f"{_where(path)}: {shown} is out of range (integers must be within "
            f"±{MAX_SAFE_INT}, other numbers finite: RFC 7493)"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _check_parsed(item, (*path, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_parsed(item, (*path, index), depth + 1)


def parse_json(body: bytes) -> Any:
    """Strict I-JSON (no NaN, no duplicate keys, safe numbers, bounded depth) or a 400.

    The problem's detail says where (line and column, or the member's path) in words a
    client can act on; Python's own messages (``sys.set_int_max_str_digits``, recursion
    limits, codec names) never reach it.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"the body is not UTF-8 text (byte {exc.start} is invalid)") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
        _check_parsed(value)
    except json.JSONDecodeError as exc:
        raise _malformed(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except _BadJson as exc:
        raise _malformed(f"the body is not acceptable JSON: {exc}") from None
    except RecursionError:
        raise _malformed(
            f"the body is not acceptable JSON: nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    return value


def _malformed(detail: str) -> Problem:
    return Problem(400, "Malformed JSON", detail, kind="malformed-json")


@declares(400, 413, 415)
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
    return parse_json(bytes(body))


read_json_body.__openapi_body__ = True  # type: ignore[attr-defined]  # a JSON body is required
JsonBody = Annotated[Any, Depends(read_json_body)]


def json_model(model: type[M]) -> Callable[..., Awaitable[M]]:
    """A dependency: the body validated by ``model`` (strict), 422 naming each field."""

    @declares(400, 413, 415, 422)
    async def dependency(body: JsonBody) -> M:
        try:
            # JSON mode: strict about types, yet reads enums and dates from their JSON form.
            return model.model_validate_json(json.dumps(body), strict=True)
        except ValidationError as exc:
            errors = pydantic_errors(
                exc.errors(include_url=False, include_input=False), prefix=("body",)
            )
            raise Problem(
                422,
                "Invalid request body",
                f"{describe_error(errors[0])}"
                + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
                kind="invalid-request",
                errors=errors,
            ) from None

    dependency.__openapi_body__ = model  # type: ignore[attr-defined]
    return dependency


_IF_MATCH_HELP = 'The version the change is based on: 7, "7" or the ETag "<epoch>.<version>".'


@declares(
    400, 412, 428, parameters=[header("If-Match", _IF_MATCH_HELP + " Required.", required=True)]
)
async def if_match_required(request: Request) -> str:
    """The ``If-Match`` header of a write (428 when missing; read by ``parse_if_match``)."""
    value = request.headers.get("if-match")
    if value is None or not value.strip():
        raise Problem(
            428,
            "Precondition required",
            "send If-Match with the version your change is based on (GET returns it as ETag)",
            kind="precondition-required",
        )
    return value


@declares(400, 412, parameters=[header("If-Match", _IF_MATCH_HELP, required=False)])
async def if_match_optional(request: Request) -> str | None:
    value = request.headers.get("if-match")
    return value if value is not None and value.strip() else None


IfMatch = Annotated[str, Depends(if_match_required)]
IfMatchOptional = Annotated[str | None, Depends(if_match_optional)]


@declares(
    400,
    422,
    parameters=[
        header(
            "Idempotency-Key",
            "Makes a retry safe: the same token, key and body within 24 h get the first "
            "outcome; the same key with another body is a 422. 1-200 visible ASCII characters.",
            required=False,
            pattern=_IDEMPOTENCY_KEY.pattern,
        )
    ],
)
async def read_idempotency_key(request: Request) -> str | None:
    """The optional ``Idempotency-Key`` header of a write, checked for its form."""
    value = request.headers.get("idempotency-key")
    if value is not None and not _IDEMPOTENCY_KEY.fullmatch(value):
        raise Problem(
            400,
            "Bad Idempotency-Key",
            "Idempotency-Key must be 1-200 visible ASCII characters",
            kind="bad-idempotency-key",
        )
    return value


IdempotencyKey = Annotated[str | None, Depends(read_idempotency_key)]


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
    @declares(422, 429)  # Idempotency-Key reused with another body; the write rate limit
    async def dependency(
        request: Request,
        store: StoreDep,
        principal: Principal = Depends(_require(role)),  # noqa: B008
        body: Any = Depends(read_json_body if with_body else _no_body),  # noqa: B008
        idempotency_key: str | None = Depends(read_idempotency_key),
    ) -> WriteRequest:
        limits: RateLimits = request.app.state.rate_limits
        await limits.write(principal.name)
        ctx = WriteContext(principal.name, request_id(request))
        if idempotency_key is None:
            return WriteRequest(ctx, principal)
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
