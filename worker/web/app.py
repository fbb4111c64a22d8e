"""The web service: one Flask app with the ``/v1`` jobs API, ``/metrics``, ``/v1/stats``,
``/v1/schedules``, ``/healthz``, Akool's webhook at ``/akool/webhook`` and the dashboard's pages
(``/``, ``/jobs/<job_id>``, ``/fleet``, ``/login``: worker/web/pages.py).

``create_app(settings)`` builds it (the token check refuses to start without API_TOKENS unless
API_AUTH=off). Production points gunicorn at ``worker.web.app:application`` (the Procfile's
``web``, with worker/web/gunicorn_conf.py); ``akool-audio web`` is the threaded development
server. Each request is logged once: method, path without its query, status and milliseconds;
never a header or a body.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import redis
from flask import Flask, Response, jsonify

from config.settings import Settings, SettingsError, get_settings
from worker.web import api, apirate, bearer, deps, edges, jsonerrors, pages, session, webhook

log = logging.getLogger("akool_audio.web")
access_log = logging.getLogger("akool_audio.access")

MAX_BODY = 64 * 1024
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Blueprints other modules add, registered when their module is there; each module's ``bp``
# carries its own paths (under /v1 or /metrics, so the token check covers them).
OPTIONAL_BLUEPRINTS = (
    "worker.web.observe",
    "worker.web.schedules_api",
    "worker.web.follow",
    "worker.web.results",
    "worker.web.batches",
)
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def create_app(settings: Settings | None = None, *, require_webhook: bool = False) -> Flask:
    """The web service's app. Raises SettingsError without API tokens (unless API_AUTH=off),
    and without Akool's keys when Akool is told to call back (PUBLIC_BASE_URL) or
    ``require_webhook``: the receiver then could not check a single callback."""
    s = settings or get_settings()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["SETTINGS"] = s
    app.json.sort_keys = False  # type: ignore[attr-defined]
    jsonerrors.install(app)
    bearer.check_settings(s)
    edges.install(app, s)  # first: a foreign Host is refused before anything else runs
    d = deps.build(s)
    app.extensions[deps.EXTENSION] = d
    sessions = session.install(app, d.redis, s)
    bearer.install(app, s, session_ok=sessions.api_allowed, throttle=sessions.throttle)
    apirate.install(app, d.redis, s)  # after the token check: only callers let in count
    app.register_blueprint(webhook.blueprint(_receiver(d, require_webhook)))
    app.register_blueprint(api.bp)
    for name in OPTIONAL_BLUEPRINTS:
        module = _optional(name)
        if module is not None:
            app.register_blueprint(module.bp)
    app.register_blueprint(pages.bp)
    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.wsgi_app = AccessLog(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _receiver(d: deps.Deps, required: bool) -> webhook.Receiver | None:
    try:
        return webhook.Receiver(
            d.jobs,
            d.settings,
            webhook.continuation_enqueuer(d.jobs),
            webhook.duration_learner(d.estimator),
        )
    except SettingsError:
        if required or d.settings.public_base_url:
            raise
        log.warning("no Akool keys: /akool/webhook answers 503 (Akool is not told to call)")
        return None


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def healthz() -> tuple[Response, int]:
    """``ok`` while Redis answers; 503 (still JSON) when it does not. Open, no token."""
    try:
        deps.deps().redis.ping()
    except redis.RedisError:
        return jsonify({"status": "unavailable", "redis": "unreachable"}), 503
    return jsonify({"status": "ok", "redis": "ok"}), 200


def _printable(text: str, limit: int = 200) -> str:
    """``text`` with anything that could forge a log line (CR, LF, controls) percent-encoded."""
    return quote(text[:limit], safe="/:@!$&'()*+,;=-._~")


class AccessLog:
    """One INFO line per request: method, path (no query string), status, milliseconds."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        status = ["-"]

        def record(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = code.split(" ", 1)[0]
            return start_response(code, headers, exc_info)

        try:
            return self.app(environ, record)
        finally:
            access_log.info(
                "%s %s %s %.1fms",
                _printable(str(environ.get("REQUEST_METHOD", "-")), 16),
                _printable(str(environ.get("PATH_INFO", ""))),
                status[0],
                (time.perf_counter() - started) * 1000,
            )


def configure_logging() -> None:
    """INFO lines of ours on stderr (unless logging is configured already)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def __getattr__(name: str) -> Any:
    # gunicorn reads ``worker.web.app:application`` (with getattr): built on first access, in
    # each worker after the fork, so importing this module needs no settings.
    if name == "application":
        configure_logging()
        built = create_app()
        globals()["application"] = built
        return built
    raise AttributeError(name)
