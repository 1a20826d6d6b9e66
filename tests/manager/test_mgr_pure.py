"""Pure logic, no IO: JSON Merge Patch, If-Match parsing, applied reports, secret schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mgr_models import DemoConfig

from config_lib import SigningKey, sign_report
from config_manager.instances import InstanceTracker
from config_manager.merge_patch import merge_patch
from config_manager.problems import Problem
from config_manager.registry import SchemaRegistry, secret_schema
from config_manager.tokens import Role
from config_manager.writes import etag_for, parse_if_match

# RFC 7396, appendix A: (target, patch, result).
RFC7396_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC7396_EXAMPLES)
def test_merge_patch_follows_rfc_7396(target: Any, patch: Any, result: Any) -> None:
    before = json.dumps(target)
    assert merge_patch(target, patch) == result
    assert json.dumps(target) == before  # the target is not modified


@pytest.mark.parametrize(
    ("header", "version"),
    [("7", 7), ('"7"', 7), ('W/"7"', 7), ('"1795000000.7"', 7), (" 0 ", 0)],
)
def test_if_match_forms(header: str, version: int) -> None:
    assert parse_if_match(header, 1795000000) == version


def test_if_match_refusals() -> None:
    with pytest.raises(Problem) as missing:
        parse_if_match(None, 1)
    assert missing.value.status == 428
    for bad in ("abc", '"1.x"', "-1"):
        with pytest.raises(Problem) as info:
            parse_if_match(bad, 1)
        assert info.value.status == 400
    assert parse_if_match('"5.3"', 6) == -1  # another epoch's ETag never matches
    assert etag_for(6, 3) == '"6.3"'


def test_instance_tracker_keeps_the_latest_report_and_forgets_on_empty() -> None:
    tracker = InstanceTracker()
    key = SigningKey.generate()
    report = {"instance": "a", "service": "svc", "status": "applied", "version": 3, "epoch": 9,
              "reason": None, "time": "2026-11-30T00:00:00.000000Z"}  # fmt: skip
    assert tracker.handle("config/applied/svc/a", sign_report(report, key), 1.0)
    other = {**report, "instance": "b", "status": "rejected", "version": None, "reason": "x"}
    assert tracker.handle("config/applied/svc/b", sign_report(other, SigningKey.generate()), 2.0)
    assert [r.instance for r in tracker.for_service("svc")] == ["a", "b"]
    assert tracker.for_service("svc")[0].version == 3
    assert not any(r.forged for r in tracker.for_service("svc"))
    for topic, payload in (
        ("config/applied/svc", b"{}"),
        ("config/applied/svc/c/extra", b"{}"),
    ):
        assert tracker.handle(topic, payload, 3.0) is None
    for payload, reason in (
        (b"not json", "malformed"),
        (b"[1]", "malformed"),
        (b"{" + b" " * 20_000 + b"}", "too_large"),
        (b'{"status": "applied"}', "unsigned"),
    ):
        shown = tracker.handle("config/applied/svc/c", payload, 3.0)
        assert shown is not None
        assert (shown.status, shown.forged, shown.forged_reason) == ("unknown", True, reason)
    assert tracker.handle("config/applied/svc/a", b"", 4.0) is None  # retained report cleared
    assert [r.instance for r in tracker.for_service("svc")] == ["b", "c"]


def test_secret_fields_are_marked_in_the_schema() -> None:
    schema = secret_schema(DemoConfig)
    assert schema["properties"]["api_key"]["x-secret"] is True
    assert "x-secret" not in schema["properties"]["label"]


def test_registry_refuses_bad_names_and_non_models() -> None:
    registry = SchemaRegistry({"svc-ok": DemoConfig})
    assert list(registry) == ["svc-ok"]
    with pytest.raises(ValueError, match="invalid service name"):
        registry.register("bad/name", DemoConfig)
    with pytest.raises(TypeError):
        registry.register("svc-x", dict)  # type: ignore[arg-type]


def test_roles_are_ordered() -> None:
    assert Role.admin.allows(Role.editor)
    assert Role.editor.allows(Role.viewer)
    assert not Role.viewer.allows(Role.editor)
