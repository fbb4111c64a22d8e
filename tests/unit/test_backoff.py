"""backoff(): exponential, capped, proportional jitter, with the randomness injected."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.backoff import Uniform, backoff


def fixed(value: float) -> Uniform:
    """A ``uniform`` that always picks ``value`` scaled into its range (-1 low .. +1 high)."""

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * (value + 1) / 2

    return uniform


TABLE = [
    # attempt, base, cap, factor, floor, jitter, pick (-1 low, 0 mid, +1 high), expected
    (0, 0.25, 2.0, 2.0, 0.0, 0.2, 0.0, 0.25),
    (1, 0.25, 2.0, 2.0, 0.0, 0.2, 0.0, 0.5),
    (2, 0.25, 2.0, 2.0, 0.0, 0.2, 0.0, 1.0),
    (3, 0.25, 2.0, 2.0, 0.0, 0.2, 0.0, 2.0),
    (4, 0.25, 2.0, 2.0, 0.0, 0.2, 0.0, 2.0),  # capped
    (1000, 0.25, 2.0, 2.0, 0.0, 0.2, 0.0, 2.0),  # huge attempts do not overflow
    (0, 0.25, 2.0, 2.0, 0.0, 0.2, -1.0, 0.2),  # -20 %
    (0, 0.25, 2.0, 2.0, 0.0, 0.2, 1.0, 0.3),  # +20 %
    (3, 0.25, 2.0, 2.0, 0.0, 0.2, 1.0, 2.0),  # jitter never pushes past the cap
    (3, 0.25, 2.0, 2.0, 0.0, 0.2, -1.0, 1.6),  # but can bring a capped delay under it
    (0, 0.25, 2.0, 2.0, 0.5, 0.2, -1.0, 0.5),  # floor
    (0, 2.0, 10.0, 1.5, 0.0, 0.0, 1.0, 2.0),  # no jitter: uniform unused
    (2, 2.0, 10.0, 1.5, 0.0, 0.0, 0.0, 4.5),
    (5, 2.0, 10.0, 1.5, 0.0, 0.0, 0.0, 10.0),
    (2, 1.0, 100.0, 3.0, 0.0, 0.0, 0.0, 9.0),
]


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "factor", "floor", "jitter", "pick", "expected"), TABLE
)
def test_backoff_table(
    attempt: int,
    base: float,
    cap: float,
    factor: float,
    floor: float,
    jitter: float,
    pick: float,
    expected: float,
) -> None:
    got = backoff(
        attempt,
        base=base,
        cap=cap,
        factor=factor,
        floor=floor,
        jitter=jitter,
        uniform=fixed(pick),
    )
    assert got == pytest.approx(expected)


def test_uniform_is_called_with_the_jitter_range() -> None:
    calls: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        calls.append((low, high))
        return 0.0

    backoff(1, base=1.0, cap=10.0, jitter=0.3, uniform=uniform)
    assert calls == [(-0.3, 0.3)]


def test_no_jitter_never_calls_uniform() -> None:
    def uniform(low: float, high: float) -> float:
        raise AssertionError("uniform must not be called")

    assert backoff(2, base=1.0, cap=10.0, jitter=0.0, uniform=uniform) == 4.0


def test_a_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff(-1, base=1.0, cap=2.0)


@given(attempt=st.integers(0, 10_000), base=st.floats(0.001, 10), cap=st.floats(0.001, 100))
def test_delay_stays_within_cap_with_real_randomness(attempt: int, base: float, cap: float) -> None:
    assert 0.0 <= backoff(attempt, base=base, cap=cap) <= cap
