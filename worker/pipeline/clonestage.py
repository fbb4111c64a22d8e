"""The first stage of a VoiceLab (v4) ``audio.clone`` from a sample: get a voice that speaks.

Akool's v4 clone makes a *voice*, not audio. So a v4 clone job first clones the voice from
``source_voice_file`` (once per sample: :mod:`worker.fleet.clonecache`), polls it until it is
ready, and only then speaks its text with it, as a v4 ``audio.create`` would (tts, poll,
download). All of this is one job: the stage runs inside
:func:`~worker.pipeline.submitting.submit` while the job is ``accepted``, its progress on the
record (``stage`` ``cloning``, then ``speaking``; ``voice_doc_id``, ``cloned_voice_id``) and on
the timeline. Every call returns a voice id to speak with, or a :class:`Later` to come back, or
``None`` when the job has ended.

Guarantees, as for a submit: a sample's clone is POSTed only by the holder of its lease, which
records the voice before letting go; a redelivered message (or another job for the same sample)
finds the voice and polls or uses it. A worker that died between the POST and that record
leaves the entry ``inflight``: the next try first looks for the voice in the account's list
(``type=1``, by ``source_voice_file``) before it clones again, and counts the attempt as
ambiguous.
"""

from __future__ import annotations

import time

from worker.akool import AudioStatus, ClonedVoice
from worker.akool import errors as akool_errors
from worker.akool.speech import APIS, VoiceCloner
from worker.backoff import backoff
from worker.fleet.clonecache import ClonedSample, sample_key
from worker.jobs import ErrorCode, EventKind, Job
from worker.jobs.request import AudioRequest, from_record
from worker.pipeline.akoolcodes import AMBIGUOUS, error_code
from worker.pipeline.schedule import Later, error_delay
from worker.services import Services

CLONING, SPEAKING = "cloning", "speaking"


def needs_voice(job: Job) -> bool:
    """A clone from a sample, of an API that clones a voice first (v4), that has no voice to
    speak with yet."""
    request = job.request
    return (
        APIS[job.api].cloner is not None
        and job.kind == "clone"
        and bool(request.get("voice_url"))
        and not job.cloned_voice_id
    )


def _cloner(api: str) -> VoiceCloner:
    cloner = APIS[api].cloner
    assert cloner is not None  # needs_voice said so
    return cloner


def _key(req: AudioRequest) -> str:
    assert req.voice_url is not None
    return sample_key(req.voice_url, req.voice_model_name, req.clone_options)


def voice_for(svc: Services, job: Job) -> str | Later | None:
    """The voice id the job speaks with, once its sample's clone is ready; else when to come
    back (``Later``), or None when the job ended here (failed)."""
    req = from_record(job.request)
    key = _key(req)
    known = svc.clones.get(key)
    if known is not None and known.state == "ready" and known.voice_id:
        return _use(svc, job, known.voice_id, known.voice_doc_id, "reused")
    if known is not None and known.state == "pending" and known.voice_doc_id:
        return _poll_voice(svc, job, key, known)
    return _clone(svc, job, req, key, known)


def _use(svc: Services, job: Job, voice_id: str, doc_id: str | None, how: str) -> str:
    svc.jobs.set_fields(
        job.job_id,
        (EventKind.VOICE_READY, {"voice_id": voice_id, "voice_doc_id": doc_id or "", "how": how}),
        stage=SPEAKING,
        cloned_voice_id=voice_id,
        voice_doc_id=doc_id or "",
    )
    return voice_id


def _wait(svc: Services, job: Job, delay: float, reason: str) -> Later:
    delay = max(0.5, min(delay, (job.deadline_at or time.time() + delay) - time.time()))
    svc.jobs.set_due(job.job_id, time.time() + delay)
    return Later(delay, reason, parkable=job)  # a long wait is parked as a speech poll's is


def _voice_failed(svc: Services, job: Job, key: str, doc_id: str) -> None:
    svc.clones.forget(key)  # a later job (or a retry of this one) may clone the sample again
    svc.jobs.fail(
        job.job_id,
        ErrorCode.AKOOL_FAILED,
        f"Akool reported status 4 (failed) for voice {doc_id} cloned from the sample",
    )


