"""Error texts name the place and never show Python internals; 405 names the allowed methods.

Every body below is sent over real HTTP to a real manager; each answer must be a 4xx
problem+json whose ``detail`` says where the problem is (line and column, or the member's
path) and contains none of the phrases Python's own exceptions use.
"""

from __future__ import annotations

from typing import Any

import pytest
from mgr_harness import RunningManager

PROBLEM = "application/problem+json"
# Phrases of Python's exceptions that must never reach a client.
INTERNALS = (
    "sys.set_int_max_str_digits",
    "Exceeds the limit",
    "integer string conversion",
    "maximum recursion depth",
    "codec can't decode",
    "Traceback",
    "Expecting value: line",  # json's text without our framing
    "object_pairs_hook",
    "ValueError",
    "RecursionError",
)

DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    ("raw", "status", "where"),
    [
        pytest.param(b'{"rate": ' + b"9" * 5000 + b"}", 400, "body.rate", id="5000-digit-int"),
        pytest.param(b'{"rate": -' + b"9" * 400 + b"}", 400, "body.rate", id="400-digit-negative"),
        pytest.param(b'{"tags": [1e300]}', 422, "tags.0", id="big-float-is-valid-json"),
        pytest.param(b'{"nested": {"threshold": 1e999}}', 400, "body.nested.threshold", id="1e999"),
        pytest.param(b'{"tags": ["a", -1e400]}', 400, "body.tags.1", id="-1e400-in-list"),
        pytest.param(b'{"rate": NaN}', 400, "NaN", id="nan"),
        pytest.param(b'{"rate": Infinity}', 400, "Infinity", id="infinity"),
        pytest.param(b'{"rate": 1, "rate": 2}', 400, "'rate' appears twice", id="dup-key"),
        pytest.param(b'{"rate": 16000', 400, "line 1, column", id="truncated"),
        pytest.param(b'{"rate": 16000,\n "label": }', 400, "line 2, column", id="missing-value"),
        pytest.param(b"\xff\xfe{}", 400, "byte 0", id="not-utf8"),
        pytest.param(DEEP, 400, "nested deeper than", id="deep-nesting"),
        pytest.param(b"", 400, "line 1, column 1", id="empty"),
        pytest.param(b'{"rate": "16000"}', 422, "rate", id="string-for-int"),
        pytest.param(b'{"rate": 16000.5}', 422, "rate", id="fraction-for-int"),
        pytest.param(b'{"rate": true}', 422, "rate", id="bool-for-int"),
        pytest.param(
            b'{"rate": 99999999999999999999}',
            400,
            "body.rate: 99999999999999999999 is out",
            id="beyond-2**53",
        ),
        pytest.param(b'{"rate": 100000}', 422, "rate", id="int-out-of-model-range"),
        pytest.param(b'{"label": ' + b'"x' * 1 + b"y" * 300 + b'"}', 422, "label", id="too-long"),
        pytest.param(b'{"nested": []}', 422, "nested", id="list-for-object"),
        pytest.param(b"[1, 2]", 422, "a config must be a JSON object", id="list-body"),
        pytest.param(b"null", 422, "a config must be a JSON object", id="null-body"),
    ],
)
async def test_bad_bodies_get_clear_located_errors(
    manager: RunningManager, service_name: str, raw: bytes, status: int, where: str
) -> None:
    async with manager.client("editor") as http:
        resp = await http.put(
            f"/api/v1/configs/{service_name}",
            content=raw,
            headers={"If-Match": "0", "Content-Type": "application/json"},
        )
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"].startswith(PROBLEM)
        detail = resp.json()["detail"]
        assert where in detail, detail
        for phrase in INTERNALS:
            assert phrase not in resp.text, f"{phrase!r} leaked: {detail}"


