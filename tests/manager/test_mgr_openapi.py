"""The OpenAPI document tells the truth: schemathesis fuzzes the real manager over HTTP.

A manager served by uvicorn over real HTTP (a real SQLite file, the session's real
mosquitto, admin token) is fuzzed with every check of schemathesis (pinned in
pyproject.toml): stateless (the stateful phase is off), from a fixed seed and derandomized
with no example database, so CI sends the very requests a developer's run sent. Each
operation is its own pytest test (one to a few seconds each).

Services: the test model (every kind of field, a secret included) and the orchestrator's
real model from the entry points. The stt model is left out to stay within the time
budget (its PUT/PATCH/validate alone triple the run); its typed bodies are checked in
``test_every_registered_service_gets_typed_bodies``.

Token creation and revocation are fuzzed too: the manager's tokens have random names no
generator hits, so nothing the fuzzer does can lock it out.

Excluded, with the reason:

* ``DELETE /api/v1/configs/{service}`` retires the service for good: every later write to
  it is a 409, so the rest of the run would test nothing (its own tests are in
  test_mgr_retire.py). Destructive routes are the only exclusions.

The fuzzed manager runs without rate limits (one client sends ~1500 requests a minute,
unauthenticated ones included, which the auth-failure limit would answer with 429 where
the checks expect 401); the limits have their own tests.

What the checks cannot know, and how it is handled (no check is disabled):

* ``If-Match`` semantics: a positive (schema-valid) write needs the *current* version,
  which a stateless generator cannot know. Positive write cases get the current ETag
  (read just before), so they exercise real writes; the generated values go to the
  negative cases.
* ``Idempotency-Key`` semantics: a key reused with another body is refused (422), and
  the generator repeats its values. Positive cases get a fresh key each.
* ``missing_required_header`` expects a status from a fixed list that lacks 428
  (Precondition Required, RFC 6585), the right answer to a write without ``If-Match``:
  428 is added to its expected statuses.
* ``positive_data_acceptance`` and rules JSON Schema cannot express: a model's own
  validators (the orchestrator's "the buffer holds a chunk plus its overlap") and the
  cross-service rules refuse some schema-valid configs with 422 (also when rolled back
  to), a preset is a fixed change those rules may refuse, and an import must carry a
  valid signature and hash chain. 422 is added to the statuses this check
  accepts on the writes of services whose models have validators, on preset application
  and on import; a model without validators (the test model) must accept every
  schema-valid config. An import's rows hold free-form documents, whose numbers must be
  I-JSON (within ±(2^53-1)) which no schema of a free-form object can say: 400 is
  accepted there too.
"""

from __future__ import annotations

import secrets
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from mgr_harness import RunningManager, start_manager, write_keys
from mgr_models import DemoConfig
from pydantic import BaseModel
from schemathesis import GenerationMode

from config_manager import ManagerSettings, SchemaRegistry, create_app
from config_manager.tokens import Role, create_token_sync

SEED = 20261129
MAX_EXAMPLES = 10
FUZZED_SERVICES = ("demo", "orchestrator")


def _models(names: tuple[str, ...] = FUZZED_SERVICES) -> dict[str, type[BaseModel]]:
    registry = SchemaRegistry.from_entry_points()
    registry.register("demo", DemoConfig)
    models: dict[str, type[BaseModel]] = {}
    for name in names:
        model = registry.get(name)
        assert model is not None, f"{name} is not registered"
        models[name] = model
    return models


def _document(models: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """The document a manager with ``models`` serves, built without serving it."""
    with tempfile.TemporaryDirectory() as folder:
        settings = ManagerSettings(data_dir=Path(folder), mqtt_url="mqtt://u:p@127.0.0.1:1")
        return create_app(settings, registry=SchemaRegistry(models)).openapi()


def _has_validators(model: type[BaseModel]) -> bool:
    decorators = model.__pydantic_decorators__
    if decorators.model_validators or decorators.field_validators:
        return True
    nested = [f.annotation for f in model.model_fields.values()]
    return any(
        isinstance(t, type) and issubclass(t, BaseModel) and _has_validators(t) for t in nested
    )


RULED = [name for name, model in _models().items() if _has_validators(model)]
RULED_WRITES = (
    rf"^/api/v1/(configs/({'|'.join(RULED)})(/validate|/rollback)?|presets/.*)$"
)

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            "missing_required_header": {"expected-statuses": [400, 401, 403, 406, 415, 422, 428]},
        },
        "operations": [
            {
                "include-path-regex": RULED_WRITES,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", 401, 403, 404, 409, 422, 429]
                    }
                },
            },
            {
                "include-path": "/api/v1/import",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", 400, 401, 403, 404, 409, 422, 429]
                    }
                },
            },
        ],
    }
)
schema = schemathesis.openapi.from_dict(_document(_models()), config=CONFIG).exclude(
    method="DELETE", path_regex=r"^/api/v1/configs/[^/]+$"
)


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, broker: Any, keys: Any
) -> Iterator[RunningManager]:
    data: Path = tmp_path_factory.mktemp("fuzz")
    write_keys(data, keys)
    db = ManagerSettings(data_dir=data, mqtt_url=broker.url("manager")).db_file
    # Token names no generator will hit, so a fuzzed DELETE /tokens/{name} cannot revoke them.
    suffix = secrets.token_hex(8)
    tokens = {
        role.value: create_token_sync(db, f"fuzz-{role.value}-{suffix}", role) for role in Role
    }
    running = start_manager(
        data,
        mqtt_url=broker.url("manager"),
        models=_models(),
        tokens=tokens,
        rate_limit_auth_failures="",
        rate_limit_writes="",
    )
    yield running
    running.stop()


