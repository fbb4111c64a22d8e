"""The dashboard: server-rendered pages over the same records as the API.

``/`` the jobs (newest first, counts per state as filters, search by job id prefix, paged with
the listing's cursor), ``/jobs/<job_id>`` one job (its request, timeline, error, audio, cancel and
retry), ``/fleet`` the fleet (workers, queues, rate limiter, Akool's errors, throughput), and
``/login`` / ``/logout``. Thin views over the job store, worker/web/stats.py and tasks.control;
the templates (worker/web/templates, autoescaped) and one script and stylesheet
(worker/web/static) are served by this service, nothing from elsewhere.

A person logs in with an API token and gets a session (worker/web/session.py); automation may
send the Bearer header instead; with API_AUTH=off nobody is asked. Every POST carries a CSRF
token. The pages' script reads ``/v1/jobs`` (with the session cookie) and ``/counts`` to keep
the jobs page current without reloading it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from config.settings import SettingsError
from tasks import control
from worker.egress.download import CONTENT_TYPES
from worker.jobs import Job, JobNotFound, JobState
from worker.jobs.listing import Page
from worker.jobs.record import WrongState
from worker.jobs.request import is_job_id
from worker.pipeline.manual import NO_AKOOL_CANCEL
from worker.storage.local import LocalStore
from worker.web import api, observe, page_fleet, page_format, stats
from worker.web.deps import Deps, deps
from worker.web.jsonerrors import error_body
from worker.web.session import (
    COOKIE,
    CSRF_FIELD,
    Viewer,
    anonymous_csrf,
    clear_session_cookie,
    same,
    sessions,
    set_session_cookie,
)
from worker.web.stats import Sources

log = logging.getLogger("akool_audio.web")

HERE = Path(__file__).parent
bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

PAGE_SIZE = 50
OPEN = ("pages.login_form", "pages.login", "pages.static")
JSON_ENDPOINTS = ("pages.counts",)
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")
_CURSOR = re.compile(r"^[A-Za-z0-9_=-]{1,512}\Z")
_sources_lock = threading.Lock()


def _static_version() -> str:
    digest = hashlib.sha256()
    for name in ("dashboard.css", "dashboard.js"):
        digest.update((HERE / "static" / name).read_bytes())
    return digest.hexdigest()[:12]


STATIC_VERSION = _static_version()


# -- who may look --------------------------------------------------------------------------


def _here() -> str:
    return request.full_path.rstrip("?") if request.query_string else request.path


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this service, never another site."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 for c in target)
    ):
        return "/"
    return target


@bp.before_request
def _gate() -> BaseResponse | None:
    if request.endpoint in OPEN:
        return None
    viewer = sessions().viewer()
    if viewer is None:
        if request.endpoint in JSON_ENDPOINTS:
            return _json_error(401, "log in first")
        return redirect(url_for("pages.login_form", next=_here()), 303)
    g.viewer = viewer
    if request.method == "POST" and not sessions().csrf_ok(viewer, request.form.get(CSRF_FIELD)):
        return _page_error(403, "This form's CSRF token is missing or stale: reload the page.")
    return None


def _viewer() -> Viewer:
    viewer: Viewer = g.viewer
    return viewer


@bp.context_processor
def _context() -> dict[str, Any]:
    viewer = g.get("viewer")
    return {
        "viewer": viewer,
        "csrf": (viewer.csrf if viewer is not None else None) or "",
        "csrf_field": CSRF_FIELD,
        "flower_url": deps().settings.flower_url,
        "static": lambda name: url_for("pages.static", filename=name, v=STATIC_VERSION),
        "fmt": page_format,
        "states": page_format.STATES,
        "final_states": page_format.FINAL,
        "now": time.time(),
    }


@bp.after_request
def _headers(response: Response) -> Response:
    media = " ".join(["'self'", *g.get("media_origins", ())])
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; media-src {media}; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "pages.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _page_error(status: int, message: str) -> Response:
    response = make_response(render_template("error.html", status=status, message=message))
    response.status_code = status
    return response


def _json_error(status: int, message: str) -> Response:
    response = jsonify(error_body(status, message))
    response.status_code = status
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    return _page_error(status, exc.description or exc.name)


@bp.errorhandler(redis.RedisError)
def _redis_down(exc: redis.RedisError) -> Response:
    log.error("dashboard: Redis error: %s", type(exc).__name__)
    return _page_error(503, "Redis does not answer; this page shows what Redis holds. Try again.")


# -- logging in and out --------------------------------------------------------------------


@bp.get("/login")
def login_form() -> BaseResponse:
    s = sessions()
    target = safe_next(request.args.get("next"))
    if not s.auth:
        return redirect(target, 303)
    if s.find(request.cookies.get(COOKIE)) is not None:
        return redirect(target, 303)
    return _login_page(target)


def _login_page(target: str, error: str | None = None, status: int = 200) -> Response:
    response = make_response(
        render_template(
            "login.html",
            login_csrf=anonymous_csrf(),
            next=target,
            error=error,
            bye=bool(request.args.get("bye")),
        )
    )
    response.status_code = status
    return response


@bp.post("/login")
def login() -> BaseResponse:
    s = sessions()
    target = safe_next(request.form.get("next"))
    if not s.auth:
        return redirect(target, 303)
    if not same(request.form.get(CSRF_FIELD), anonymous_csrf()):
        return _login_page(target, "The form had expired. Please log in again.", 403)
    got = s.login(request.form.get("token", "").strip())
    if got is None:
        log.warning("dashboard: a login was refused (not one of API_TOKENS)")
        return _login_page(target, "That is not one of this service's API tokens.", 401)
    response = redirect(target, 303)
    set_session_cookie(response, got[0])
    return response


@bp.post("/logout")
def logout() -> BaseResponse:
    viewer = _viewer()
    if viewer.sid:
        sessions().logout(viewer.sid)
    response = redirect(url_for("pages.login_form", bye=1), 303)
    clear_session_cookie(response)
    return response


# -- jobs ----------------------------------------------------------------------------------


def _arg(name: str) -> str | None:
    value = request.args.get(name, "")
    return value or None


@bp.get("/")
def jobs() -> Response:
    d = deps()
    state, q, cursor = _arg("state"), _arg("q"), _arg("cursor")
    problem = None
    if state is not None and state not in page_format.STATES:
        problem, state = f"There is no state {state[:40]!r}; showing every state.", None
    if q is not None and not _PREFIX.match(q):
        problem, q = "Search by the start of a job id: letters, digits, '_', '-' or '.'.", None
    if cursor is not None and not _CURSOR.match(cursor):
        problem, cursor = "That page link is not one this service gave out.", None
    try:
        page = d.jobs.page(state=state, prefix=q, limit=PAGE_SIZE, cursor=cursor)
    except ValueError as exc:
        problem, page = str(exc), Page([], None)
    counts = d.jobs.counts()
    response = make_response(
        render_template(
            "jobs.html",
            rows=[api.row(j) for j in page.jobs],
            next_cursor=page.next_cursor,
            counts=counts,
            total=sum(counts.values()),
            in_flight=stats.in_flight(counts),
            state=state,
            q=q,
            cursor=cursor,
            problem=problem,
            page_size=PAGE_SIZE,
        )
    )
    response.status_code = 400 if problem else 200
    return response


@bp.get("/counts")
def counts() -> Response:
    """Jobs per state, for the jobs page's script (the rows come from ``/v1/jobs``)."""
    by_state = deps().jobs.counts()
    return jsonify(
        {
            "by_state": by_state,
            "total": sum(by_state.values()),
            "in_flight": stats.in_flight(by_state),
        }
    )


