"""The engine's ceiling: a no-op task on the same Redis and the same Celery settings as the
pipeline (``celery -A bench.noop worker``). Nothing of ours runs inside it."""

from __future__ import annotations

from celery import Celery

from config.celeryconfig import celery_config
from config.settings import get_settings

app = Celery("bench_noop")
app.conf.update(celery_config(get_settings()))


@app.task(name="bench.noop", acks_late=True)
def noop() -> None:
    return None
