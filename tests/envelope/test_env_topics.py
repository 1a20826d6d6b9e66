"""Topic names: one builder, a safe character set."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config_lib import (
    InvalidName,
    applied_topic,
    applied_wildcard,
    parse_applied_topic,
    parse_updated_topic,
    sanitize_name,
    updated_topic,
    validate_name,
)


def test_topics_are_built_and_parsed_in_one_place() -> None:
    assert updated_topic("stt") == "config/updated/stt"
    assert applied_topic("stt", "host-1") == "config/applied/stt/host-1"
    assert parse_updated_topic("config/updated/stt") == "stt"
    assert parse_applied_topic("config/applied/stt/host-1") == ("stt", "host-1")


@pytest.mark.parametrize(
    "name",
    [
        "", "a/b", "+", "#", "a+b", "a#", " x", "x y", "-lead", "_lead", "é", "a" * 65,
        "a\x00b", "dot.svc", "a*", "*", "a:b", "a,b", "a;b", "a\tb", "a\\b", "a$b", "a%b",
    ],
)  # fmt: skip
def test_unsafe_names_are_refused_with_a_clear_error(name: str) -> None:
    with pytest.raises(InvalidName, match="invalid service name"):
        updated_topic(name)
    with pytest.raises(ValueError, match="invalid"):  # InvalidName is also a ValueError
        validate_name(name)
    with pytest.raises(InvalidName, match="invalid instance name"):
        applied_topic("stt", name)
    with pytest.raises(InvalidName):
        applied_wildcard(name)


@pytest.mark.parametrize("name", ["a", "A-1", "stt", "svc_2", "0x", "a" * 64, "my-svc-1"])
def test_portable_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name
    assert updated_topic(name) == f"config/updated/{name}"


def test_a_dot_is_refused_and_the_error_says_why() -> None:
    with pytest.raises(InvalidName) as info:
        validate_name("dot.svc")
    text = str(info.value)
    assert "'dot.svc'" in text
    assert "contains '.'" in text
    assert "A-Z a-z 0-9 '_' '-'" in text
    with pytest.raises(InvalidName, match="at most 64"):
        validate_name("a" * 65)
    with pytest.raises(InvalidName, match="start with a letter or digit"):
        validate_name("-a")


def test_parsing_refuses_topics_with_dotted_levels() -> None:
    with pytest.raises(InvalidName):
        parse_updated_topic("config/updated/dot.svc")
    with pytest.raises(InvalidName):
        parse_applied_topic("config/applied/stt/host.example")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web1.example.com", "web1-example-com"),
        ("a..b", "a-b"),
        ("-x-", "x"),
        ("._", "instance"),
        ("é", "instance"),
        ("a" * 70, "a" * 64),
        ("ab" + "." * 70, "ab"),
    ],
)
def test_sanitize_name_always_gives_a_valid_name(text: str, expected: str) -> None:
    assert sanitize_name(text) == expected
    assert validate_name(sanitize_name(text)) == expected


@pytest.mark.parametrize("topic", ["config/updated/", "config/updated/a/b", "other/stt"])
def test_bad_topics_are_refused(topic: str) -> None:
    with pytest.raises(InvalidName):
        parse_updated_topic(topic)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=100))
def test_sanitize_name_of_any_text_is_valid_and_validate_agrees_with_the_alphabet(
    text: str,
) -> None:
    assert validate_name(sanitize_name(text)) == sanitize_name(text)
    allowed = set(string.ascii_letters + string.digits + "_-")
    portable = 1 <= len(text) <= 64 and set(text) <= allowed and text[0] not in "_-"
    if portable:
        assert validate_name(text) == text
    else:
        with pytest.raises(InvalidName):
            validate_name(text)
