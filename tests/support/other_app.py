"""Another team's Celery app, importing none of our code: receives our notify_task."""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from celery import Celery

other = Celery("other", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])
other.conf.update(task_serializer="json", accept_content=["json"], task_default_queue="other")


@other.task(name="other.audio_done")
def audio_done(summary: dict[str, Any]) -> None:
    r = redis.Redis.from_url(os.environ["REDIS_URL"])
    r.rpush("other:received", json.dumps(summary))
