"""How the API documents itself: one declarative mechanism for every route.

Three pieces, so that a route is documented by what it uses rather than by hand:

* **Dependencies declare what they add.** ``@declares(401, 403)`` on a dependency (the
  role checks, the JSON body reader, the ``If-Match`` and ``Idempotency-Key`` readers and
  the store in :mod:`.deps`) lists the problems it can answer and the header parameters it
  reads. :class:`DocumentedRoute` walks each route's dependency tree and adds them to the
  route's ``responses`` (as ``application/problem+json``) and parameters.
* **Routes declare the rest** with ``responses=problems(404, 409)`` (errors their own code
  raises) and ``openapi_extra=config_body(MERGE_PATCH)`` (a service's config as the body).
* **The document is finished per registry** by :func:`install_openapi`: the problem schema
  goes into ``components``, and every path with a ``{service}`` segment is written out once
  per registered service, with that service's JSON Schema (or its merge-patch form for
  ``PATCH``) as the typed request body.

Every router of the API is made with :func:`api_router` (which sets the route class).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from ..problems import PROBLEM_JSON, Problem
from ..registry import SchemaRegistry, secret_schema

__all__ = [
    "DOCUMENT",
    "MERGE_PATCH",
    "MERGE_PATCH_JSON",
    "DocumentedRoute",
    "ProblemPublic",
    "api_router",
    "config_body",
    "declares",
    "install_openapi",
    "problems",
]

MERGE_PATCH_JSON: Final = "application/merge-patch+json"
DOCUMENT: Final = "document"
MERGE_PATCH: Final = "merge-patch"
_CONFIG_BODY: Final = "x-config-body"  # marker read (and removed) by install_openapi
_COMPONENTS: Final = "#/components/schemas/"
MAX_SAFE_INT: Final = 2**53 - 1  # I-JSON (RFC 7493): the integers a body may carry
_PROBLEM_REF: Final = {"$ref": _COMPONENTS + "Problem"}

# When each status is answered, in one place (the OpenAPI descriptions of the problems).
_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "Malformed request: the body is not valid JSON, or a header cannot be read.",
    401: "No token, or an unknown or revoked one (`WWW-Authenticate: Bearer`).",
    403: "The token's role does not allow this.",
    404: "No such resource (service, preset, token, version...).",
    405: "Method not allowed on this path (`Allow` lists the methods that are).",
    409: "Conflicts with the current state (exists already, needs what is not there).",
    412: "`If-Match` names another version than the current one; nothing was written.",
    413: "The body is larger than `CONFIG_MANAGER_MAX_BODY_BYTES`.",
    415: "The body's media type is not a JSON one this route reads.",
    422: "Well-formed but invalid: `errors[]` gives each `loc` and `msg`.",
    428: "`If-Match` is required on this write.",
    429: "Too many requests: retry after `Retry-After` seconds.",
    503: "The manager cannot serve this now (storage or broker): retry after `Retry-After`.",
    507: "The store has no room for this write: retry after `Retry-After`.",
}


class ProblemError(BaseModel):
    loc: list[str | int] = Field(description="Where: e.g. ['body', 'rate'] or ['query', 'limit'].")
    msg: str
    type: str


class ProblemPublic(BaseModel):
    """RFC 9457 problem details (``application/problem+json``); kinds add members."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="A URI naming the kind of problem, or 'about:blank'.")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    instance: str | None = Field(None, description="The request's path.")
    errors: list[ProblemError] | None = Field(None, description="Each invalid input.")


def _string_header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