def test_the_fuzzed_document_is_the_served_one(fuzzed: RunningManager) -> None:
    served = httpx.get(f"{fuzzed.base_url}/openapi.json", timeout=10).json()
    assert served == _document(_models())


def _current_etag(fuzzed: RunningManager, path: str) -> str:
    service = path.split("/")[4]
    got = httpx.get(
        f"{fuzzed.base_url}/api/v1/configs/{service}",
        headers={"Authorization": f"Bearer {fuzzed.tokens['admin']}"},
        timeout=10,
    )
    return got.headers.get("ETag", "0") if got.status_code == 200 else "0"


def _call(case: schemathesis.Case, fuzzed: RunningManager) -> None:
    if (
        case.meta is not None
        and case.meta.generation.mode is GenerationMode.POSITIVE
        and case.operation.path.startswith("/api/v1/configs/")
        and case.method.upper() in ("PUT", "PATCH", "POST")
    ):
        etag = _current_etag(fuzzed, case.operation.path)
        case.headers = {**(case.headers or {}), "If-Match": etag}
    if (
        case.meta is not None
        and case.meta.generation.mode is GenerationMode.POSITIVE
        and "Idempotency-Key" in (case.headers or {})
    ):
        case.headers = {**(case.headers or {}), "Idempotency-Key": uuid.uuid4().hex}
    REQUESTS[f"{case.operation.method.upper()} {case.operation.path}"] += 1
    case.call_and_validate(
        base_url=fuzzed.base_url,
        headers={"Authorization": f"Bearer {fuzzed.tokens['admin']}"},
    )


REQUESTS: Counter[str] = Counter()  # operation -> requests sent (checks may send more)


@schema.parametrize()
def test_fuzz(case: schemathesis.Case, fuzzed: RunningManager) -> None:
    _call(case, fuzzed)


def test_every_operation_was_fuzzed(request: pytest.FixtureRequest) -> None:
    """Runs after the fuzz tests (file order): every operation selected got requests."""
    selected = {
        item.name[len("test_fuzz[") : -1]
        for item in request.session.items
        if item.name.startswith("test_fuzz[")
    }
    if not selected:
        pytest.skip("no fuzz test was selected in this run")
    documented = {
        f"{method.upper()} {path}"
        for path, ops in schema.raw_schema["paths"].items()
        for method in ops
    }
    assert selected <= documented
    missing = sorted(selected - set(REQUESTS))
    assert not missing, f"never fuzzed: {missing}"
    print(f"schemathesis: {sum(REQUESTS.values())} cases on {len(selected)} operations")


def test_every_registered_service_gets_typed_bodies() -> None:
    """Every entry-point service (stt included) has its schema as the body of its writes."""
    doc = _document(_models(("demo", "orchestrator", "stt")))
    schemas = doc["components"]["schemas"]
    for service in ("demo", "orchestrator", "stt"):
        put = doc["paths"][f"/api/v1/configs/{service}"]["put"]
        patch = doc["paths"][f"/api/v1/configs/{service}"]["patch"]
        ref = put["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{service}.config"
        patch_ref = patch["requestBody"]["content"]["application/merge-patch+json"]["schema"]
        assert patch_ref["$ref"] == f"#/components/schemas/{service}.merge-patch"
        assert schemas[f"{service}.config"]["properties"]
        assert "required" not in schemas[f"{service}.merge-patch"]
        for op in (put, patch):
            names = {p["name"]: p["required"] for p in op["parameters"]}
            assert names == {"If-Match": True, "Idempotency-Key": False}
