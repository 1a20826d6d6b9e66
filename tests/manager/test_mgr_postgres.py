"""The manager on PostgreSQL: migrations per dialect, the one-shot copy from SQLite, a
real manager on PostgreSQL beside another store (replicas), settings, CLI errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mgr_harness import RunningManager, eventually, put, watch
from mgr_models import DemoConfig

from config_manager import ManagerSettings
from config_manager.__main__ import main
from config_manager.broker import free_port
from config_manager.db import migrations
from config_manager.dialects import DIALECTS, PostgresUrl, open_sync
from config_manager.store import AuditEntry, ConfigStore, NewVersion
from config_manager.tokens import Role, create_token_sync
from tests.postgres import PostgresServer


def test_both_dialects_ship_the_same_migrations() -> None:
    """A schema change is one number written for both (config_manager/migrations/README.md)."""
    names = {dialect: [name for _, name, _ in migrations(dialect)] for dialect in DIALECTS}
    assert names["sqlite"], "no migrations found"
    assert names["sqlite"] == names["postgresql"], (
        "config_manager/migrations/sqlite and /postgresql must hold the same files: "
        f"only SQLite: {sorted(set(names['sqlite']) - set(names['postgresql']))}, "
        f"only PostgreSQL: {sorted(set(names['postgresql']) - set(names['sqlite']))}"
    )


def test_the_database_url_setting_is_checked_and_never_shown(tmp_path: Path) -> None:
    settings = ManagerSettings(
        data_dir=tmp_path, database_url="postgresql://cfg:hunter2-secret@db.example:5433/cfg"
    )
    target = settings.database
    assert isinstance(target, PostgresUrl)
    assert "hunter2" not in str(target)
    assert "hunter2" not in repr(target)
    assert str(target) == "postgresql://cfg:***@db.example:5433/cfg"
    assert "hunter2" not in repr(settings)
    assert ManagerSettings(data_dir=tmp_path).database == tmp_path / "manager.db"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        ManagerSettings(data_dir=tmp_path, database_url="mysql://x@y/z")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """``python -m config_manager ARGS`` in this process (its exit code and output); an
    exception escaping ``main`` (a traceback on the command line) fails the test."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return Run(code, out, err)


async def _filled_sqlite(path: Path) -> None:
    """A SQLite database with history on two services, a retired one, a token, an audit
    entry, one version published and the latest still pending in the outbox."""
    create_token_sync(path, "ops", Role.editor, services=["svc-a"])
    async with ConfigStore(path) as store:
        await store.write([NewVersion("svc-a", 0, {"n": 1})], actor="t")
        first = await store.write(
            [NewVersion("svc-a", 1, {"n": 2}), NewVersion("svc-b", 0, {"m": "x"})], actor="t"
        )
        await store.mark_published([item.id for item in await store.pending(10)][:2])
        await store.retire("svc-b", audit=AuditEntry(actor="t", action="config.retire"))
        await store.write([NewVersion("svc-a", 2, {"n": 3})], actor="t", bump_epoch=True)
        assert first[0].version == 2


async def _snapshot(target: Path | PostgresUrl) -> dict[str, Any]:
    async with ConfigStore(target) as store:
        rows, head, count = await store.chain()
        return {
            "current": [
                (v.service, v.version, v.values, v.epoch) for v in await store.current_all()
            ],
            "retired": sorted(store.retired()),
            "epoch": await store.epoch(),
            "chain": (head, count, [r["row_hash"] for r in rows]),
            "pending": [(p.service, p.version) for p in await store.pending(100)],
            "tokens": [(t.name, t.role, t.services) for t in await store.tokens()],
            "audit": sorted(a.action for a in await store.audit(limit=100)),
        }


