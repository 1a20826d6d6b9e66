"""``GET /api/v1/events``: Server-Sent Events over real HTTP (versions, applied reports)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from mgr_harness import RunningManager, put


@dataclass
class Sse:
    id: str | None
    event: str
    data: dict[str, Any]


class EventReader:
    """Reads one open text/event-stream response event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, wait_s: float = 10) -> Sse:
        async with asyncio.timeout(wait_s):
            ident: str | None = None
            event = "message"
            data: list[str] = []
            async for line in self._lines:
                if line == "":
                    if data:
                        return Sse(ident, event, json.loads("\n".join(data)))
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "id":
                    ident = value
                elif field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
            raise EOFError("the stream ended")

    async def until(self, kind: str, wait_s: float = 10) -> Sse:
        async with asyncio.timeout(wait_s):
            while (event := await self.next(wait_s)).event != kind:
                pass
            return event


@asynccontextmanager
async def events(
    http: httpx.AsyncClient, last_event_id: str | None = None
) -> AsyncIterator[EventReader]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    async with http.stream("GET", "/api/v1/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response)
        yield reader


async def test_a_stored_version_is_an_event_without_values(
    manager: RunningManager, service_name: str
) -> None:
    async with (
        manager.client("viewer") as viewer,
        manager.client("editor") as editor,
        events(viewer) as stream,
    ):
        await stream.until("ready")
        resp = await put(editor, service_name, {"rate": 22050, "api_key": "new-secret"}, 0)
        assert resp.status_code == 200
        event = await stream.until("version")
    assert event.id is not None
    assert event.data["service"] == service_name
    assert event.data["version"] == 1
    assert event.data["created_by"] == "editor-token"
    assert "values" not in event.data
    assert "new-secret" not in json.dumps(event.data)


async def test_resume_with_last_event_id_replays_what_was_missed(
    manager: RunningManager, service_name: str
) -> None:
    async with manager.client("viewer") as viewer, manager.client("editor") as editor:
        async with events(viewer) as stream:
            await stream.until("ready")
            assert (await put(editor, service_name, {"rate": 22050}, 0)).status_code == 200
            first = await stream.until("version")
        # disconnected: two more versions are stored meanwhile
        assert (await put(editor, service_name, {"rate": 32000}, 1)).status_code == 200
        assert (await put(editor, service_name, {"rate": 44100}, 2)).status_code == 200
        async with events(viewer, last_event_id=first.id) as stream:
            missed = [await stream.until("version"), await stream.until("version")]
        assert [e.data["version"] for e in missed] == [2, 3]
        # an id of another run of the manager (or garbage) cannot be replayed: reset
        async with events(viewer, last_event_id="0000-99") as stream:
            assert (await stream.next()).event == "reset"


async def test_events_need_a_token(manager: RunningManager) -> None:
    async with manager.client("") as anon:
        resp = await anon.get("/api/v1/events")
        assert resp.status_code == 401


async def test_an_open_stream_does_not_hold_up_shutdown(manager: RunningManager) -> None:
    async with manager.client("viewer") as viewer, events(viewer) as stream:
        await stream.until("ready")
        # stop() asserts that uvicorn's thread ends within its bound
        await asyncio.to_thread(manager.stop)
