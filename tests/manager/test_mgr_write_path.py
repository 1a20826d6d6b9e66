"""The write path's building blocks (issue 14): transaction scripts, the relaxed marks, the
rate limiter's sweep, the redacted diff from given plaintexts.

Marked ``db_matrix``: the script tests run on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, SecretStr

from config_lib import DataKey, encrypt_secrets
from config_manager.api import configs
from config_manager.api.lean import LeanRoute, _plan
from config_manager.dialects import (
    Script,
    Statement,
    Target,
    database_errors,
    is_integrity_error,
    open_database,
)
from config_manager.diffs import redacted_diff
from config_manager.problems import Problem, install_problem_handlers
from config_manager.ratelimit import RateLimits


def _script(log: list[str]) -> Script[tuple[int, list[tuple[Any, ...]]]]:
    """Inserts, a refused insert caught inside the script, a query; returns what it saw."""
    yield Statement("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    count = yield Statement("INSERT INTO t (k, v) VALUES (?, ?), (?, ?)", ("a", 1, "b", 2))
    try:
        yield Statement("INSERT INTO t (k, v) VALUES (?, ?)", ("a", 3))
    except database_errors() as exc:
        log.append("integrity" if is_integrity_error(exc) else "other")
    rows = yield Statement("SELECT k, v FROM t ORDER BY k", rows=True)
    return count, rows


@pytest.mark.db_matrix
async def test_a_script_runs_in_order_sees_results_and_catches_errors(
    matrix_database: Target,
) -> None:
    db = await open_database(matrix_database)
    try:
        log: list[str] = []
        count, rows = await db.run_script(_script(log))
        assert count == 2
        assert rows == [("a", 1), ("b", 2)]
        assert log == ["integrity"]
    finally:
        await db.close()


@pytest.mark.db_matrix
async def test_an_error_the_script_does_not_catch_reaches_the_caller_and_rolls_back(
    matrix_database: Target,
) -> None:
    db = await open_database(matrix_database)
    try:
        await db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")

        def failing() -> Script[None]:
            yield from db.begin_script()
            yield Statement("INSERT INTO t (k) VALUES (?)", ("x",))
            yield Statement("INSERT INTO t (k) VALUES (?)", ("x",))  # a duplicate key
            yield Statement("COMMIT")

        with pytest.raises(database_errors()) as caught:
            await db.run_script(failing())
        assert is_integrity_error(caught.value)
        assert db.in_transaction  # the caller rolls back (as the store does)
        await db.rollback()
        assert await db.fetchall("SELECT k FROM t") == []
    finally:
        await db.close()


@pytest.mark.db_matrix
async def test_a_relaxed_script_restores_durability(matrix_database: Target) -> None:
    db = await open_database(matrix_database)
    setting = "PRAGMA synchronous" if db.dialect == "sqlite" else "SHOW synchronous_commit"
    try:
        before = await db.fetchall(setting)
        await db.execute("CREATE TABLE t (k TEXT)")
        await db.execute("INSERT INTO t (k) VALUES ('a'), ('b')")
        count = await db.run_script(db.relaxed_script(Statement("UPDATE t SET k = 'c'")))
        assert count == 2
        assert await db.fetchall(setting) == before
        # A failing statement: its error reaches the caller, durability restored all the same.
        with pytest.raises(database_errors()):
            await db.run_script(db.relaxed_script(Statement("UPDATE no_such_table SET k = 1")))
        assert await db.fetchall(setting) == before
    finally:
        await db.close()


async def test_the_store_writes_a_group_in_one_script(tmp_path: Any) -> None:
    """Marks go through the same relaxed script; the schema's triggers still apply."""
    from config_manager.store import ConfigStore, NewVersion, VersionConflict

    async with ConfigStore(tmp_path / "manager.db") as store:
        [v1] = await store.write([NewVersion("svc", 0, {"a": 1})], actor="t")
        with pytest.raises(VersionConflict):
            await store.write([NewVersion("svc", 0, {"a": 2})], actor="t")
        [v2] = await store.write([NewVersion("svc", 1, {"a": 2})], actor="t")
        assert (v1.version, v2.version) == (1, 2)
        assert await store.outbox_depth() == 2
        await store.mark_published([v for v in (v1.outbox_id, v2.outbox_id) if v is not None])
        assert await store.outbox_depth() == 0
        rows = await store.conn.fetchall("PRAGMA synchronous")
        assert rows == [(2,)]  # FULL again after the relaxed marks