async def test_an_integral_decimal_is_an_integer(
    manager: RunningManager, service_name: str
) -> None:
    """JSON has one number type: 16000.0 and 1.6e4 are the integer 16000 (as in JSON Schema)."""
    async with manager.client("editor") as http:
        resp = await http.put(
            f"/api/v1/configs/{service_name}",
            content=b'{"rate": 1.6e4}',
            headers={"If-Match": "0", "Content-Type": "application/json"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["values"]["rate"] == 16000


@pytest.mark.parametrize(
    ("url", "status", "where"),
    [
        ("/api/v1/services/{s}/versions?limit=" + "9" * 5000, 422, "query.limit"),
        ("/api/v1/services/{s}/versions?limit=abc", 422, "query.limit"),
        ("/api/v1/services/{s}/versions?limit=0", 422, "query.limit"),
        ("/api/v1/services/{s}/versions?limt=5", 422, "query.limt: unknown query parameter"),
    ],
)
async def test_bad_query_parameters_are_named(
    manager: RunningManager, service_name: str, url: str, status: int, where: str
) -> None:
    async with manager.client("viewer") as http:
        resp = await http.get(url.format(s=service_name))
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"].startswith(PROBLEM)
        assert where in resp.json()["detail"]
        for phrase in INTERNALS:
            assert phrase not in resp.text


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        (b'{"name": "x", "role": "root"}', 422, "body.role"),
        (b'{"name": "x"}', 422, "body.role"),
        (b'{"name": "x", "role": "viewer", "extra": 1}', 422, "body.extra"),
        (b'{"name": ' + b"1" * 5000 + b', "role": "viewer"}', 400, "body.name"),
        (b'{"name": "x", "role": "viewer"', 400, "line 1, column"),
    ],
)
async def test_token_bodies_go_through_the_same_checks(
    manager: RunningManager, body: bytes, status: int, where: str
) -> None:
    async with manager.client("admin") as http:
        resp = await http.post(
            "/api/v1/tokens", content=body, headers={"Content-Type": "application/json"}
        )
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"].startswith(PROBLEM)
        assert where in resp.json()["detail"], resp.json()["detail"]
        for phrase in INTERNALS:
            assert phrase not in resp.text


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/api/v1/configs/{s}", "GET, PUT, PATCH, DELETE"),
        ("DELETE", "/api/v1/configs/{s}/validate", "POST"),
        ("GET", "/api/v1/configs/{s}/validate", "POST"),
        ("PUT", "/api/v1/services", "GET"),
        ("PATCH", "/api/v1/tokens", "GET, POST"),
        ("GET", "/api/v1/tokens/someone", "DELETE"),
        ("POST", "/metrics", "GET"),
        ("POST", "/index.html", "GET, HEAD"),
    ],
)
async def test_405_names_every_allowed_method(
    manager: RunningManager, service_name: str, method: str, path: str, allow: str
) -> None:
    async with manager.client("admin") as http:
        resp = await http.request(method, path.format(s=service_name))
        assert resp.status_code == 405, resp.text
        assert resp.headers["content-type"].startswith(PROBLEM)
        assert resp.headers["allow"] == allow


async def test_unknown_paths_stay_404(manager: RunningManager) -> None:
    async with manager.client("admin") as http:
        for path in ("/api/v1/nothing", "/no-such-file.js"):
            resp = await http.get(path)
            assert resp.status_code == 404, (path, resp.text)


def _problem_ref(op: dict[str, Any], status: str) -> str:
    return str(op["responses"][status]["content"][PROBLEM]["schema"]["$ref"])


async def test_every_error_response_is_a_documented_problem(
    manager: RunningManager, service_name: str
) -> None:
    """Each operation documents its 4xx as problem+json; writes document If-Match as required."""
    async with manager.client("") as http:
        doc = (await http.get("/openapi.json")).json()
    assert "Problem" in doc["components"]["schemas"]
    paths = doc["paths"]
    for path, ops in paths.items():
        for method, op in ops.items():
            for status in op["responses"]:
                if status.startswith("4"):
                    assert _problem_ref(op, status) == "#/components/schemas/Problem"
            if op.get("security"):
                assert "401" in op["responses"], (method, path)
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= set(op["responses"]), (method, path)
    config = paths[f"/api/v1/configs/{service_name}"]
    for method in ("put", "patch"):
        params = {p["name"]: p for p in config[method]["parameters"]}
        assert params["If-Match"]["required"] is True
        assert params["Idempotency-Key"]["required"] is False
        assert {"412", "428"} <= set(config[method]["responses"])
    assert "application/merge-patch+json" in config["patch"]["requestBody"]["content"]
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4"]
    async with manager.client("") as http:
        served = await http.get("/metrics")
    assert served.headers["content-type"].startswith("text/plain; version=0.0.4")
