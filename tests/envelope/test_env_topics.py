"""Topic names: one builder, a safe character set."""

from __future__ import annotations

import pytest

from config_lib import (
    InvalidName,
    applied_topic,
    parse_applied_topic,
    parse_updated_topic,
    updated_topic,
    validate_name,
)


def test_topics_are_built_and_parsed_in_one_place() -> None:
    assert updated_topic("stt") == "config/updated/stt"
    assert applied_topic("stt", "host-1") == "config/applied/stt/host-1"
    assert parse_updated_topic("config/updated/stt") == "stt"
    assert parse_applied_topic("config/applied/stt/host-1") == ("stt", "host-1")


@pytest.mark.parametrize(
    "name", ["", "a/b", "+", "#", "a+b", "a#", " x", "x y", "-lead", "é", "a" * 65, "a\x00b"]
)
def test_unsafe_names_are_refused_with_a_clear_error(name: str) -> None:
    with pytest.raises(InvalidName, match="invalid service name"):
        updated_topic(name)
    with pytest.raises(ValueError, match="invalid"):  # InvalidName is also a ValueError
        validate_name(name)


@pytest.mark.parametrize("topic", ["config/updated/", "config/updated/a/b", "other/stt"])
def test_bad_topics_are_refused(topic: str) -> None:
    with pytest.raises(InvalidName):
        parse_updated_topic(topic)
