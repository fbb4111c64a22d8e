"""The Akool webhook receiver at ``POST /akool/webhook``, a blueprint of the web service
(``worker.web.app``; ``akool-audio web``, or ``akool-audio webhook`` for the same service on
``WEBHOOK_HOST``/``WEBHOOK_PORT``). It is open: Akool's own signature is its check.

A callback is verified and decrypted (``worker.akool.crypto.open_envelope``: signature over the
clientId, AES with the client secret), deduplicated per (akool id, status), mapped to our job
(v3 or v4: the audio URL is read from ``url``, else from ``preview``; any ``type`` is accepted),
and on status 3 or 4 the job is completed at once: status 3 is recorded like a poll that saw it
(the job moves to downloading) and the download and finish are enqueued; status 4 fails the job
and enqueues the finish. The poll that is still scheduled then finds the job done and stops.
Status 1 and 2 change nothing. Polling stays the safety net: a lost callback costs latency only.

Answers: 200 for anything handled (including duplicates and non-terminal statuses), 400 for a
garbled body (not JSON, or not the four fields of an envelope), 401 for every envelope that
cannot be opened (a bad signature, bad padding, a payload that is not JSON or has no ``_id`` or
status 1-4), always with one and the same message (``UNOPENED``; the detail is logged): the
signature covers only public values, so distinct answers would make a padding oracle. 404 for
an akool id we do not know (yet: a callback can beat the create answer, so Akool's retry may
find it), 413 for a body over 64 KB, 405 for another method than POST, and 503 when the service
has not the keys to check signatures with. Nothing secret and no payload is logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from config.settings import Settings, SettingsError
from tasks.chains import continuation
from worker.akool.crypto import WebhookEnvelope, WebhookError, open_envelope
from worker.akool.models import AudioStatus
from worker.akool.validation import count_words
from worker.fleet import counters
from worker.fleet.estimator import Estimator
from worker.jobs import ErrorCode, Job, JobStore

log = logging.getLogger("akool_audio.webhook")

PATH = "/akool/webhook"
MAX_BODY = 64 * 1024
SEEN_TTL = 7 * 86400
# All but POST: 405, in our own words; OPTIONS answers itself, or Flask's would list them all.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: The one answer to an envelope that cannot be opened, whatever the reason (see handle).
UNOPENED = "the callback is not signed and encrypted with this service's Akool keys"
Enqueue = Callable[[str], None]
Learn = Callable[[Job, float], None]


@dataclass(frozen=True)
class Answer:
    status: int
    message: str


def receiver_keys(settings: Settings) -> tuple[str, str]:
    secret = settings.akool_client_secret or settings.akool_api_key
    if not settings.akool_client_id or not secret:
        raise SettingsError(
            "the webhook receiver needs AKOOL_CLIENT_ID and AKOOL_CLIENT_SECRET (or AKOOL_API_KEY, "
            "which is the same value) to verify and decrypt Akool's callbacks"
        )
    return settings.akool_client_id, secret


class Receiver:
    """Handles one decoded callback body; free of HTTP so it is easy to reason about."""

    def __init__(
        self,
        jobs: JobStore,
        settings: Settings,
        enqueue: Enqueue,
        learn: Learn | None = None,
    ) -> None:
        self.jobs = jobs
        self.client_id, self.secret = receiver_keys(settings)
        self.enqueue = enqueue
        self.learn = learn  # teaches the duration model (a callback is exact: no poll interval)

    @counters.counts_webhook
    def handle(self, body: bytes) -> Answer:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return Answer(400, "body is not JSON")
        try:
            WebhookEnvelope.from_json(doc)
        except WebhookError as exc:
            return Answer(400, str(exc))
        # Well formed, but not signed with our clientId, not encrypted with our secret or not
        # Akool's payload: one answer for all, or the answers tell padding from JSON (an oracle).
        try:
            payload = open_envelope(doc, self.client_id, self.secret)
        except WebhookError as exc:
            return _unopened(str(exc))
        akool_id, raw_status = payload.get("_id"), payload.get("status")
        if not isinstance(akool_id, str) or not akool_id or len(akool_id) > 64:
            return _unopened("payload has no _id")
        if isinstance(raw_status, bool) or raw_status not in list(AudioStatus):
            return _unopened("payload status is not 1-4")
        status = AudioStatus(raw_status)
        if not status.is_final:
            return Answer(200, f"status {int(status)} noted")
        job_id = self.jobs.job_for_akool_id(akool_id)
        if job_id is None:
            return Answer(404, "unknown akool id")
        if not self.jobs.notices.first_callback(akool_id, status, job_id, SEEN_TTL):
            return Answer(200, "duplicate")
        # v3 sends the audio in ``url``; VoiceLab (v4) records carry it in ``preview`` and
        # its callbacks are undocumented: either is accepted, ``url`` first.
        audio = payload.get("url") or payload.get("preview")
        try:
            return self._complete(job_id, akool_id, status, audio)
        except Exception:
            self.jobs.notices.forget_callback(akool_id, status)  # let Akool's retry try again
            raise

    def _complete(self, job_id: str, akool_id: str, status: AudioStatus, url: Any) -> Answer:
        job = self.jobs.find(job_id)
        if job is None:
            return Answer(200, "job record expired")
        if job.akool_id != akool_id:
            # A late callback for an earlier attempt of a retried job: never its result.
            return Answer(200, f"stale callback: attempt {job.attempt} has another akool id")
        if job.state.is_final or job.state.is_fetching:
            return Answer(200, f"job already {job.state.value}")
        now = time.time()
        if status is AudioStatus.COMPLETED:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return Answer(400, "status 3 without a url")
            self.jobs.record_poll(job_id, status, url, now, counted=False, source="webhook")
            if self.learn is not None:
                self.learn(job, now)
        else:
            self.jobs.record_poll(job_id, status, None, now, counted=False, source="webhook")
            self.jobs.fail(
                job_id,
                ErrorCode.AKOOL_FAILED,
                f"Akool reported status 4 (failed) for audio {akool_id}",
            )
        self.jobs.parking.unpark(job_id)  # its parked poll would only find the job done
        self.enqueue(job_id)
        log.info("job %s completed by webhook (akool status %d)", job_id, status)
        return Answer(200, "ok")


def _unopened(detail: str) -> Answer:
    log.warning("webhook envelope not opened: %s", detail)
    return Answer(401, UNOPENED)


def duration_learner(estimator: Estimator) -> Learn:
    """Teach the fleet's duration model from a callback: Akool finished the job when it called."""

    def learn(job: Job, completed_at: float) -> None:
        if job.submitted_at is not None:
            words = count_words(str(job.request.get("input_text", "")))
            estimator.observe(words, completed_at - job.submitted_at)

    return learn


