"""``/api/v1/events``: live events as Server-Sent Events (versions, applied reports).

Bearer auth like every route, so a browser reads it with ``fetch`` (``EventSource`` cannot
send an ``Authorization`` header); ``Last-Event-ID`` resumes after the last event seen.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header
from fastapi.responses import StreamingResponse

from .deps import EventsDep, SettingsDep, Viewer
from .openapi import api_router

__all__ = ["router"]

router = api_router(prefix="/api/v1", tags=["events"])


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream."}},
)
async def events(
    hub: EventsDep,
    settings: SettingsDep,
    _: Viewer,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    """``version`` / ``applied`` events (JSON data, ids ``<boot>-<seq>``); ``reset`` when the
    missed events cannot be replayed; a keep-alive comment when idle."""
    return StreamingResponse(
        hub.stream(last_event_id, settings.events_heartbeat_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
