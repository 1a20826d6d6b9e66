"""``LeanRoute``: a documented route whose dependencies are resolved by a plan made once.

FastAPI solves a route's dependency tree on every request (introspection, caching keys,
parameter extraction: about a tenth of the manager's CPU per write, measured with py-spy).
The write routes' trees use nothing but the request, the response, path parameters and
other dependencies, so the order of the calls and where each argument comes from can be
worked out once, when the route is built. Each request then calls the same dependency
functions, in the same order (depth first, parameter order, router dependencies first,
each called once per request), and the endpoint itself; the answer goes through the same
response model (validated, serialised by pydantic) and keeps the headers the endpoint set.
The OpenAPI document is the route's own (nothing changes there).

A route whose tree uses anything else (query, header or body parameters, a generator or a
plain function, background tasks...) is served by FastAPI's own handler, unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import ResponseValidationError
from starlette.requests import Request
from starlette.responses import Response

from .openapi import DocumentedRoute

__all__ = ["LeanRoute"]


@dataclass(frozen=True, slots=True)
class _Call:
    """One call of the plan: ``call(**kwargs)`` with each argument's source."""

    call: Callable[..., Awaitable[Any]]
    request: str | None  # the parameter taking the Request (or the HTTPConnection)
    response: str | None  # the parameter taking the (sub-)Response
    paths: tuple[tuple[str, str], ...]  # (parameter, path parameter)
    results: tuple[tuple[str, int], ...]  # (parameter, index of an earlier call's result)


def _is_async(call: Any) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 - an instance's async __call__
    )


def _plan(dependant: Dependant) -> list[_Call] | None:
    """The calls of ``dependant``'s tree in FastAPI's order, or None if it needs FastAPI."""
    calls: list[_Call] = []
    done: dict[Any, int] = {}  # call -> its index (one call per request, as FastAPI caches)

    def visit(node: Dependant) -> int | None:
        if (
            node.call is None
            or node.query_params
            or node.header_params
            or node.cookie_params
            or node.body_params
            or node.websocket_param_name
            or node.background_tasks_param_name
            or node.security_scopes_param_name
            or not node.use_cache
            or not _is_async(node.call)
        ):
            return None
        if node.call in done:
            return done[node.call]
        results: list[tuple[str, int]] = []
        for sub in node.dependencies:
            index = visit(sub)
            if index is None:
                return None
            if sub.name is not None:
                results.append((sub.name, index))
        paths = []
        for field in node.path_params:
            if field.field_info.annotation is not str:
                return None  # converted and validated by FastAPI
            paths.append((field.name, field.alias))
        if node.request_param_name and node.http_connection_param_name:
            return None
        calls.append(
            _Call(
                node.call,
                node.request_param_name or node.http_connection_param_name,
                node.response_param_name,
                tuple(paths),
                tuple(results),
            )
        )
        done[node.call] = len(calls) - 1
        return len(calls) - 1

    return calls if visit(dependant) is not None else None


class LeanRoute(DocumentedRoute):
    """A :class:`DocumentedRoute` served by a precomputed plan of its dependency calls."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        plan = _plan(self.dependant)
        fallback = super().get_route_handler()
        if (
            plan is None
            or self.response_field is None
            or not isinstance(self.response_class, DefaultPlaceholder)
        ):
            return fallback
        field = self.response_field
        status_code = self.status_code or 200

        async def handler(request: Request) -> Response:
            if request.app.dependency_overrides:  # tests overriding a dependency
                return await fallback(request)
            sub = Response()
            del sub.headers["content-length"]
            sub.status_code = None  # type: ignore[assignment]  # as FastAPI's sub-response
            results: list[Any] = []
            path_params = request.path_params
            for step in plan:
                kwargs = {name: results[index] for name, index in step.results}
                if step.request is not None:
                    kwargs[step.request] = request
                if step.response is not None:
                    kwargs[step.response] = sub
                for name, alias in step.paths:
                    kwargs[name] = path_params[alias]
                results.append(await step.call(**kwargs))
            value, errors = field.validate(results[-1], {}, loc=("response",))
            if errors:
                raise ResponseValidationError(errors=errors, body=results[-1])
            response = Response(
                field.serialize_json(value, by_alias=True),
                status_code=sub.status_code or status_code,
                media_type="application/json",
            )
            response.headers.raw.extend(sub.headers.raw)
            return response

        return handler