def _job(d: Deps, job_id: str) -> Job:
    if not is_job_id(job_id):
        raise _Abort(400, "That is not a job id.")
    job = d.jobs.find(job_id)
    if job is None:
        raise _Abort(404, f"There is no job {job_id} (or its record has expired).")
    return job


class _Abort(HTTPException):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code


def local_result(d: Deps, job: Job) -> tuple[Path, str] | None:
    """The job's own result file in the local result store, with its content type; None when
    the job has none there (not finished, or results go to object storage)."""
    if job.state is not JobState.SUCCEEDED or not job.file or not isinstance(d.store, LocalStore):
        return None
    path = Path(job.file).resolve()
    ext = path.suffix.lstrip(".")
    if (
        path.parent != d.store.root.resolve()
        or ext not in CONTENT_TYPES
        or path.name != f"{job.job_id}.{ext}"
        or not path.is_file()
    ):
        return None
    return path, CONTENT_TYPES[ext]


def _audio_src(d: Deps, job: Job, detail: dict[str, Any]) -> str | None:
    link = detail.get("download_url")
    if isinstance(link, str) and link.startswith(("http://", "https://")):
        parts = urlsplit(link)
        g.media_origins = (f"{parts.scheme}://{parts.netloc}",)
        return link
    if local_result(d, job) is not None:
        return url_for("pages.audio", job_id=job.job_id)
    return None


