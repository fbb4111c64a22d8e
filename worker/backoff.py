"""One pure backoff function, shared by the HTTP client's retries and the poll schedule."""

from __future__ import annotations

import random
from collections.abc import Callable

Uniform = Callable[[float, float], float]


def backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    factor: float = 2.0,
    floor: float = 0.0,
    jitter: float = 0.2,
    uniform: Uniform = random.uniform,
) -> float:
    """Delay before try ``attempt`` (0-based): ``base * factor**attempt`` capped at ``cap``,
    spread by +/- ``jitter`` (a fraction) and never under ``floor``.

    Proportional jitter (not AWS "full" jitter) keeps a poll from landing at 0 s while still
    spreading a fleet's retries; ``uniform`` is injectable so tests are deterministic.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    raw = min(cap, base * factor ** min(attempt, 64))
    if jitter:
        raw *= 1.0 + uniform(-jitter, jitter)
    return max(floor, min(cap, raw))
