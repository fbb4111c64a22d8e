"""What the fleet's metrics are called and where they live in Redis: the hash of each minute's
counts and the all-time hash, the field names, the histograms' buckets, Akool's endpoints by
short name and the outcomes of a webhook answer. Writers (worker/fleet/counters.py) and readers
(worker/web/stats.py, metrics.py, page_fleet.py) share them.

Fields: ``akool:{endpoint}:{code}``, ``ratelimit:waits``, ``ratelimit:wait_seconds``,
``webhook:{outcome}``, ``credits``, ``jobs_done:{state}``, ``jobs_failed:{code}``, and the
histograms ``job_duration:{bound}`` and ``job_polls:{bound}`` (a job counted in the first
bucket it fits, not cumulatively) with ``:_sum`` and ``:_count``.
"""

from __future__ import annotations

import math

from worker.akool import http as akool_http
from worker.akool.speech import APIS

BUCKET_TTL = 2 * 3600
SENT_AT = "sent_at"  # the header our publishers stamp (stamp_sent_at); stats read the age from it

#: Akool's paths by their short names in the metrics, as each API's adapter names them.
ENDPOINTS = {path: name for api in APIS.values() for path, name in api.endpoints.items()}
#: Paths that end in an id: by prefix.
ENDPOINT_PREFIXES = {
    path: name for api in APIS.values() for path, name in api.endpoint_prefixes.items()
}
SUCCESS_CODE = str(akool_http.SUCCESS)
RATELIMIT_WAITS = "ratelimit:waits"
RATELIMIT_WAIT_SECONDS = "ratelimit:wait_seconds"
CREDITS = "credits"
DURATION = "job_duration"
POLLS = "job_polls"
# Upper bounds of the histogram buckets; +Inf is the count.
DURATION_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
POLL_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0)


def bucket_key(prefix: str, minute: int) -> str:
    """The hash of one minute's counts (``minute`` = epoch seconds // 60)."""
    return f"{prefix}:metrics:{minute}"


def total_key(prefix: str) -> str:
    """The hash of all-time counts."""
    return f"{prefix}:metrics:total"


def bound_name(bound: float) -> str:
    """A bucket bound as a field name and Prometheus' ``le`` show it: "5", "0.5", "+Inf"."""
    if math.isinf(bound):
        return "+Inf"
    return str(int(bound)) if bound == int(bound) else repr(bound)


def akool_field(endpoint: str, code: str) -> str:
    return f"akool:{endpoint}:{code}"


def endpoint_of(path: str) -> str:
    """The short name of an Akool path (create, clone, detail, voices, token; v4_tts,
    v4_detail, v4_clone, v4_voices, v4_voice_detail), else "other"."""
    if path in ENDPOINTS:
        return ENDPOINTS[path]
    return next((n for p, n in ENDPOINT_PREFIXES.items() if path.startswith(p)), "other")


def webhook_outcome(status: int, message: str) -> str:
    """The outcome of a webhook answer (worker/web/webhook.py, ``Receiver.handle``): ok,
    duplicate, not_final, already_final, stale (an earlier attempt's), expired, bad_request,
    bad_signature, unknown_id."""
    if status == 200:
        if message in ("ok", "duplicate"):
            return message
        if message.endswith(" noted"):
            return "not_final"
        if message.startswith("job already"):
            return "already_final"
        if message.startswith("stale callback"):
            return "stale"
        return "expired" if message == "job record expired" else "other"
    named = {400: "bad_request", 401: "bad_signature", 404: "unknown_id", 413: "too_large"}
    return named.get(status, f"http_{status}")