async def test_copy_to_postgres_copies_everything_once(
    tmp_path: Path, postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "manager.db"
    await _filled_sqlite(source)
    before = await _snapshot(source)
    target = postgres.new_database()

    done = _cli(capsys, "copy-to-postgres", "--from", str(source), "--to", target.url)
    assert done.returncode == 0, done.stderr
    assert "copied" in done.stdout
    assert "2 outbox rows still to publish" in done.stdout

    after = await _snapshot(target)
    assert after["audit"] == sorted([*before["audit"], "database.copy"])
    for key in ("current", "retired", "epoch", "chain", "pending", "tokens"):
        assert after[key] == before[key], key
    async with ConfigStore(target) as store:  # and the copy keeps working
        [stored] = await store.write([NewVersion("svc-a", 3, {"n": 4})], actor="t")
        assert stored.version == 4
        assert (await store.pending(10))[-1].id == stored.outbox_id

    # Not empty now: refused, clearly, and nothing changes; --replace copies again.
    again = _cli(capsys, "copy-to-postgres", "--from", str(source), "--to", target.url)
    assert again.returncode == 1
    assert "is not empty" in again.stderr
    assert "--replace" in again.stderr
    assert "Traceback" not in again.stderr
    assert (await _snapshot(target))["current"][0][1] == 4
    replaced = _cli(
        capsys, "copy-to-postgres", "--from", str(source), "--to", target.url, "--replace"
    )
    assert replaced.returncode == 0, replaced.stderr
    assert (await _snapshot(target))["current"] == before["current"]


def test_copy_to_postgres_refuses_bad_input_in_one_line(
    tmp_path: Path, postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    target = postgres.new_database()
    missing = _cli(
        capsys, "copy-to-postgres", "--from", str(tmp_path / "nope.db"), "--to", target.url
    )
    assert missing.returncode == 1
    assert "no such SQLite file" in missing.stderr
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all")
    refused = _cli(capsys, "copy-to-postgres", "--from", str(junk), "--to", target.url)
    assert refused.returncode == 1
    assert "not a SQLite database" in refused.stderr
    other = tmp_path / "other.db"
    with open_sync(other) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
    foreign = _cli(capsys, "copy-to-postgres", "--from", str(other), "--to", target.url)
    assert foreign.returncode == 1
    assert "not a config manager database" in foreign.stderr
    no_target = _cli(capsys, "copy-to-postgres", "--from", str(other), "--to", "mysql://a@b/c")
    assert no_target.returncode == 1
    assert "not a PostgreSQL URL" in no_target.stderr
    source = tmp_path / "manager.db"
    create_token_sync(source, "ops", Role.viewer)
    url = f"postgresql://postgres:pw-do-not-show@127.0.0.1:{free_port()}/x"
    down = _cli(capsys, "copy-to-postgres", "--from", str(source), "--to", url)
    assert down.returncode == 1
    assert "pw-do-not-show" not in down.stderr + down.stdout
    for result in (missing, refused, foreign, no_target, down):
        assert "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


async def test_a_manager_serves_and_publishes_from_postgresql(
    manager_factory: Callable[..., RunningManager],
    postgres: PostgresServer,
    broker: Any,
    keys: Any,
    service_name: str,
) -> None:
    url = postgres.new_database()
    models = {service_name: DemoConfig}
    first = manager_factory(mqtt_url=broker.url("manager"), models=models, database_url=url.url)
    assert not first.settings.db_file.exists()  # nothing went to the SQLite file
    async with watch(broker, keys.trust, service_name) as watcher, first.client("editor") as http:
        resp = await put(http, service_name, {"rate": 22050, "api_key": "pg-secret-1234"}, 0)
        assert resp.status_code == 200, resp.text
        assert resp.json()["publication"] == "published"
        envelope = await watcher.next()
        assert (envelope.version, envelope.config["rate"]) == (1, 22050)
        stale = await put(http, service_name, {"rate": 8000}, 0)
        assert stale.status_code == 412, stale.text

    # Replicas: a second store on the same database sees what the first stored; the
    # manager's cache follows the other's writes (LISTEN/NOTIFY) and it publishes them.
    async with ConfigStore(url) as other, watch(broker, keys.trust, service_name) as watcher:
        assert (await other.current(service_name)) is not None
        values = {**(await other.current(service_name)).values, "rate": 9000}  # type: ignore[union-attr]
        [stored] = await other.write([NewVersion(service_name, 1, values)], actor="t")
        envelope = await watcher.until_version(2)
        assert envelope[-1].config["rate"] == 9000
        async with first.client("viewer") as http:

            async def followed() -> bool:
                got = await http.get(f"/api/v1/configs/{service_name}")
                return bool(got.json()["version"] == stored.version)

            await eventually(followed)
    first.stop()
    # Restarted on the same database, it serves what is stored there.
    again = manager_factory(
        mqtt_url=broker.url("manager"),
        models=models,
        data_dir=first.data_dir,
        database_url=url.url,
        tokens=first.tokens,
    )
    async with again.client("viewer") as http:
        got = await http.get(f"/api/v1/configs/{service_name}")
        assert got.status_code == 200
        assert (got.json()["version"], got.json()["values"]["rate"]) == (2, 9000)
    with open_sync(url) as db:
        assert db.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")[0][0] == 0


def test_token_and_epoch_commands_follow_the_database_url(
    tmp_path: Path,
    postgres: PostgresServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = postgres.new_database()
    monkeypatch.setenv("CONFIG_MANAGER_DATABASE_URL", url.url)
    made = _cli(capsys, "token", "--data-dir", str(tmp_path), "create", "--role", "viewer", "v1")
    assert made.returncode == 0, made.stderr
    shown = _cli(capsys, "epoch", "show", "--data-dir", str(tmp_path))
    old = int(shown.stdout)
    bumped = _cli(capsys, "epoch", "bump", "--data-dir", str(tmp_path))
    assert bumped.returncode == 0
    assert bumped.stdout.startswith(f"epoch {old} -> ")
    with open_sync(url) as db:
        assert db.execute("SELECT name, role FROM tokens") == [("v1", "viewer")]
        assert int(db.execute("SELECT value FROM meta WHERE key = 'epoch'")[0][0]) > old
        actions = [r[0] for r in db.execute("SELECT action FROM audit ORDER BY id")]
        assert actions == ["token.create", "epoch.bump"]
    twice = _cli(capsys, "token", "--data-dir", str(tmp_path), "create", "--role", "viewer", "v1")
    assert twice.returncode == 1
    assert "already exists" in twice.stderr
    assert not (tmp_path / "manager.db").exists()
