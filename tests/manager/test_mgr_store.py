"""The database: migrations upgrade an existing one, the schema itself enforces versions.

Marked ``db_matrix``: each test runs on a SQLite file and on PostgreSQL (tests/conftest.py).
"""

from __future__ import annotations

import pytest

from config_manager.db import migrate, migrations, now_iso
from config_manager.dialects import Target, dialect_of, is_integrity_error, open_sync
from config_manager.store import ConfigStore, NewVersion, VersionConflict

pytestmark = pytest.mark.db_matrix


def _database_at_schema_1(target: Target) -> None:
    """A database as the first release left it: migration 1 only, one version stored."""
    number, name, sql = migrations(dialect_of(target))[0]
    assert number == 1
    with open_sync(target) as db:
        db.script(sql)
        db.execute(
            "CREATE TABLE schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        db.execute("INSERT INTO schema_migrations VALUES (1, ?, ?)", (name, now_iso()))
        db.execute("INSERT INTO meta VALUES ('epoch', '1700000000')")
        db.execute("INSERT INTO services VALUES ('svc-old', 1, ?)", (now_iso(),))
        db.execute(
            "INSERT INTO versions (service, version, epoch, values_json, created_at, "
            "created_by, change_id) VALUES ('svc-old', 1, 1700000000, '{\"a\":1}', ?, 'x', 'c')",
            (now_iso(),),
        )
        db.execute(
            "INSERT INTO outbox (service, version, created_at) VALUES ('svc-old', 1, ?)",
            (now_iso(),),
        )


async def test_an_old_database_is_migrated_and_keeps_working(matrix_database: Target) -> None:
    db = matrix_database
    _database_at_schema_1(db)
    assert migrate(db) == max(n for n, _, _ in migrations(dialect_of(db)))
    async with ConfigStore(db) as store:
        assert await store.epoch() == 1700000000  # an existing epoch is never replaced
        assert (await store.current("svc-old")) is not None
        [stored] = await store.write([NewVersion("svc-old", 1, {"a": 2})], actor="t")
        assert stored.version == 2
        pending = await store.pending(10)
        assert [(p.service, p.version) for p in pending] == [("svc-old", 1), ("svc-old", 2)]
        assert pending[-1].id == stored.outbox_id


async def test_the_schema_refuses_a_version_that_does_not_follow(matrix_database: Target) -> None:
    db = matrix_database
    async with ConfigStore(db) as store:
        await store.write([NewVersion("svc-a", 0, {"n": 1})], actor="t")
        with pytest.raises(VersionConflict) as info:
            await store.write([NewVersion("svc-a", 0, {"n": 2})], actor="t")
        assert info.value.current == 1
        # Two services in one transaction: the second one's conflict undoes the first.
        with pytest.raises(VersionConflict):
            await store.write(
                [NewVersion("svc-b", 0, {"n": 1}), NewVersion("svc-a", 5, {"n": 3})], actor="t"
            )
        assert await store.current("svc-b") is None
        assert [s.service for s in await store.services()] == ["svc-a"]
    with open_sync(db) as conn:
        with pytest.raises(Exception, match="version conflict") as refused:
            conn.execute(
                "INSERT INTO versions (service, version, epoch, values_json, created_at, "
                "created_by, change_id) VALUES ('svc-a', 3, 1, '{}', 't', 'x', 'c')"
            )
        assert is_integrity_error(refused.value)
        assert conn.execute("SELECT COUNT(*) FROM outbox")[0][0] == 1


async def test_rows_stored_before_the_hash_chain_are_chained_at_open(
    matrix_database: Target,
) -> None:
    from config_lib import SigningKey, TrustStore
    from config_manager.history import EXPORT_FORMAT, GENESIS, row_hash, sign_head, verify_export

    db = matrix_database
    _database_at_schema_1(db)
    async with ConfigStore(db) as store:
        await store.write([NewVersion("svc-old", 1, {"a": 2})], actor="t")
        rows, head, count = await store.chain()
    assert count == 2
    assert rows[0]["prev_hash"] == GENESIS
    assert rows[1]["prev_hash"] == rows[0]["row_hash"]
    assert head == rows[1]["row_hash"]
    first = rows[0]
    assert first["row_hash"] == row_hash(
        service="svc-old",
        version=1,
        epoch=1700000000,
        values={"a": 1},
        created_at=first["created_at"],
        created_by="x",
        prev_hash=GENESIS,
    )
    key = SigningKey.generate()
    head_doc = {"row_hash": head, "count": count, "epoch": 1, "exported_at": "t", "history": "full"}
    export = {
        "format": EXPORT_FORMAT,
        "history": "full",
        "versions": rows,
        "head": head_doc,
        "signature": sign_head(head_doc, key),
    }
    assert verify_export(export, TrustStore([key.public_key])).ok
    assert not verify_export(export, TrustStore([SigningKey.generate().public_key])).ok
    # reopening changes nothing: the chain is stable
    async with ConfigStore(db) as store:
        assert (await store.chain())[1] == head


async def test_instance_keys_pinned_on_first_use_and_approved(matrix_database: Target) -> None:
    """Report keys (migration 0060): a first-use pin never replaces an approval; forged
    flags round-trip; removing an instance's report keeps its pin."""
    from config_manager.instances import InstanceReport, PinnedKey
    from config_manager.store import AuditEntry

    first = PinnedKey("svc", "i-1", "QUFB", "aaaaaaaaaaaaaaaa", now_iso())
    approved = PinnedKey("svc", "i-1", "QkJC", "bbbbbbbbbbbbbbbb", now_iso(), "admin")
    report = InstanceReport(
        service="svc", instance="i-1", status="applied", version=3, epoch=1, reason=None,
        detail=None, time="2026-11-30T00:00:00.000000Z", received_at=1.5, forged=True,
        forged_reason="key_mismatch", pending_key="QkJC", signed_high="2026-11-30T00:00:00.000000Z",
    )  # fmt: skip
    async with ConfigStore(matrix_database) as store:
        await store.save_instances([report], [], [first])
        assert await store.instances() == [report]
        audit = AuditEntry(actor="admin", action="instance.key.approve", service="svc")
        await store.pin_instance_key(approved, audit)
        await store.save_instances([], [], [first])  # a late first-use batch: approval wins
        await store.save_instances([], [("svc", "i-1")])
        assert await store.instances() == []
        assert await store.instance_keys() == [approved]
        assert [a.action for a in await store.audit()] == ["instance.key.approve"]
