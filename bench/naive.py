"""The baseline that Akool's own demos use, as one Celery task: submit, then ``sleep(5)`` and poll
in a loop, then download (``celery -A bench.naive worker``). Same settings as the pipeline; it
holds a worker slot for the whole life of the job, which is the point of the comparison."""

from __future__ import annotations

import time

from celery import Celery

from config.celeryconfig import celery_config
from config.settings import get_settings
from worker.egress.download import download
from worker.services import services

app = Celery("bench_naive")
app.conf.update(celery_config(get_settings()))
POLL_EVERY = 5.0


@app.task(name="bench.naive", acks_late=True)
def naive(job_id: str, input_text: str, voice_id: str) -> str:
    svc = services()
    s = svc.settings
    record = svc.akool.create_audio(input_text, voice_id, "100%", None)
    while int(record.status) not in (3, 4):
        time.sleep(POLL_EVERY)  # what the demos do: the slot waits with the job
        record = svc.akool.get_audio(record.id)
    state = "failed"
    if int(record.status) == 3 and record.url:
        download(
            svc.http, record.url, s.audio_dir, job_id,
            max_bytes=s.download_max_bytes, timeout=s.download_timeout,
            allow_hosts=s.allow_private_hosts,
        )  # fmt: skip
        state = "succeeded"
    svc.jobs.notices.publish({"job_id": job_id, "state": state})
    return state
