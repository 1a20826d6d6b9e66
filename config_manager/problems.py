"""RFC 9457 problem details: the one error format of the API (``application/problem+json``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .store import StorageError

__all__ = [
    "PROBLEM_JSON",
    "Problem",
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


def validation_problem(exc: ValidationError, service: str) -> Problem:
    errors = pydantic_errors(exc.errors(include_url=False, include_input=False))
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    where = ".".join(str(p) for p in first["loc"]) or "(root)"
    return Problem(
        422,
        "Invalid configuration",
        f"{service}: {where}: {first['msg']}"
        + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
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
        _count_rejected(request, exc.status_code)
        headers = dict(exc.headers or {})
        return Problem(
            exc.status_code, _title(exc.status_code), str(exc.detail), headers=headers
        ).response(request.url.path)

    async def on_request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        _count_rejected(request, 422)
        errors = pydantic_errors(list(exc.errors()))
        return Problem(
            422,
            "Invalid request",
            "the request's parameters are invalid",
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
