"""RFC 9457 problem details: the one error format of the API (``application/problem+json``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from .store import StorageError

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "describe_error",
    "install_problem_handlers",
    "pydantic_errors",
    "storage_problem",
]

PROBLEM_JSON: Final = "application/problem+json"
_TYPE_BASE: Final = "https://signed-config.local/problems/"


class Problem(Exception):
    """An error answered as problem+json. ``extra`` members are added to the body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": _TYPE_BASE + self.kind if self.kind else "about:blank",
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            doc["detail"] = self.detail
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc

    def response(self, instance: str | None = None) -> JSONResponse:
        return JSONResponse(
            self.body(instance),
            status_code=self.status,
            media_type=PROBLEM_JSON,
            headers=self.headers,
        )


def pydantic_errors(errors: Sequence[Any], *, prefix: tuple[str | int, ...] = ()) -> list[Any]:
    """Pydantic errors reduced to what a client needs: where (loc), what (msg), the type.

    Input values are left out on purpose: they may be secrets.
    """
    return [
        {"loc": [*prefix, *e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


def describe_error(error: dict[str, Any]) -> str:
    """``where: what`` for one reduced error, e.g. ``query.limit: Input should be ...``."""
    where = ".".join(str(p) for p in error.get("loc", ())) or "(root)"
    return f"{where}: {error.get('msg') or 'invalid'}"


def _summary(errors: list[Any]) -> str:
    first = describe_error(errors[0]) if errors else "(root): invalid"
    return first + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def validation_problem(exc: ValidationError, service: str) -> Problem:
    errors = pydantic_errors(exc.errors(include_url=False, include_input=False))
    return Problem(
        422,
        "Invalid configuration",
        f"{service}: {_summary(errors)}",
        kind="invalid-config",
        service=service,
        errors=errors,
    )


def storage_problem(exc: StorageError, retry_after_s: int) -> Problem:
    """503 with ``Retry-After`` for an operation the database could not carry out."""
    what = "store this change" if exc.writes else "be read"
    return Problem(
        503,
        "Storage unavailable",
        f"the database could not {what} ({exc.reason}); nothing was written: retry in "
        f"{retry_after_s} s",
        kind="storage-unavailable",
        headers={"Retry-After": str(retry_after_s)},
        error=exc.code,
    )


def install_problem_handlers(app: FastAPI, *, storage_retry_after_s: int = 5) -> None:
    """Answer every error (ours, FastAPI's, Starlette's, unexpected) as problem+json.

    A :class:`~config_manager.store.StorageError` (disk full, I/O error...) is a 503 with
    ``Retry-After: storage_retry_after_s``.
    """

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        _count_rejected(request, exc.status)
        return exc.response(request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        status, detail = exc.status_code, str(exc.detail)
        if status in (404, 405):
            # The editor's catch-all mount answers paths of the API too: a method the API
            # does not serve on an API path is a 405 naming the methods it does serve.
            allowed = allowed_methods(request)
            if allowed and request.method not in allowed:
                status, detail = 405, f"{request.method} is not allowed here"
                headers["Allow"] = ", ".join(allowed)
        _count_rejected(request, status)
        return Problem(status, _title(status), detail, headers=headers).response(
            request.url.path
        )

    async def on_request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        _count_rejected(request, 422)
        errors = pydantic_errors(list(exc.errors()))
        return Problem(
            422,
            "Invalid request",
            _summary(errors),
            kind="invalid-request",
            errors=errors,
        ).response(request.url.path)

    async def on_storage(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StorageError)
        _count_rejected(request, 503)
        return storage_problem(exc, storage_retry_after_s).response(request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StorageError, on_storage)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_request_validation)


_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route answers on this path (for ``Allow`` on a 405).

    Starlette stops at the first route that matches the path only partially (or at the
    editor's catch-all mount), so its own ``Allow`` names one route's methods at best.
    """
    found: list[str] = []
    static = False
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        for route in request.app.router.routes:
            match, _ = route.matches(scope)
            if match is not Match.FULL:
                continue
            if isinstance(route, Mount):
                static = True
                continue
            found.append(method)
            break
    if not found and static and request.method not in ("GET", "HEAD"):
        return ["GET", "HEAD"]  # a file of the editor
    return found


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _count_rejected(request: Request, status: int) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None and status >= 400:
        metrics.rejected.labels(status=str(status)).inc()
