"""The fleet page's throughput chart: jobs finished per minute over the last hour, read from the
per-minute counters every process writes (worker/fleet/counters.py: ``jobs_done:{state}`` in the
hash ``{KEY_PREFIX}:metrics:{minute}``), and the geometry of a small bar chart drawn as inline
SVG by the template (no script, no library)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

from worker.fleet import counters
from worker.jobs import JobState

#: The final states, stacked bottom to top; each its own colour in the stylesheet (``.s-<state>``)
#: and named in the legend.
SERIES = tuple(s.value for s in JobState if s.is_final)
WIDTH, HEIGHT, BAR_GAP = 600.0, 120.0, 1.0


@dataclass(frozen=True)
class Minute:
    minute: int  # epoch seconds // 60
    done: dict[str, int]  # state -> jobs that ended in it during the minute

    @property
    def total(self) -> int:
        return sum(self.done.values())


def throughput(r: redis.Redis, prefix: str, now: float, minutes: int = 60) -> list[Minute]:
    """Jobs finished per minute, oldest first, for the last ``minutes`` minutes (the current
    one included), in one round trip."""
    current = int(now // 60)
    span = list(range(current - minutes + 1, current + 1))
    with r.pipeline(transaction=False) as pipe:
        for minute in span:
            pipe.hmget(counters.bucket_key(prefix, minute), [f"jobs_done:{s}" for s in SERIES])
        rows = cast(list[list[str | None]], pipe.execute())
    return [
        Minute(minute, {s: int(float(v or 0)) for s, v in zip(SERIES, row, strict=True)})
        for minute, row in zip(span, rows, strict=True)
    ]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    count: int
    minute: int


@dataclass(frozen=True)
class Chart:
    width: float
    height: float
    peak: int  # the most jobs in one minute (the top of the scale)
    total: dict[str, int]  # per series over the whole span
    bars: list[Bar]

    @property
    def jobs(self) -> int:
        return sum(self.total.values())


def chart(series: list[Minute], width: float = WIDTH, height: float = HEIGHT) -> Chart:
    """Stacked bars, one column per minute, scaled to the busiest minute."""
    peak = max((m.total for m in series), default=0)
    column = width / max(1, len(series))
    bars: list[Bar] = []
    for i, m in enumerate(series):
        top = height
        for name in SERIES:
            n = m.done.get(name, 0)
            if n <= 0 or peak == 0:
                continue
            h = height * n / peak
            top -= h
            bars.append(
                Bar(
                    round(i * column, 2),
                    round(top, 2),
                    round(max(1.0, column - BAR_GAP), 2),
                    round(h, 2),
                    name,
                    n,
                    m.minute,
                )
            )
    total = {name: sum(m.done.get(name, 0) for m in series) for name in SERIES}
    return Chart(width, height, peak, total, bars)
