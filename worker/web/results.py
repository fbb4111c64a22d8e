"""``GET /v1/jobs/{id}/audio``: a job's result from any store, behind the API's token: from the
local store the file itself, streamed, with ``Range`` (the dashboard's ``local_result`` finds
it); from object storage a 307 to a link signed now for ``DOWNLOAD_URL_TTL`` seconds."""

from __future__ import annotations

from flask import Blueprint, redirect, send_file
from werkzeug.wrappers import Response as BaseResponse

from worker.jobs import JobState
from worker.storage import StorageError
from worker.web.deps import deps
from worker.web.follow import find_job
from worker.web.jsonerrors import ApiError, ErrorCode
from worker.web.pages import local_result

bp = Blueprint("results", __name__, url_prefix="/v1")


@bp.get("/jobs/<job_id>/audio")
def audio(job_id: str) -> BaseResponse:
    d = deps()
    job = find_job(d, job_id)
    if job.state is not JobState.SUCCEEDED:
        raise ApiError(
            409, f"job {job.job_id} has no result: it is {job.state.value}", code=ErrorCode.CONFLICT
        )
    found = local_result(d, job)
    if found is not None:
        path, content_type = found
        return send_file(path, mimetype=content_type, conditional=True, max_age=0)
    if job.location and not job.file:
        try:
            link = d.store.download_url(job.location, d.settings.download_url_ttl)
        except StorageError as exc:
            raise ApiError(503, f"cannot sign a link to the result now: {exc}") from None
        if link:
            moved = redirect(link, 307)
            moved.headers["Cache-Control"] = "no-store"  # the link is signed for this request
            return moved
    raise ApiError(404, f"job {job.job_id}'s result is no longer stored (retention)", "job_id")