# Headers some problems carry (documented, not required: a proxy may answer too).
_HEADERS: Final[dict[int, dict[str, Any]]] = {
    401: {"WWW-Authenticate": _string_header('Bearer realm="config-manager"')},
    405: {"Allow": _string_header("The methods this path serves.")},
    412: {"ETag": _string_header("The current version's ETag.")},
    429: {"Retry-After": _string_header("Seconds to wait.")},
    503: {"Retry-After": _string_header("Seconds to wait.")},
    507: {"Retry-After": _string_header("Seconds to wait.")},
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status answered as problem+json."""
    unknown = [s for s in statuses if s not in _DESCRIPTIONS]
    if unknown:
        raise ValueError(f"no description for problem status {unknown}: add it to _DESCRIPTIONS")
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(statuses):
        responses[status] = {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": dict(_PROBLEM_REF)}},
        }
        if status in _HEADERS:
            responses[status]["headers"] = copy.deepcopy(_HEADERS[status])
    return responses


@dataclass(frozen=True, slots=True)
class Declaration:
    """What a dependency adds to every route that uses it."""

    problems: frozenset[int]
    parameters: tuple[dict[str, Any], ...]


F = TypeVar("F", bound=Callable[..., Any])


def declares(*statuses: int, parameters: Iterable[dict[str, Any]] = ()) -> Callable[[F], F]:
    """Mark a dependency: routes using it document ``statuses`` and ``parameters``."""
    problems(*statuses)  # refuses a status without a description at import time
    declaration = Declaration(frozenset(statuses), tuple(parameters))

    def mark(func: F) -> F:
        func.__openapi__ = declaration  # type: ignore[attr-defined]
        return func

    return mark


def header(name: str, description: str, *, required: bool, **schema: Any) -> dict[str, Any]:
    """An OpenAPI header parameter (for ``declares(parameters=...)``)."""
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string", **schema},
    }


def config_body(kind: str) -> dict[str, Any]:
    """``openapi_extra=`` for a route whose body is the ``{service}``'s config.

    ``DOCUMENT``: the whole config as ``application/json``; ``MERGE_PATCH``: an RFC 7396
    patch of it as ``application/merge-patch+json``. :func:`install_openapi` replaces the
    marker by the registered service's schema.
    """
    if kind not in (DOCUMENT, MERGE_PATCH):
        raise ValueError(f"unknown config body kind {kind!r}")
    return {_CONFIG_BODY: kind}


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _walk(sub)


class DocumentedRoute(APIRoute):
    """An ``APIRoute`` that documents what its dependencies declare (see module doc)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        statuses: set[int] = set()
        parameters: dict[str, dict[str, Any]] = {}
        extra = dict(self.openapi_extra or {})
        any_json = False
        for dep in _walk(self.dependant):
            declaration = getattr(dep.call, "__openapi__", None)
            if isinstance(declaration, Declaration):
                statuses |= declaration.problems
                for param in declaration.parameters:
                    parameters[param["name"].lower()] = param
            model = getattr(dep.call, "__openapi_body__", None)
            if isinstance(model, type) and issubclass(model, BaseModel):
                extra["requestBody"] = {
                    "required": True,
                    # integers beyond I-JSON are refused (400) before the model sees them
                    "content": {"application/json": {"schema": ijson_integers(_inline(model))}},
                }
            elif model is True:
                any_json = True
        if any_json and "requestBody" not in extra and _CONFIG_BODY not in extra:
            extra["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {}}},
            }
        self.query_names = frozenset(
            p.alias for dep in _walk(self.dependant) for p in dep.query_params
        )
        statuses.add(422)  # parameters (unknown query parameters included), bodies
        if self.body_field is not None:
            statuses |= {400, 413}
        for status, response in problems(*statuses).items():
            self.responses.setdefault(status, response)
        if parameters:
            extra["parameters"] = [*extra.get("parameters", []), *parameters.values()]
        if extra:
            self.openapi_extra = extra


def _inline(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with its ``$defs`` substituted (request models are flat)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(copy.deepcopy(defs[ref[len("#/$defs/") :]]))
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


async def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not declare (a typo is never ignored)."""
    route = request.scope.get("route")
    known = getattr(route, "query_names", None)
    if known is None:
        return
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        errors = [
            {"loc": ["query", name], "msg": "unknown query parameter", "type": "extra_forbidden"}
            for name in unknown
        ]
        raise Problem(
            422,
            "Invalid request",
            f"query.{unknown[0]}: unknown query parameter"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""),
            kind="invalid-request",
            errors=errors,
        )


def api_router(**kwargs: Any) -> APIRouter:
    """An ``APIRouter`` whose routes are :class:`DocumentedRoute` s refusing unknown queries."""
    dependencies = [Depends(reject_unknown_query), *kwargs.pop("dependencies", [])]
    return APIRouter(route_class=DocumentedRoute, dependencies=dependencies, **kwargs)


# -- the finished document ------------------------------------------------------------------


def _component(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _relocate(schema: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pydantic schema with its ``$defs`` moved to components named ``prefix.<Def>``."""
    schema = copy.deepcopy(schema)
    defs = schema.pop("$defs", {})

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node["$ref"] = _COMPONENTS + _component(f"{prefix}.{ref[len('#/$defs/') :]}")
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)
        return node

    fix(schema)
    return schema, {_component(f"{prefix}.{k}"): fix(v) for k, v in defs.items()}


def merge_patch_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of an RFC 7396 patch of a document valid against ``schema``.

    Every member becomes optional; a member that has a default may be ``null`` (removing
    it restores the default); nested objects are patches themselves. ``$ref`` s are kept:
    pass the ``$defs`` through this function too.
    """
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                required = set(node.pop("required", []))
                for name, prop in props.items():
                    walk(prop)
                    if name not in required:
                        props[name] = {"anyOf": [prop, {"type": "null"}]}
            for key, value in node.items():
                if key != "properties":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def ijson_integers(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every integer bounded to the I-JSON range (RFC 7493) the API accepts.

    A body with an integer beyond ±(2^53−1) is refused before validation (400), so the
    documented contract says so instead of promising any integer.
    """
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            types = node.get("type")
            if types == "integer" or (isinstance(types, list) and "integer" in types):
                low = node.get("minimum", -MAX_SAFE_INT)
                high = node.get("maximum", MAX_SAFE_INT)
                if isinstance(low, int | float):
                    node["minimum"] = max(low, -MAX_SAFE_INT)
                if isinstance(high, int | float):
                    node["maximum"] = min(high, MAX_SAFE_INT)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def _service_components(registry: SchemaRegistry) -> dict[str, Any]:
    components: dict[str, Any] = {}
    for service in registry:
        model = registry.get(service)
        assert model is not None
        full = ijson_integers(secret_schema(model))
        document, defs = _relocate(full, f"{service}.config")
        components[_component(f"{service}.config")] = document
        components.update(defs)
        patch, patch_defs = _relocate(merge_patch_schema(full), f"{service}.merge-patch")
        patch["title"] = f"{service} merge patch"
        components[_component(f"{service}.merge-patch")] = patch
        components.update(patch_defs)
    return components


def _body(kind: str, service: str) -> dict[str, Any]:
    if kind == MERGE_PATCH:
        media, name = MERGE_PATCH_JSON, f"{service}.merge-patch"
    else:
        media, name = "application/json", f"{service}.config"
    return {
        "required": True,
        "description": f"The {service} config"
        + (" as a JSON Merge Patch (RFC 7396)." if kind == MERGE_PATCH else "."),
        "content": {media: {"schema": {"$ref": _COMPONENTS + _component(name)}}},
    }


def _per_service(paths: dict[str, Any], registry: SchemaRegistry) -> dict[str, Any]:
    """Each ``{service}`` path written out once per registered service, bodies typed."""
    result: dict[str, Any] = {}
    for path, operations in paths.items():
        if "{service}" not in path:
            for op in operations.values():
                kind = op.pop(_CONFIG_BODY, None)
                if kind is not None:
                    raise ValueError(f"{path}: a config body needs a {{service}} path segment")
            result[path] = operations
            continue
        for service in registry:
            concrete: dict[str, Any] = {}
            for method, op in operations.items():
                op = copy.deepcopy(op)
                op["parameters"] = [
                    p
                    for p in op.get("parameters", [])
                    if not (p.get("in") == "path" and p.get("name") == "service")
                ]
                if not op["parameters"]:
                    del op["parameters"]
                op["operationId"] = f"{op['operationId']}__{_component(service)}"
                kind = op.pop(_CONFIG_BODY, None)
                if kind is not None:
                    op["requestBody"] = _body(kind, service)
                concrete[method] = op
            result[path.replace("{service}", service)] = concrete
    return result


def install_openapi(app: FastAPI, registry: Callable[[], SchemaRegistry]) -> None:
    """Make ``app.openapi()`` the finished document for the registry ``registry()`` returns."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        doc = copy.deepcopy(generate())
        reg = registry()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)  # FastAPI's; our 422 is a problem
        schemas["ProblemError"] = ProblemError.model_json_schema()
        problem = ProblemPublic.model_json_schema(ref_template=_COMPONENTS + "{model}")
        problem.pop("$defs", None)
        schemas["Problem"] = problem
        schemas.update(_service_components(reg))
        doc["paths"] = _per_service(doc.get("paths", {}), reg)
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
