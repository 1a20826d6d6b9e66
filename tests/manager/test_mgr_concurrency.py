"""Optimistic locking under contention: 50 writers from the same version, one wins."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from mgr_harness import RunningManager, put


async def test_fifty_concurrent_writers_exactly_one_wins(
    manager: RunningManager, service_name: str
) -> None:
    limits = httpx.Limits(max_connections=60, max_keepalive_connections=60)
    async with manager.client("editor", limits=limits) as http:
        base = await http.get(f"/api/v1/configs/{service_name}")
        etag = base.headers["etag"]

        async def writer(i: int) -> tuple[int, httpx.Response]:
            return i, await put(http, service_name, {"label": f"writer-{i}"}, etag)

        results: list[tuple[int, Any]] = await asyncio.gather(*(writer(i) for i in range(50)))
        codes = sorted(r.status_code for _, r in results)
        assert codes.count(200) == 1, codes
        assert codes.count(412) == 49, codes
        winner = next(i for i, r in results if r.status_code == 200)
        final = await http.get(f"/api/v1/configs/{service_name}")
        assert final.json()["version"] == 1
        assert final.json()["values"]["label"] == f"writer-{winner}"
        for _, r in results:
            if r.status_code == 412:
                assert r.json()["current_version"] == 1