async def test_a_lone_writers_transaction_runs_on_the_event_loops_thread(tmp_path: Any) -> None:
    """SQLite: a group of one commits without a hand-over to the connection's thread (the
    same statements, durable: on disk for a second connection); a group of several, or a
    script while another operation is on that thread, is handed over."""
    import sqlite3
    import threading

    from config_manager.dialects import SqliteDatabase
    from config_manager.store import ConfigStore, NewVersion, WriteMember

    threads: list[str] = []

    def script(n: int) -> Script[int]:
        threads.append(threading.current_thread().name)
        rows = yield Statement("SELECT ?", (n,), rows=True)
        return int(rows[0][0])

    async with ConfigStore(tmp_path / "manager.db") as store:
        db = store.conn
        assert isinstance(db, SqliteDatabase)
        loop_thread = threading.current_thread().name
        assert await db.run_script(script(1), inline=True) == 1
        assert await db.run_script(script(2)) == 2
        # another operation on the connection's thread: the script waits its turn there
        reading = asyncio.ensure_future(db.fetchall("SELECT 1"))
        await asyncio.sleep(0)
        assert await db.run_script(script(3), inline=True) == 3
        await reading
        assert threads[0] == loop_thread
        assert loop_thread not in threads[1:]

        ran: list[bool] = []
        original = db.run_script

        async def spying(script: Script[Any], *, inline: bool = False) -> Any:
            ran.append(inline)
            return await original(script, inline=inline)

        db.run_script = spying  # type: ignore[method-assign]
        await store.write([NewVersion("svc", 0, {"a": 1})], actor="t")
        members = [
            WriteMember((NewVersion("one", 0, {"b": 1}),), "t"),
            WriteMember((NewVersion("two", 0, {"c": 1}),), "t"),
        ]
        outcomes = await store.write_group(members)
        assert ran == [True, False]
        assert all(not isinstance(o, BaseException) for o in outcomes)
    with sqlite3.connect(tmp_path / "manager.db") as other:
        stored = other.execute("SELECT service, version FROM versions ORDER BY service")
        assert stored.fetchall() == [("one", 1), ("svc", 1), ("two", 1)]


async def test_the_write_limit_holds_while_the_sweep_runs_at_most_once_a_second() -> None:
    limits = RateLimits(auth_failures="", writes="5/second")
    storage = limits._limiter.storage
    for _ in range(5):
        await limits.write("editor")
    with pytest.raises(Problem) as refused:
        await limits.write("editor")
    assert refused.value.status == 429
    # One sweep task for all these hits (the library would start one per hit).
    first = storage.timer
    assert first is not None
    await asyncio.sleep(0)
    await limits.write("other")
    assert storage.timer is first
    await limits.write("other")
    assert storage.timer is first


class _Secretive(BaseModel):
    name: str = "x"
    level: float = 1.0
    flag: bool = True
    token: SecretStr = SecretStr("s1")
    nested: dict[str, Any] = {}


def test_a_diff_from_given_plaintexts_equals_the_decrypted_one() -> None:
    key = DataKey.from_bytes("svc", b"\x01" * 32)
    old = encrypt_secrets(_Secretive(nested={"a": [1, 2]}), service="svc", key=key)
    new = encrypt_secrets(
        _Secretive(name="y", level=1, token=SecretStr("s2"), nested={"a": [1, 2]}),
        service="svc",
        key=key,
    )
    plain_old = {"name": "x", "level": 1.0, "flag": True, "token": "s1", "nested": {"a": [1, 2]}}
    plain_new = {"name": "y", "level": 1.0, "flag": True, "token": "s2", "nested": {"a": [1, 2]}}
    decrypted = redacted_diff("svc", old, new, [key])
    given = redacted_diff("svc", old, new, [key], plain=(plain_old, plain_new))
    assert given == decrypted
    assert {op["path"] for op in given} == {"/name", "/token"}
    assert [op.get("secret") for op in given if op["path"] == "/token"] == ["changed"]
    assert all("s2" not in str(op) for op in given)


def test_a_diff_tells_json_types_apart() -> None:
    """1, 1.0 and true are equal in Python and different in JSON: each is a change."""
    key = DataKey.from_bytes("svc", b"\x01" * 32)
    for before, after, path, value in (
        (1, 1.0, "/v", 1.0),
        (1, True, "/v", True),
        ({"a": 1}, {"a": True}, "/v/a", True),
        ([0], [False], "/v/0", False),
    ):
        patch = redacted_diff("svc", {"v": before}, {"v": after}, [key])
        assert [(op["path"], op["value"]) for op in patch] == [(path, value)]
        assert type(patch[0]["value"]) is type(value)
    assert redacted_diff("svc", {"v": {"a": 1, "b": 2}}, {"v": {"b": 2, "a": 1}}, [key]) == []