def _poll_voice(svc: Services, job: Job, key: str, known: ClonedSample) -> str | Later | None:
    assert known.voice_doc_id is not None
    now = time.time()
    try:
        voice = _cloner(job.api).get_voice(svc.akool, known.voice_doc_id)
    except akool_errors.AkoolError as exc:
        return _call_failed(svc, job, exc, "polling the cloned voice")
    polls = job.voice_polls + 1
    svc.jobs.set_fields(
        job.job_id,
        (EventKind.VOICE_POLLED, {"status": int(voice.status), "voice_doc_id": voice.id}),
        stage=CLONING,
        voice_doc_id=voice.id,
        voice_polls=polls,
    )
    if voice.status is AudioStatus.COMPLETED and voice.voice_id:
        svc.clones.ready(key, voice.id, voice.voice_id, voice.model)
        return _use(svc, job, voice.voice_id, voice.id, "cloned")
    if voice.status is AudioStatus.FAILED:
        _voice_failed(svc, job, key, voice.id)
        return None
    if job.deadline_at is not None and now >= job.deadline_at:
        svc.jobs.fail(
            job.job_id,
            ErrorCode.DEADLINE,
            f"the voice cloned from the sample was not ready within the "
            f"{svc.settings.poll_deadline:g} s deadline ({polls} polls)",
        )
        return None
    s = svc.settings
    delay = backoff(polls - 1, base=s.poll_initial_delay, cap=s.poll_max_delay, factor=1.5)
    return _wait(svc, job, delay, f"cloned voice status {int(voice.status)}")


def _adopt(svc: Services, req: AudioRequest) -> ClonedVoice | None:
    """After a clone whose answer was lost: the account's newest voice cloned from this sample
    that has not failed, if Akool's list shows one (its records may carry
    ``source_voice_file``; when they do not, nothing is found and the sample is cloned)."""
    try:
        clones = _cloner(req.api).list_clones(svc.akool)
    except akool_errors.AkoolError:
        return None
    found = [
        c
        for c in clones
        if c.raw.get("source_voice_file") == req.voice_url and c.status is not AudioStatus.FAILED
    ]
    return found[-1] if found else None


def _clone(
    svc: Services, job: Job, req: AudioRequest, key: str, known: ClonedSample | None
) -> str | Later | None:
    s = svc.settings
    token = svc.clones.lease(key, s.akool_connect_timeout + s.akool_read_timeout + 30)
    if token is None:
        return _wait(svc, job, 2.0, "another worker is cloning this sample")
    try:
        again = svc.clones.get(key)  # it may have changed before the lease was ours
        if again is not None and again.state in ("pending", "ready"):
            return voice_for(svc, job)
        ambiguous = known is not None and known.state == "inflight"
        if ambiguous:
            svc.jobs.timeline.note(
                job.job_id, EventKind.CLONE_AMBIGUOUS, since=known.since if known else 0
            )
            found = _adopt(svc, req)
            if found is not None and found.voice_id:
                svc.clones.ready(key, found.id, found.voice_id, found.model)
                return _use(svc, job, found.voice_id, found.id, "adopted")
            if found is not None:  # not ready yet: poll it as if its answer had come
                svc.clones.pending(key, found.id, found.model, job.job_id)
                svc.jobs.set_fields(
                    job.job_id,
                    (EventKind.CLONE_ADOPTED, {"voice_doc_id": found.id}),
                    voice_doc_id=found.id,
                )
                return _wait(svc, job, svc.settings.poll_initial_delay, "the voice is being cloned")
        svc.clones.inflight(key, job.job_id)
        svc.jobs.set_fields(
            job.job_id, (EventKind.CLONE_STARTED, {"ambiguous": ambiguous}), stage=CLONING
        )
        assert req.voice_url is not None
        try:
            voice = _cloner(req.api).clone_voice(
                svc.akool, req.voice_url, req.voice_model_name, req.clone_options
            )
        except akool_errors.AkoolError as exc:
            if not isinstance(exc, AMBIGUOUS):
                svc.clones.forget(key)  # nothing was cloned (a refusal, or nothing was sent)
            return _call_failed(svc, job, exc, "cloning the voice")
        svc.jobs.set_fields(
            job.job_id,
            (EventKind.CLONED, {"voice_doc_id": voice.id, "status": int(voice.status)}),
            voice_doc_id=voice.id,
        )
        if voice.status is AudioStatus.COMPLETED and voice.voice_id:
            svc.clones.ready(key, voice.id, voice.voice_id, voice.model)
            return _use(svc, job, voice.voice_id, voice.id, "cloned")
        if voice.status is AudioStatus.FAILED:
            _voice_failed(svc, job, key, voice.id)
            return None
        svc.clones.pending(key, voice.id, voice.model, job.job_id)
    finally:
        svc.clones.release(key, token)
    return _wait(svc, job, svc.settings.poll_initial_delay, "the voice is being cloned")


def _call_failed(svc: Services, job: Job, exc: akool_errors.AkoolError, doing: str) -> Later | None:
    if isinstance(exc, akool_errors.RateLimited):
        svc.limiter.penalize()
    errors = svc.jobs.count_transient_error(
        job.job_id, (EventKind.CLONE_FAILED, {"doing": doing, "code": error_code(exc)})
    )
    if exc.retryable and errors <= svc.settings.transient_error_budget:
        return _wait(svc, job, error_delay(svc, errors, exc), f"{doing} failed, retrying")
    reason = str(exc) if not exc.retryable else f"gave up after {errors} errors: {exc}"
    svc.jobs.fail(job.job_id, error_code(exc), f"{doing}: {reason}")
    return None