def _job_page(d: Deps, job: Job, note: str | None = None, status: int = 200) -> Response:
    detail = api.detail(d, job)
    text = str(job.request.get("input_text", ""))
    preview, cut = page_format.shortened(text)
    done = request.args.get("done")
    if note is None and done == "cancel":
        note = "Cancel asked."
        if job.akool_id:
            note += " " + NO_AKOOL_CANCEL.format(akool_id=job.akool_id)
    elif note is None and done == "retry":
        note = f"Running again as attempt {job.attempt}."
    others = {
        k: v
        for k, v in job.request.items()
        if k not in ("input_text", "voice_id", "voice_url", "kind") and v is not None
    }
    if job.request.get("notify_task") is None:
        others.pop("notify_queue", None)  # the default queue of a notify_task there is not
    response = make_response(
        render_template(
            "job.html",
            job=job,
            detail=detail,
            text=text,
            preview=preview,
            cut=cut,
            voice=job.request.get("voice_id") or job.request.get("voice_url"),
            others=others,
            steps=page_format.timeline(d.jobs.timeline.events(job.job_id)),
            audio=_audio_src(d, job, detail),
            note=note,
            can_cancel=not job.state.is_final,
            can_retry=job.state.is_unsuccessful,
        )
    )
    response.status_code = status
    return response


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> Response:
    d = deps()
    return _job_page(d, _job(d, job_id))


@bp.get("/jobs/<job_id>/audio")
def audio(job_id: str) -> Response:
    """The job's own result from the local result store (only that file, with its type)."""
    d = deps()
    found = local_result(d, _job(d, job_id))
    if found is None:
        raise _Abort(404, "This job has no result file here.")
    path, content_type = found
    return send_file(path, mimetype=content_type, conditional=True, max_age=0)


@bp.post("/jobs/<job_id>/<any(cancel, retry):action>")
def act(job_id: str, action: str) -> BaseResponse:
    """Cancel or retry, once confirmed (the script asks in a dialog; without it, a page asks)."""
    d = deps()
    found = _job(d, job_id)
    # The attempt the page showed: a stale page (another tab acted since) changes nothing.
    raw = request.form.get("expected_attempt", "")
    if raw and not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        raise _Abort(400, "This form's attempt is not a number.")
    expected = int(raw) if raw else None
    if request.form.get("confirmed") != "yes":
        return make_response(
            render_template("confirm.html", job=found, action=action, expected_attempt=expected)
        )
    try:
        if action == "cancel":
            control.cancel_job(d.services, found.job_id, expected)
        else:
            control.retry_job(d.services, found.job_id, expected)
    except JobNotFound:
        raise _Abort(404, f"There is no job {job_id}.") from None
    except WrongState as exc:
        return _job_page(d, d.jobs.get(found.job_id), f"Not done: {exc}", 409)
    except SettingsError as exc:
        return _page_error(503, f"This service cannot {action} jobs: {exc}")
    return redirect(url_for("pages.job", job_id=found.job_id, done=action), 303)


# -- the fleet -----------------------------------------------------------------------------


def _sources() -> Sources:
    """What /v1/stats reads (built once per app, shared with worker/web/observe.py)."""
    app = current_app
    with _sources_lock:
        if observe.EXTENSION not in app.extensions:
            observe.install(app, observe.sources_from(deps().services))
        observed: observe.Observed = app.extensions[observe.EXTENSION]
    return observed.sources


@bp.get("/fleet")
def fleet() -> Response:
    src = _sources()
    now = time.time()
    st = stats.stats(src, now)
    series = page_fleet.throughput(src.r, src.settings.key_prefix, now)
    return make_response(
        render_template(
            "fleet.html",
            st=st,
            chart=page_fleet.chart(series),
            series=page_fleet.SERIES,
            generated=now,
        )
    )