def test_the_server_parses_http_with_httptools_on_uvloop() -> None:
    """uvicorn's "auto" choices, which ``python -m config_manager serve`` uses: the C parser
    and event loop are installed with the manager (a fifth less CPU per write)."""
    import asyncio as _asyncio

    import uvicorn
    import uvloop

    config = uvicorn.Config(app=_noop_app)
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    loop = uvloop.new_event_loop()
    try:
        assert isinstance(loop, _asyncio.AbstractEventLoop)
    finally:
        loop.close()


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    return None


# -- LeanRoute: the write routes' dependencies without FastAPI's per-request solver ---------
def test_the_write_routes_are_served_by_a_plan_in_fastapis_order() -> None:
    routes = [r for r in configs.router.routes if isinstance(r, LeanRoute)]
    assert sorted(m for r in routes for m in r.methods or ()) == ["PATCH", "PUT"]
    for route in routes:
        plan = _plan(route.dependant)
        assert plan is not None
        names = [getattr(step.call, "__name__", type(step.call).__name__) for step in plan]
        # router dependency first, then depth first in parameter order, each once
        assert names[0] == "reject_unknown_query"
        assert names[-1] == route.endpoint.__name__
        assert names.index("HTTPBearer") < names.index("read_json_body")
        assert names.index("read_json_body") < names.index("if_match_required")
        assert names.count("get_store") == 1
        assert names.count("read_json_body") == 1


class _Answer(BaseModel):
    name: str
    n: int
    seen: list[str]


_calls: list[str] = []
_bearer = HTTPBearer(auto_error=False)


async def _shared(request: Request) -> str:
    _calls.append("shared")
    return request.headers.get("x-who", "nobody")


async def _checked(
    who: Annotated[str, Depends(_shared)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    _calls.append("checked")
    if creds is None:
        raise Problem(401, "Unauthorized", "send a token", kind="unauthorized")
    return f"{who}:{creds.credentials}"


async def _endpoint(
    name: str,
    token: Annotated[str, Depends(_checked)],
    who: Annotated[str, Depends(_shared)],
    response: Response,
) -> dict[str, Any]:
    response.headers["ETag"] = '"1.2"'
    return {"name": name, "n": len(token), "seen": [who, token], "extra": "dropped"}


async def test_a_lean_route_answers_exactly_as_fastapi_does() -> None:
    """The same endpoint and dependencies behind a LeanRoute and a plain APIRoute: same
    status, body and headers, for an answer and for errors raised by a dependency."""
    app = FastAPI()
    install_problem_handlers(app)
    for prefix, route_class in (("/lean", LeanRoute), ("/full", APIRoute)):
        app.router.add_api_route(
            prefix + "/{name}",
            _endpoint,
            methods=["PUT"],
            response_model=_Answer,
            route_class_override=route_class,
        )
    lean = next(r for r in app.router.routes if isinstance(r, LeanRoute))
    assert _plan(lean.dependant) is not None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for headers in ({"Authorization": "Bearer abc", "X-Who": "ann"}, {}):
            answers = []
            for prefix in ("/lean", "/full"):
                _calls.clear()
                resp = await http.put(f"{prefix}/svc", headers=headers)
                body = resp.content.replace(prefix.encode(), b"/route")  # a problem's instance
                answers.append((resp.status_code, body, dict(resp.headers), _calls[:]))
            assert answers[0] == answers[1]
        assert answers[0][0] == 401
        assert answers[0][3] == ["shared", "checked"]  # a dependency used twice runs once


def test_a_lost_broker_connection_is_a_warning_in_the_publishers_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """paho's socket errors on the publisher's connections (a broker restart) are warnings:
    the publisher retries and says so; any other paho error stays an error."""
    from config_manager.publisher import _MQTT_LOG

    with caplog.at_level(logging.DEBUG, logger=_MQTT_LOG.name):
        _MQTT_LOG.error("failed to receive on socket: %s", "[Errno 104] Connection reset by peer")
        _MQTT_LOG.error("Caught exception in on_connect: %s", "boom")
    levels = [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records]
    assert levels == [
        ("WARNING", "failed to receive on socket"),
        ("ERROR", "Caught exception in on_connect"),
    ]
