"""The Celery app: ``celery -A worker worker|beat|flower``."""

from __future__ import annotations

from celery import Celery

from config.celery import celery_config
from config.settings import get_settings

app = Celery("akool_audio", include=["tasks.audio"])
app.conf.update(celery_config(get_settings()))