def continuation_enqueuer(jobs: JobStore) -> Enqueue:
    """Enqueue the rest of a job's chain from its record (download and finish, or finish)."""

    def enqueue(job_id: str) -> None:
        continuation(jobs.get(job_id), 0.0).apply_async()

    return enqueue


def blueprint(receiver: Receiver | None) -> Blueprint:
    """The route serving ``receiver``; None: a service without the keys answers 503."""
    bp = Blueprint("webhook", __name__)

    @bp.route(PATH, methods=METHODS)
    def receive() -> Response:
        if request.method == "OPTIONS":
            return Response(status=204, headers={"Allow": "POST, OPTIONS"})
        if request.method != "POST":
            return _answer(405, "use POST", {"Allow": "POST"})
        if receiver is None:
            return _answer(
                503,
                "this service has no AKOOL_CLIENT_ID and AKOOL_CLIENT_SECRET (or AKOOL_API_KEY) "
                "to check Akool's signatures with",
            )
        if (request.content_length or 0) > MAX_BODY:
            return _answer(413, "body too large")
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:  # a chunked body that grew past the limit
            return _answer(413, "body too large")
        try:
            outcome = receiver.handle(body)
        except Exception:
            log.exception("webhook handling failed")  # a traceback, never the body
            return _answer(500, "internal error")
        if outcome.status != 200:
            log.warning("webhook refused: %s %s", outcome.status, outcome.message)
        return _answer(outcome.status, outcome.message)

    return bp


def _answer(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"status": status, "message": message})
    response.status_code = status
    response.headers.update(headers or {})
    return response
