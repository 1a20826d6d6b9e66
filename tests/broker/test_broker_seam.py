"""The broker seam's translation of the project's ACL (no broker needed)."""

from __future__ import annotations

import re

import pytest

from tests.brokers import Rights, acl_rights, topic_filter_regex


def test_acl_rights_follow_the_template() -> None:
    assert acl_rights("svc-1") == Rights(
        read=(
            "config/keyset",
            "config/updated/svc-1",
            "config/freshness/svc-1",
            "config/report/svc-1",
        ),
        write=("config/applied/svc-1/#",),
    )
    manager = acl_rights("manager")
    assert "config/applied/#" in manager.read
    assert "config/updated/#" in manager.write
    assert "config/keyset" in manager.write
    assert acl_rights("debug").write == ("config/applied/debug/#",)  # patterns apply to all
    assert "config/#" in acl_rights("debug").read


@pytest.mark.parametrize(
    ("filters", "allowed", "refused"),
    [
        (
            ["config/updated/svc-1"],
            ["config.updated.svc-1"],
            ["config.updated.svc-12", "config.updated.svc-1.x", "config.updated.#"],
        ),
        (
            ["config/applied/svc-1/#"],
            ["config.applied.svc-1.i1", "config.applied.svc-1", "config.applied.svc-1.#"],
            ["config.applied.svc-2.i1", "config.applied.svc-10.i1"],
        ),
        (["config/+/x"], ["config.updated.x", "config.*.x"], ["config.updated.y", "config.x"]),
        ([], [], ["config.updated.a", "config.#"]),
    ],
)
def test_topic_filters_become_routing_key_regexes(
    filters: list[str], allowed: list[str], refused: list[str]
) -> None:
    regex = re.compile(topic_filter_regex(filters))
    for key in allowed:
        assert regex.search(key), key
    for key in refused:
        assert not regex.search(key), key
