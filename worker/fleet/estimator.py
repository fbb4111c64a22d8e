"""How long will Akool take? A duration model learned from text length and recent history, and
the poll schedule it implies.

Durations are modelled as ``(base + per_word * words) * F`` with ``F`` lognormal: the linear part
is fitted by least squares on the most recent samples (kept in one capped Redis list that every
worker shares), and ``sigma`` is the spread of ``log(observed / fitted)``. Polls then land at
quantiles of that distribution: the first a little before the expected time (``LEAD`` sigmas),
each next one a fixed factor later (``STEP`` in log time), so the detection delay stays a small
share of the job's duration and the number of polls does not grow with it. Without enough
history the caller keeps its plain backoff schedule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

LEAD = 1.0  # first poll at exp(-LEAD * sigma) of the expected duration
STEP_PER_SIGMA = 0.65  # each later poll exp(STEP) later, STEP = sigma * this, clamped below
# A completion is noticed at most exp(STEP) - 1 of its duration late, plus the poll's own lag:
# MIN_STEP 0.075 (7.8 %) and LEAD 1.0 keep the 95th percentile under 10 % for spreads up to
# sigma 0.12, at about 2.9 polls per job (0.12 and 0.7 gave 12.4 % at 2.1 polls, simulated
# for sigma 0.1). Wider spreads step further: polls per job stay bounded, detection trades.
MIN_STEP, MAX_STEP = 0.075, 0.5
MIN_SIGMA, MAX_SIGMA = 0.05, 1.5

Sample = tuple[int, float]  # (words, seconds)


@dataclass(frozen=True)
class Model:
    base: float
    per_word: float
    sigma: float
    samples: int

    def expected(self, words: int) -> float:
        """The median duration for a text of ``words`` words."""
        return max(0.1, self.base + self.per_word * max(0, words))

    @property
    def step(self) -> float:
        return min(MAX_STEP, max(MIN_STEP, self.sigma * STEP_PER_SIGMA))


def fit(samples: Sequence[Sample], min_samples: int = 8) -> Model | None:
    """Least-squares ``seconds ~ base + per_word * words`` with both terms kept >= 0."""
    points = [(w, d) for w, d in samples if d > 0 and w >= 0]
    n = len(points)
    if n < min_samples:
        return None
    mw = sum(w for w, _ in points) / n
    md = sum(d for _, d in points) / n
    sww = sum((w - mw) ** 2 for w, _ in points)
    swd = sum((w - mw) * (d - md) for w, d in points)
    per_word = swd / sww if sww > 0 else 0.0
    base = md - per_word * mw
    if per_word < 0:  # longer texts are not faster: fall back to a constant
        per_word, base = 0.0, md
    elif base < 0:  # through the origin
        per_word = sum(w * d for w, d in points) / max(1e-9, sum(w * w for w, _ in points))
        base = 0.0
    model = Model(base, per_word, 0.0, n)
    logs = [math.log(d / model.expected(w)) for w, d in points]
    mean = sum(logs) / n
    sigma = math.sqrt(sum((x - mean) ** 2 for x in logs) / max(1, n - 1))
    # Least squares fits the mean; a lognormal's median sits exp(mean of logs) from it.
    scale = math.exp(mean)
    return Model(base * scale, per_word * scale, min(MAX_SIGMA, max(MIN_SIGMA, sigma)), n)


def first_delay(model: Model, words: int, *, floor: float, cap: float) -> float:
    """Seconds from submission to the first poll."""
    return max(floor, min(cap, model.expected(words) * math.exp(-LEAD * model.sigma)))


def next_delay(model: Model, words: int, elapsed: float, *, floor: float, cap: float) -> float:
    """Seconds from a poll that found the job unfinished, ``elapsed`` s after submission, to
    the next: geometric in time, so each poll covers the same share of the distribution. A job
    first polled before there was a model (or too early) skips ahead to where it would be."""
    elapsed = max(0.0, elapsed)
    due = max(elapsed * math.exp(model.step), model.expected(words) * math.exp(-LEAD * model.sigma))
    return max(floor, min(cap, due - elapsed))


def observed_duration(
    submitted_at: float, previous_poll_at: float | None, detected_at: float
) -> float:
    """Best guess of when a job finished: it lies between the last poll that saw it unfinished
    and the one that saw it done. With no earlier poll only the upper bound is known."""
    if previous_poll_at is None or previous_poll_at <= submitted_at:
        return detected_at - submitted_at
    return (previous_poll_at + detected_at) / 2 - submitted_at


class Estimator:
    """The shared history in Redis and a model fitted from it, cached per process for ``ttl``
    seconds so that a poll costs no extra round trip."""

    def __init__(
        self,
        r: redis.Redis,
        key: str,
        *,
        max_samples: int = 200,
        min_samples: int = 8,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.r = r
        self.key = key
        self.max_samples = max_samples
        self.min_samples = min_samples
        self.ttl = ttl
        self.clock = clock
        self._model: Model | None = None
        self._fetched = -math.inf

    def observe(self, words: int, seconds: float) -> None:
        if seconds <= 0:
            return
        pipe = self.r.pipeline(transaction=False)
        pipe.lpush(self.key, f"{int(words)} {seconds:.3f}")
        pipe.ltrim(self.key, 0, self.max_samples - 1)
        pipe.execute()

    def samples(self) -> list[Sample]:
        out: list[Sample] = []
        for raw in self.r.lrange(self.key, 0, self.max_samples - 1):
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                w, d = text.split()
                out.append((int(w), float(d)))
            except ValueError:
                continue
        return out

    def model(self) -> Model | None:
        now = self.clock()
        # No model yet: look again sooner, so the first history is used as soon as it exists.
        ttl = self.ttl if self._model is not None else min(self.ttl, 1.0)
        if now - self._fetched >= ttl:
            self._model = fit(self.samples(), self.min_samples)
            self._fetched = now
        return self._model
