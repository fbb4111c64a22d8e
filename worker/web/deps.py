"""What the web service's views work with, built once per app (so once per process: gunicorn
builds the app in each worker after the fork) from the app's settings: a view over the
composition root's :class:`~worker.services.Services` (the job store, the result store for
fresh download links, the voice cache, the estimator, cancel and retry), the way jobs are sent
to the workers, and the voice checks, which exist only with Akool's credentials.

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
from worker.celery import app as celery_app
from worker.fleet.estimator import Estimator
from worker.fleet.voicecache import VoiceCache, request_problem
from worker.jobs import JobStore
from worker.jobs.request import AudioRequest
from worker.services import Services
from worker.services import build as build_services
from worker.storage import ResultStore

EXTENSION = "akool_audio"
#: ``send(task_name, kwargs, task_id)``: put an entry task on the ``audio`` queue.
Send = Callable[[str, dict[str, Any], str], None]
#: ``request_problem(request)``: (field, why) a request cannot work with its API (an unknown
#: voice, an option its model lacks), or None.
RequestCheck = Callable[[AudioRequest], tuple[str, str] | None]


@dataclass(frozen=True)
class Deps:
    services: Services  # the app's composition root (worker/services.py)
    send: Send
    request_problem: RequestCheck | None  # None without Akool credentials: Akool is the judge

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def redis(self) -> redis.Redis:
        return self.services.redis

    @property
    def jobs(self) -> JobStore:
        return self.services.jobs

    @property
    def store(self) -> ResultStore:
        return self.services.store

    @property
    def voices(self) -> VoiceCache:
        return self.services.voices

    @property
    def estimator(self) -> Estimator:
        """Taught by Akool's callbacks (worker/web/webhook.py)."""
        return self.services.estimator


def send_entry_task(name: str, kwargs: dict[str, Any], task_id: str) -> None:
    """Send an entry task through the project's Celery app, as any other caller would."""
    celery_app.send_task(name, kwargs=kwargs, task_id=task_id, queue=QUEUE_AUDIO)


def build(settings: Settings, send: Send = send_entry_task) -> Deps:
    svc = build_services(settings)
    voices = svc.voices
    problem: RequestCheck | None = None
    try:
        settings.require_credentials()
    except SettingsError:
        pass
    else:
        client, limiter = svc.akool, svc.limiter

        def check(request: AudioRequest) -> tuple[str, str] | None:
            return request_problem(voices, client, limiter, request)

        problem = check

    return Deps(services=svc, send=send, request_problem=problem)


def deps() -> Deps:
    """The current app's dependencies (inside a request or an app context)."""
    return cast(Deps, current_app.extensions[EXTENSION])
