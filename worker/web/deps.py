"""What the web service's views work with, built once per app (so once per process: gunicorn
builds the app in each worker after the fork) from the settings: the job store, the result
store (for fresh download links), the voice cache and the way jobs are sent to the workers.

Building opens no connection: the Redis client connects on its first command. A blueprint
reaches them with :func:`deps` while it handles a request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis
from flask import current_app

from config.celeryconfig import QUEUE_AUDIO
from config.settings import Settings, SettingsError
from worker.fleet.estimator import Estimator
from worker.fleet.voicecache import VoiceCache, request_problem
from worker.jobs import JobStore
from worker.jobs.request import AudioRequest
from worker.services import akool_client, duration_model, rate_limiter, redis_client
from worker.storage import ResultStore, open_store

EXTENSION = "akool_audio"
#: ``send(task_name, kwargs, task_id)``: put an entry task on the ``audio`` queue.
Send = Callable[[str, dict[str, Any], str], None]
#: ``request_problem(request)``: (field, why) a request cannot work with its API (an unknown
#: voice, an option its model lacks), or None.
RequestCheck = Callable[[AudioRequest], tuple[str, str] | None]


@dataclass(frozen=True)
class Deps:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    store: ResultStore
    voices: VoiceCache
    send: Send
    request_problem: RequestCheck | None  # None without Akool credentials: Akool is the judge
    estimator: Estimator  # taught by Akool's callbacks (worker/web/webhook.py)


def send_entry_task(name: str, kwargs: dict[str, Any], task_id: str) -> None:
    """Send an entry task through the project's Celery app, as any other caller would."""
    from worker.celery import app  # imported on first use: the app reads the settings

    app.send_task(name, kwargs=kwargs, task_id=task_id, queue=QUEUE_AUDIO)


def build(settings: Settings, send: Send = send_entry_task) -> Deps:
    r = redis_client(settings)
    voices = VoiceCache(r, settings)
    problem: RequestCheck | None = None
    try:
        settings.require_credentials()
    except SettingsError:
        pass
    else:
        client, limiter = akool_client(settings, r), rate_limiter(settings, r)

        def check(request: AudioRequest) -> tuple[str, str] | None:
            return request_problem(voices, client, limiter, request)

        problem = check

    return Deps(
        settings=settings,
        redis=r,
        jobs=JobStore(r, settings),
        store=open_store(settings),
        voices=voices,
        send=send,
        request_problem=problem,
        estimator=duration_model(settings, r),
    )


def deps() -> Deps:
    """The current app's dependencies (inside a request or an app context)."""
    return cast(Deps, current_app.extensions[EXTENSION])
