"""The fleet at a glance over HTTP: ``GET /v1/stats`` (JSON, worker/web/stats.py) and
``GET /metrics`` (Prometheus' text format, worker/web/metrics.py). Thin views over those plain
functions; the app wraps both routes in its Bearer auth.

What the views read is taken once per app from the app's services (worker/web/deps.py, else
the process's), or given with ``install``."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from worker.services import Services, services
from worker.web import deps, metrics, stats
from worker.web.jsonerrors import error_body
from worker.web.stats import LiveWorkers, Sources, broker_app

log = logging.getLogger(__name__)

bp = Blueprint("observe", __name__)
EXTENSION = "akool_audio.observe"
_build = threading.Lock()


@dataclass(frozen=True)
class Observed:
    sources: Sources
    registry: CollectorRegistry


def sources_from(svc: Services) -> Sources:
    """What the views read, from ``svc``: its Redis, job store, shared rate limiter, and the
    live workers on its broker."""
    return Sources(
        r=svc.redis,
        settings=svc.settings,
        jobs=svc.jobs,
        limiter=svc.limiter,
        workers=LiveWorkers(broker_app(svc.settings)),
    )


def install(app: Flask, sources: Sources) -> None:
    """Serve the statistics of ``sources`` from ``app``."""
    app.extensions[EXTENSION] = Observed(sources, metrics.registry(sources))


def _observed() -> Observed:
    app = current_app
    with _build:
        if EXTENSION not in app.extensions:
            base = app.extensions.get(deps.EXTENSION)  # the app's own settings, when it has them
            install(app, sources_from(base.services if base is not None else services()))
        observed: Observed = app.extensions[EXTENSION]
    return observed


@bp.get("/v1/stats")
def get_stats() -> Response:
    return jsonify(stats.stats(_observed().sources))


@bp.get("/metrics")
def get_metrics() -> Response:
    return Response(metrics.render(_observed().registry), content_type=CONTENT_TYPE_LATEST)


@bp.errorhandler(redis.RedisError)
def _redis_down(exc: redis.RedisError) -> tuple[Response, int]:
    log.warning("statistics unavailable: %s: %s", type(exc).__name__, exc)
    return jsonify(error_body(503, "Redis is unavailable; try again shortly")), 503
