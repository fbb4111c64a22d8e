"""The Akool webhook receiver: a small WSGI app at ``POST /akool/webhook``.

``akool-audio webhook --port N`` serves it with the stdlib (threaded); for a real server point
gunicorn or uwsgi at ``worker.web.webhook:application``. ``GET /healthz`` answers ``ok``.

A callback is verified and decrypted (``worker.akool.crypto.open_envelope``: signature over the
clientId, AES with the client secret), deduplicated per (akool id, status), mapped to our job,
and on status 3 or 4 the job is completed at once: status 3 is recorded like a poll that saw it
(the job moves to downloading) and the download and finish are enqueued; status 4 fails the job
and enqueues the finish. The poll that is still scheduled then finds the job done and stops.
Status 1 and 2 change nothing. Polling stays the safety net: a lost callback costs latency only.

Answers: 200 for anything handled (including duplicates and non-terminal statuses), 400 for a
garbled body, 401 for a bad signature or a body our keys cannot decrypt, 404 for an akool id we
do not know (yet: a callback can beat the create answer, so Akool's retry may find it), 413 for
a body over 64 KB. Nothing secret and no payload is logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from config.settings import Settings, SettingsError, get_settings
from worker.akool.crypto import WebhookEnvelope, WebhookError, open_envelope
from worker.akool.models import AudioStatus
from worker.jobs import ErrorCode, JobStore

log = logging.getLogger("akool_audio.webhook")

PATH = "/akool/webhook"
MAX_BODY = 64 * 1024
SEEN_TTL = 7 * 86400
StartResponse = Callable[..., Any]
Enqueue = Callable[[str], None]


@dataclass(frozen=True)
class Answer:
    status: int
    message: str


def _keys(settings: Settings) -> tuple[str, str]:
    secret = settings.akool_client_secret or settings.akool_api_key
    if not settings.akool_client_id or not secret:
        raise SettingsError(
            "the webhook receiver needs AKOOL_CLIENT_ID and AKOOL_CLIENT_SECRET (or AKOOL_API_KEY, "
            "which is the same value) to verify and decrypt Akool's callbacks"
        )
    return settings.akool_client_id, secret


class Receiver:
    """Handles one decoded callback body; free of HTTP so it is easy to reason about."""

    def __init__(self, jobs: JobStore, settings: Settings, enqueue: Enqueue) -> None:
        self.jobs = jobs
        self.client_id, self.secret = _keys(settings)
        self.enqueue = enqueue

    def handle(self, body: bytes) -> Answer:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return Answer(400, "body is not JSON")
        try:
            WebhookEnvelope.from_json(doc)
        except WebhookError as exc:
            return Answer(400, str(exc))
        try:  # well formed, but not signed with our clientId or not encrypted with our secret
            payload = open_envelope(doc, self.client_id, self.secret)
        except WebhookError as exc:
            return Answer(401, str(exc))
        akool_id, raw_status = payload.get("_id"), payload.get("status")
        if not isinstance(akool_id, str) or not akool_id or len(akool_id) > 64:
            return Answer(400, "payload has no _id")
        if isinstance(raw_status, bool) or raw_status not in list(AudioStatus):
            return Answer(400, "payload status is not 1-4")
        status = AudioStatus(raw_status)
        if not status.is_final:
            return Answer(200, f"status {int(status)} noted")
        job_id = self.jobs.job_for_akool_id(akool_id)
        if job_id is None:
            return Answer(404, "unknown akool id")
        if not self.jobs.first_callback(akool_id, status, job_id, SEEN_TTL):
            return Answer(200, "duplicate")
        try:
            return self._complete(job_id, akool_id, status, payload.get("url"))
        except Exception:
            self.jobs.forget_callback(akool_id, status)  # let Akool's retry try again
            raise

    def _complete(self, job_id: str, akool_id: str, status: AudioStatus, url: Any) -> Answer:
        job = self.jobs.find(job_id)
        if job is None:
            return Answer(200, "job record expired")
        if job.state.is_final or job.state.is_fetching:
            return Answer(200, f"job already {job.state.value}")
        now = time.time()
        if status is AudioStatus.COMPLETED:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return Answer(400, "status 3 without a url")
            self.jobs.record_poll(job_id, status, url, now, counted=False)
        else:
            self.jobs.record_poll(job_id, status, None, now, counted=False)
            self.jobs.fail(
                job_id,
                ErrorCode.AKOOL_FAILED,
                f"Akool reported status 4 (failed) for audio {akool_id}",
            )
        self.enqueue(job_id)
        log.info("job %s completed by webhook (akool status %d)", job_id, status)
        return Answer(200, "ok")


def _enqueue_continuation(job_id: str) -> None:
    # Imported here: the receiver's own tests need neither the Celery app nor its settings.
    from tasks.chains import continuation
    from worker.services import services

    svc = services()
    continuation(svc.jobs.get(job_id), 0.0).apply_async()


class WebhookApp:
    """The WSGI callable."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> WebhookApp:
        from worker.services import redis_client

        s = settings or get_settings()
        jobs = JobStore(redis_client(s.redis_url), s)
        return cls(Receiver(jobs, s, _enqueue_continuation))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        if path == "/healthz" and method in ("GET", "HEAD"):
            return _answer(start_response, 200, "ok")
        if path != PATH:
            return _answer(start_response, 404, "not found")
        if method != "POST":
            return _answer(start_response, 405, "use POST", [("Allow", "POST")])
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _answer(start_response, 400, "bad content-length")
        if length > MAX_BODY:
            return _answer(start_response, 413, "body too large")
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            outcome = self.receiver.handle(body)
        except Exception:
            log.exception("webhook handling failed")  # a traceback, never the body
            return _answer(start_response, 500, "internal error")
        if outcome.status != 200:
            log.warning("webhook refused: %s %s", outcome.status, outcome.message)
        return _answer(start_response, outcome.status, outcome.message)


def _answer(
    start_response: StartResponse,
    status: int,
    message: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = json.dumps({"status": status, "message": message}).encode()
    reasons = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
    reasons.update({405: "Method Not Allowed", 413: "Payload Too Large", 500: "Error"})
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(f"{status} {reasons.get(status, 'Error')}", headers + (extra or []))
    return [body]


def serve(host: str, port: int, app: WebhookApp | None = None) -> None:
    """Serve with the stdlib's WSGI server, one thread per request, until interrupted."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    server = make_server(
        host, port, app or WebhookApp.from_settings(), server_class=Server, handler_class=Handler
    )
    print(f"webhook receiver listening on http://{host}:{server.server_port}{PATH}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def __getattr__(name: str) -> Any:
    # gunicorn/uwsgi read ``worker.web.webhook:application``; built on first access so importing
    # this module (tests, the CLI's --help) needs no settings.
    if name == "application":
        app = WebhookApp.from_settings()
        globals()["application"] = app
        return app
    raise AttributeError(name)
