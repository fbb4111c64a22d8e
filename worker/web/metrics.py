"""``GET /metrics``: the fleet's numbers in Prometheus' text format, read from Redis at each
scrape by a custom collector (worker/web/stats.py), so one scrape gives the same numbers
whichever host serves it. The collector lives in a registry of its own: nothing a process
counts for itself is mixed in."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from worker.fleet import counters
from worker.web import stats
from worker.web.stats import Sources

NS = "akool_audio"

# Every metric this collector exposes, by its name without the namespace: (type, HELP).
METRICS = {
    "jobs": ("gauge", "Job records in Redis by state (records expire after the retention period)."),
    "jobs_in_flight": ("gauge", "Jobs not yet in a final state (accepted, submitting, ...)."),
    "jobs_finished": ("counter", "Jobs that reached a final state, counted once each."),
    "jobs_failed": ("counter", "Failed jobs by error code (Akool's numeric code or ours)."),
    "job_duration_seconds": ("histogram", "Seconds from a job's acceptance to its final state."),
    "job_polls": ("histogram", "Status polls a job needed before its final state."),
    "akool_calls": (
        "counter",
        "HTTP exchanges with Akool by endpoint and outcome code (1000 = success; the error's "
        "class name when the answer had no Akool envelope).",
    ),
    "queue_depth": ("gauge", "Messages waiting in each broker queue (all its priority lists)."),
    "queue_oldest_age_seconds": (
        "gauge",
        "Seconds the oldest message of a queue has waited (0 when empty; absent when that "
        "message carries no sent_at stamp: a client other than ours sent it).",
    ),
    "unacked_messages": (
        "gauge",
        "Messages workers took and have not acked (running, prefetched or waiting a countdown).",
    ),
    "ratelimit_waits": ("counter", "Times the shared Akool rate limit sent a job away to wait."),
    "ratelimit_wait_seconds": ("counter", "Seconds jobs were told to wait by the rate limit."),
    "webhook_callbacks": (
        "counter",
        "Akool webhook callbacks by outcome (ok, duplicate, not_final, unknown_id, "
        "bad_signature, bad_request, ...).",
    ),
    "credits": ("counter", "Akool credits reported as spent (API v4; v3 reports none)."),
}
HELP = {short: doc for short, (_, doc) in METRICS.items()}
SUFFIXES = {"gauge": ("",), "counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def sample_names() -> set[str]:
    """Every sample name a scrape can hold (what a dashboard's queries may name)."""
    return {_name(short) + sfx for short, (kind, _) in METRICS.items() for sfx in SUFFIXES[kind]}


def _name(short: str) -> str:
    return f"{NS}_{short}"


def _histogram(
    short: str, fields: dict[str, float], name: str, bounds: tuple[float, ...]
) -> HistogramMetricFamily:
    buckets, running = [], 0.0
    for bound in bounds:
        running += fields.get(f"{name}:{counters.bound_name(bound)}", 0.0)
        buckets.append((counters.bound_name(bound), running))
    buckets.append(("+Inf", fields.get(f"{name}:_count", 0.0)))
    return HistogramMetricFamily(
        _name(short), HELP[short], buckets=buckets, sum_value=fields.get(f"{name}:_sum", 0.0)
    )


def _by_prefix(fields: dict[str, float], prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: v for k, v in fields.items() if k.startswith(prefix)}


class FleetCollector(Collector):
    """Reads the fleet's state from Redis at each scrape (a few pipelined round trips)."""

    def __init__(self, src: Sources) -> None:
        self.src = src

    def collect(self) -> Iterator[Metric]:
        src, now = self.src, time.time()
        fields = stats.totals(src.r, src.settings.key_prefix)
        by_state = src.jobs.counts()

        jobs = GaugeMetricFamily(_name("jobs"), HELP["jobs"], labels=["state"])
        for state, n in sorted(by_state.items()):
            jobs.add_metric([state], n)
        yield jobs
        yield GaugeMetricFamily(
            _name("jobs_in_flight"), HELP["jobs_in_flight"], value=stats.in_flight(by_state)
        )
        yield self._labelled(fields, "jobs_finished", "jobs_done:", "state")
        yield self._labelled(fields, "jobs_failed", "jobs_failed:", "code")
        yield _histogram(
            "job_duration_seconds", fields, counters.DURATION, counters.DURATION_BUCKETS
        )
        yield _histogram("job_polls", fields, counters.POLLS, counters.POLL_BUCKETS)

        calls = CounterMetricFamily(
            _name("akool_calls"), HELP["akool_calls"], labels=["endpoint", "code"]
        )
        for (endpoint, code), n in sorted(stats.akool_calls(fields).items()):
            calls.add_metric([endpoint, code], n)
        yield calls

        queue_states = stats.queues(src.r, src.queues, now)
        depth = GaugeMetricFamily(_name("queue_depth"), HELP["queue_depth"], labels=["queue"])
        age = GaugeMetricFamily(
            _name("queue_oldest_age_seconds"), HELP["queue_oldest_age_seconds"], labels=["queue"]
        )
        for queue, held in queue_states.items():
            depth.add_metric([queue], held.depth)
            if held.oldest_age is not None:
                age.add_metric([queue], held.oldest_age)
        yield depth
        yield age
        yield GaugeMetricFamily(
            _name("unacked_messages"),
            HELP["unacked_messages"],
            value=stats.unacked_count(src.r),
        )

        for short, field in (
            ("ratelimit_waits", counters.RATELIMIT_WAITS),
            ("ratelimit_wait_seconds", counters.RATELIMIT_WAIT_SECONDS),
            ("credits", counters.CREDITS),
        ):
            yield CounterMetricFamily(_name(short), HELP[short], value=fields.get(field, 0.0))
        yield self._labelled(fields, "webhook_callbacks", "webhook:", "outcome")

    @staticmethod
    def _labelled(
        fields: dict[str, float], short: str, prefix: str, label: str
    ) -> CounterMetricFamily:
        family = CounterMetricFamily(_name(short), HELP[short], labels=[label])
        for value, n in sorted(_by_prefix(fields, prefix).items()):
            family.add_metric([value], n)
        return family


def registry(src: Sources) -> CollectorRegistry:
    """A registry of its own holding only the fleet collector."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FleetCollector(src))
    return reg


def render(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)
