"""Backoff: declared delays are a floor, growth is exponential and capped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import waypost as wp


def test_exponential_then_capped():
    b = wp.Backoff(initial=1.0, factor=2.0, max=10.0, jitter=False)
    assert [b.base_delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [b.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_factor_one_is_constant():
    b = wp.Backoff(initial=0.3, factor=1.0, max=60.0, jitter=False)
    assert {b.delay(n) for n in range(1, 20)} == {0.3}


def test_jitter_only_lengthens_by_at_most_a_quarter():
    b = wp.Backoff(initial=2.0, factor=3.0, max=100.0, jitter=True)
    assert b.delay(1, rand=0.0) == 2.0
    assert b.delay(2, rand=0.5) == pytest.approx(6.0 * 1.125)
    assert b.delay(2, rand=0.999999) == pytest.approx(7.5, abs=1e-5)
    for n in range(1, 10):
        for _ in range(50):
            d = b.delay(n)
            assert b.base_delay(n) <= d <= b.base_delay(n) * 1.25


def test_defaults():
    b = wp.Backoff()
    assert (b.initial, b.factor, b.max, b.jitter) == (1.0, 2.0, 60.0, True)


@pytest.mark.parametrize("kwargs", [{"initial": -1}, {"factor": 0.5}, {"max": -0.1}])
def test_invalid(kwargs: dict):
    with pytest.raises(ValueError, match="Backoff needs"):
        wp.Backoff(**kwargs)


def test_json_round_trip():
    b = wp.Backoff(initial=0.5, factor=3.0, max=7.0, jitter=False)
    assert b.to_json() == {"initial": 0.5, "factor": 3.0, "max": 7.0, "jitter": False}
    assert wp.Backoff.from_json(b.to_json()) == b


@given(
    initial=st.floats(0, 1000, allow_nan=False),
    factor=st.floats(1, 10, allow_nan=False),
    cap=st.floats(0, 3600, allow_nan=False),
    jitter=st.booleans(),
    failed=st.integers(1, 60),
    rand=st.floats(0, 1, exclude_max=True),
)
def test_delay_is_between_the_declared_delay_and_the_cap(initial, factor, cap, jitter, failed,
                                                         rand):
    b = wp.Backoff(initial=initial, factor=factor, max=cap, jitter=jitter)
    declared = min(initial * factor ** (failed - 1), cap)
    base = b.base_delay(failed)
    assert base == pytest.approx(declared)
    assert base <= cap
    d = b.delay(failed, rand=rand)
    assert base <= d <= base * 1.25 + 1e-9
    if not jitter:
        assert d == base
    # Never shorter than the previous declared delay.
    if failed > 1:
        assert base >= b.base_delay(failed - 1)


@pytest.mark.parametrize("failed", [1100, 5000])
def test_many_failures_stay_at_the_cap(failed: int):
    """A task with thousands of retries: factor ** n overflows a float long before."""
    b = wp.Backoff(initial=1.0, factor=2.0, max=30.0, jitter=False)
    assert b.base_delay(failed) == 30.0
    assert b.delay(failed) == 30.0
