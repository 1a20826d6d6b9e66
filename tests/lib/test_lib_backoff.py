"""The one retry policy: capped exponential backoff with jitter."""

from __future__ import annotations

import pytest

from config_lib import Backoff


def test_delays_double_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(0.2, 1.0)
    nominal = [0.2, 0.4, 0.8, 1.0, 1.0]
    for expected in nominal:
        wait = backoff.next_delay()
        assert expected / 2 <= wait <= expected


def test_reset_starts_again_from_the_initial_delay() -> None:
    backoff = Backoff(0.1, 10.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(0, 1)
    with pytest.raises(ValueError, match="initial"):
        Backoff(2, 1)
