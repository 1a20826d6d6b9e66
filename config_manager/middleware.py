"""ASGI middleware: bounded request bodies (413 problem+json), ``Server-Timing``, request ids."""

from __future__ import annotations

import re
import secrets
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import Problem

__all__ = ["BodyLimitMiddleware", "RequestIdMiddleware", "ServerTimingMiddleware"]

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: at once from ``Content-Length``, else while reading.

    A body that grows too large while streaming makes ``receive`` raise a 413
    ``HTTPException``, which the app's handlers turn into problem+json.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"the body must be at most {self.max_bytes} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                app = scope.get("app")
                metrics = getattr(getattr(app, "state", None), "metrics", None)
                if metrics is not None:
                    metrics.rejected.labels(status="413").inc()
                problem = Problem(413, "Body too large", detail, kind="too-large")
                response = problem.response(scope.get("path"))
                await response(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, limited, send)


class ServerTimingMiddleware:
    """Add ``app;dur=<ms>`` (request received → response started) to ``Server-Timing``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry = f"app;dur={(time.perf_counter() - started) * 1000:.3f}".encode()
                headers = list(message.get("headers", []))
                for i, (name, value) in enumerate(headers):
                    if name.lower() == b"server-timing":
                        headers[i] = (name, value + b", " + entry)
                        break
                else:
                    headers.append((b"server-timing", entry))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)


class RequestIdMiddleware:
    """Give every request an id (the client's ``X-Request-Id`` when it is sane, else a new
    one), kept in ``request.state.request_id`` (audit entries) and echoed on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8).encode()
        for name, value in scope.get("headers", []):
            if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
                request_id = value
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", request_id)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, tagged_send)
