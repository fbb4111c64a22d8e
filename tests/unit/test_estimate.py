"""The learned duration model: pure fitting and scheduling, then the shared history in Redis."""

from __future__ import annotations

import math
import random

import pytest
import redis

from worker.fleet.estimator import (
    LEAD,
    MAX_STEP,
    MIN_STEP,
    Estimator,
    Model,
    first_delay,
    fit,
    next_delay,
    observed_duration,
)


def lognormal_samples(
    n: int, base: float, per_word: float, sigma: float
) -> list[tuple[int, float]]:
    rng = random.Random(1)
    out = []
    for _ in range(n):
        w = rng.randrange(10, 400)
        out.append((w, (base + per_word * w) * rng.lognormvariate(0.0, sigma)))
    return out


def test_too_few_samples_give_no_model() -> None:
    assert fit([(10, 1.0)] * 7, min_samples=8) is None
    assert fit([], min_samples=1) is None


def test_exact_linear_data_is_recovered() -> None:
    # Given durations that are exactly 5 s + 0.04 s per word
    samples = [(w, 5.0 + 0.04 * w) for w in range(0, 400, 20)]
    # When fitted
    model = fit(samples)
    # Then the line comes back, with the smallest spread allowed
    assert model is not None
    assert model.base == pytest.approx(5.0, rel=1e-6)
    assert model.per_word == pytest.approx(0.04, rel=1e-6)
    assert model.sigma == pytest.approx(0.05)
    assert model.expected(100) == pytest.approx(9.0)


def test_lognormal_noise_recovers_the_median_and_sigma() -> None:
    model = fit(lognormal_samples(2000, 8.0, 0.025, 0.25))
    assert model is not None
    assert model.expected(200) == pytest.approx(13.0, rel=0.05)
    assert model.sigma == pytest.approx(0.25, rel=0.1)


@pytest.mark.parametrize(
    ("samples", "base", "per_word"),
    [
        # shorter with more words: a constant, the geometric mean (the median of a lognormal)
        ([(10, 9.0), (100, 5.0), (200, 1.0)] * 3, 45 ** (1 / 3), 0.0),
        ([(100, 1.0), (200, 4.0), (300, 6.0)] * 3, 0.0, 0.0196),  # negative intercept: origin
    ],
)
def test_terms_never_go_negative(
    samples: list[tuple[int, float]], base: float, per_word: float
) -> None:
    model = fit(samples)
    assert model is not None
    assert model.base >= 0 and model.per_word >= 0
    assert model.base == pytest.approx(base, abs=0.01)
    assert model.per_word == pytest.approx(per_word, abs=0.005)


@pytest.mark.parametrize(
    ("sigma", "step"), [(0.01, MIN_STEP), (0.25, 0.1625), (0.6, 0.39), (3.0, MAX_STEP)]
)
def test_step_follows_sigma_within_bounds(sigma: float, step: float) -> None:
    assert Model(1.0, 0.0, sigma, 10).step == pytest.approx(step)


def test_first_poll_lands_before_the_median_and_within_bounds() -> None:
    model = Model(10.0, 0.0, 0.25, 50)
    assert first_delay(model, 0, floor=0.5, cap=60) == pytest.approx(10 * math.exp(-LEAD * 0.25))
    assert first_delay(model, 0, floor=0.5, cap=5) == 5
    assert first_delay(Model(0.0, 0.0, 0.25, 50), 0, floor=0.5, cap=60) == 0.5


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (10.0, 10 * (math.exp(0.1625) - 1)),
        (20.0, 20 * (math.exp(0.1625) - 1)),
        (1000.0, 30.0),
        (2.0, 10 * math.exp(-LEAD * 0.25) - 2.0),  # polled early (no model yet): skip ahead
        (0.0, 10 * math.exp(-LEAD * 0.25)),
    ],
)
def test_next_poll_is_geometric_in_time(elapsed: float, expected: float) -> None:
    model = Model(10.0, 0.0, 0.25, 50)
    assert next_delay(model, 0, elapsed, floor=0.5, cap=30.0) == pytest.approx(expected)


def simulate(median: float, sigma: float, n: int = 4000) -> tuple[list[int], list[float]]:
    """Jobs drawn from the distribution a model of ``median`` and ``sigma`` describes, polled
    exactly on its plan: each job's polls and its detection delay as a share of its duration,
    both sorted."""
    model = Model(median, 0.0, sigma, 200)
    rng = random.Random(3)
    polls, shares = [], []
    for _ in range(n):
        duration = median * rng.lognormvariate(0.0, sigma)
        t, k = first_delay(model, 0, floor=0.5, cap=900), 1
        while t < duration:
            t += next_delay(model, 0, t, floor=0.5, cap=30)
            k += 1
        polls.append(k)
        shares.append((t - duration) / duration)
    return sorted(polls), sorted(shares)


def test_schedule_meets_the_poll_targets_on_its_own_distribution() -> None:
    polls, delays = simulate(13.0, 0.25)
    # Then the median and p95 of polls and the median delay are within the targets
    assert polls[len(polls) // 2] <= 3
    assert polls[int(len(polls) * 0.95)] <= 6
    assert delays[len(delays) // 2] <= 0.10


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.12])
def test_the_plan_notices_95_percent_of_jobs_within_10_percent_of_their_duration(
    sigma: float,
) -> None:
    # Jobs of about 120 s (issue 14's capacity target), polled exactly on plan
    polls, shares = simulate(120.0, sigma)
    assert shares[int(0.95 * len(shares))] <= 0.09  # 1 % of the duration left for the lag
    assert polls[len(polls) // 2] <= 3


@pytest.mark.parametrize(("previous", "expected"), [(None, 10.0), (100.0, 10.0), (104.0, 7.0)])
def test_observed_duration_is_the_midpoint_when_bracketed(
    previous: float | None, expected: float
) -> None:
    assert observed_duration(100.0, previous, 110.0) == pytest.approx(expected)


def test_history_is_shared_capped_and_cached(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    now = [0.0]
    one = Estimator(r, "t:estimate", max_samples=20, min_samples=8, ttl=5, clock=lambda: now[0])
    two = Estimator(r, "t:estimate", max_samples=20, min_samples=8, clock=lambda: now[0])
    # Given too little history, no model
    assert one.model() is None
    # When another worker records 30 jobs of 2 s + 0.01 s/word
    for w in range(30):
        two.observe(w * 10, 2.0 + 0.1 * w)
    two.observe(5, 0.0)  # ignored: not a duration
    # Then the list keeps only the newest samples
    assert r.llen("t:estimate") == 20
    # and, junk skipped, the first worker sees them once its cached answer expires
    r.lpush("t:estimate", "junk")
    assert len(one.samples()) == 19
    assert one.model() is None
    now[0] = 1.0  # a missing model is looked for again after a second
    model = one.model()
    assert model is not None
    assert model.per_word == pytest.approx(0.01, rel=0.05)
    assert model.samples == 19
