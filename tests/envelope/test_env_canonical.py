"""The fast canonical form is RFC 8785's, byte for byte (``rfc8785`` is the reference)."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from config_lib import canonical_bytes

_keys = st.text(max_size=8) | st.sampled_from(["a", "b", "\ue000", "\U0001f600", "é", "A"])
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_the_same_bytes_as_rfc8785(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order differs from code point order
        {"s": "\x00\x1f\x7f\"\\\b\f\n\r\t\u2028"},  # every escape
        {"n": 2**53 - 1, "m": -(2**53) + 1, "f": 1.0, "e": 1e21},
        {"z": -0.0, "w": 2.0**53, "x": 2.0**53 + 2, "t": 1e-4, "u": 9.999e-5, "v": 1e16 + 0.5},
        {"s": 1e-7, "b": 1e20, "c": 123456789012.25, "d": -1.5, "m": 5e-324},
        [True, False, None, (1, 2)],
    ],
)
def test_edge_cases(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


# Floats of every magnitude, from random bit patterns: the fast path writes whole floats
# as integers and fractions as repr does; everything else must go to rfc8785 and agree.
@settings(max_examples=2000, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-(2.0**54), max_value=2.0**54).map(float.__floor__).map(float)
    | st.floats(min_value=1e-6, max_value=1e-3)
)
def test_floats_of_every_magnitude(number: float) -> None:
    value = {"f": number, "l": [number, -number], "n": {"f": number}}
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_the_document_given_is_not_changed() -> None:
    value = {"a": [1.0, 0.5], "b": {"c": -0.0}}
    assert canonical_bytes(value) == b'{"a":[1,0.5],"b":{"c":0}}'
    assert value == {"a": [1.0, 0.5], "b": {"c": -0.0}}
    assert type(value["a"][0]) is float


@pytest.mark.parametrize("value", [{"n": 2**53}, {"s": "\ud800"}, {1: "non-string key"}])
def test_what_rfc8785_refuses_is_refused(value: Any) -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_bytes(value)
