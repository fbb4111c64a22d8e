"""The Celery app: ``celery -A worker worker|beat|flower``."""

from __future__ import annotations

from celery import Celery
from celery.signals import task_received

from config.beat import beat_schedule
from config.celery import celery_config
from config.settings import get_settings
from worker.redact import RedactingAMQP, on_task_received

app = Celery(
    "akool_audio",
    include=["tasks.audio", "tasks.maintenance"],
    amqp=RedactingAMQP,
)
app.conf.update(celery_config(get_settings()))
app.conf.beat_schedule = beat_schedule(get_settings())
task_received.connect(on_task_received, weak=False)
