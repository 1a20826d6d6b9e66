"""Group commit: many writers' versions in one durable transaction, all-or-nothing per
writer, each handed to the publisher only after its transaction committed.

The store-level tests run on each database of the matrix (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from mgr_harness import RunningManager, put, watch
from mgr_models import DemoConfig

from config_manager.dialects import Target, open_sync
from config_manager.group_commit import GroupCommitter
from config_manager.store import (
    AuditEntry,
    ConfigStore,
    NewVersion,
    StoredVersion,
    VersionConflict,
    WriteMember,
)


def _member(service: str, expected: int, n: int) -> WriteMember:
    return WriteMember(
        (NewVersion(service, expected, {"n": n}),),
        "tester",
        (AuditEntry(actor="tester", action="write", service=service, version=expected + 1),),
    )


def _committed_rows(db: Target) -> set[tuple[str, int]]:
    """What another connection sees: only committed rows."""
    with open_sync(db) as conn:
        return {(r[0], int(r[1])) for r in conn.execute("SELECT service, version FROM versions")}


@pytest.mark.db_matrix
async def test_a_failing_writer_in_a_batch_leaves_the_others_committed(
    matrix_database: Target,
) -> None:
    db = matrix_database
    async with ConfigStore(db) as store:
        await store.write([NewVersion("svc-b", 0, {"n": 0})], actor="t")
        outcomes = await store.write_group(
            [
                _member("svc-a", 0, 1),
                _member("svc-b", 0, 2),  # stale: svc-b is at version 1
                _member("svc-c", 0, 3),
            ]
        )
        assert isinstance(outcomes[1], VersionConflict)
        assert outcomes[1].current == 1
        ok = [o for o in outcomes if isinstance(o, list)]
        assert [[(s.service, s.version) for s in o] for o in ok] == [[("svc-a", 1)], [("svc-c", 1)]]
        # One transaction: one change id each, the same commit time.
        assert ok[0][0].created_at == ok[1][0].created_at
        assert _committed_rows(db) == {("svc-a", 1), ("svc-b", 1), ("svc-c", 1)}
        audit = await store.audit()
        assert sorted(a.service or "" for a in audit) == ["svc-a", "svc-c"]  # none for svc-b
        pending = await store.pending(10)
        assert [(p.service, p.version) for p in pending] == [
            ("svc-b", 1),
            ("svc-a", 1),
            ("svc-c", 1),
        ]
        # The hash chain skips the rolled-back member: it still verifies end to end.
        rows, head, _ = await store.chain()
        assert rows
        assert head
    # Reopened (the chain is re-read and checked at open): the next write follows on.
    async with ConfigStore(db) as store:
        [stored] = await store.write([NewVersion("svc-b", 1, {"n": 9})], actor="t")
        assert stored.version == 2


@pytest.mark.db_matrix
async def test_versions_are_handed_on_only_after_their_commit(matrix_database: Target) -> None:
    db = matrix_database
    handed: list[tuple[str, int]] = []
    seen_committed: list[bool] = []

    def committed(member: WriteMember, stored: list[StoredVersion]) -> None:
        # What the publisher would get: it must already be in the database for everyone.
        rows = _committed_rows(db)
        for item in stored:
            handed.append((item.service, item.version))
            seen_committed.append((item.service, item.version) in rows)

    async with ConfigStore(db) as store:
        committer = GroupCommitter(store, committed=committed)
        members = [_member(f"svc-{i % 10}", i // 10, i) for i in range(40)]
        # svc-3's version 2 is based on a version 1 that does not exist: it fails alone.
        members[13] = _member("svc-3", 5, 13)
        futures = [committer.commit(m) for m in members]
        results = await asyncio.gather(*futures, return_exceptions=True)
        await committer.idle()
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    # svc-3 v2 (index 13) fails; so do svc-3 v3 and v4, planned on top of it.
    assert failed == [13, 23, 33]
    assert all(isinstance(results[i], VersionConflict) for i in failed)
    assert all(seen_committed)
    assert len(handed) == 37
    assert ("svc-3", 2) not in handed
    assert _committed_rows(db) == set(handed)
    # Grouped: far fewer transactions than writers (the first goes alone, the rest queue).
    assert committer.batches < 10, committer.batches
    # Handed on in commit order: each service's versions in order.
    for svc in {s for s, _ in handed}:
        versions = [v for s, v in handed if s == svc]
        assert versions == sorted(versions)


async def test_concurrent_writers_over_http_share_transactions_and_all_publish(
    manager_factory: Callable[..., RunningManager], broker: Any, keys: Any
) -> None:
    """Eight clients, one service each, three writes each, all at once: every write is
    answered 200, every version is published in order, and the writes shared transactions."""
    services = [f"gc{i}-{secrets.token_hex(3)}" for i in range(8)]
    manager = manager_factory(
        mqtt_url=broker.url("manager"), models=dict.fromkeys(services, DemoConfig)
    )
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
    async with contextlib.AsyncExitStack() as stack:
        watchers = [
            await stack.enter_async_context(watch(broker, keys.trust, s)) for s in services
        ]
        http = await stack.enter_async_context(manager.client("editor", limits=limits))

        async def client(service: str) -> list[int]:
            etag: str | int = 0
            versions = []
            for j in range(3):
                resp = await put(http, service, {"label": f"{service}-{j}"}, etag)
                assert resp.status_code == 200, resp.text
                etag = resp.headers["etag"]
                versions.append(resp.json()["version"])
            return versions

        results = await asyncio.gather(*(client(s) for s in services))
        assert results == [[1, 2, 3]] * len(services)
        for service, watcher in zip(services, watchers, strict=True):
            seen = await watcher.until_version(3)
            assert [e.version for e in seen if e.version > 0] == [1, 2, 3], service
    assert manager._server is not None
    app: Any = manager._server.config.app
    committer = app.state.writer.committer
    assert committer.batches < 3 * len(services), committer.batches
