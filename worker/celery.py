"""The Celery app: ``celery -A worker worker|beat|flower``.

Importing it reads no setting: its configuration (config/celeryconfig.py, the beat schedule)
is made from the process's settings when Celery first reads it, at a worker's, beat's or
Flower's start or a process's first send. What the task decorators need at import (names,
options, the ``include`` list) does not depend on the settings."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import (
    beat_init,
    before_task_publish,
    import_modules,
    task_received,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from config.beat import beat_schedule
from config.celeryconfig import QUEUE_AUDIO, LazyConfig, celery_config
from config.settings import SettingsError, get_settings
from worker.broker.fleetloop import FleetLoop
from worker.broker.redact import RedactingAMQP, RedactResultsFilter, on_task_received
from worker.fleet import counters
from worker.maintenance.recurring import beat_entries
from worker.services import check_redis_at_start
from worker.storage import StorageError, open_store


def configuration() -> dict[str, Any]:
    """The app's configuration from this process's settings (raises SettingsError)."""
    settings = get_settings()
    schedule = {**beat_schedule(settings), **beat_entries(settings)}
    return {**celery_config(settings), "beat_schedule": schedule}


app = Celery(
    "akool_audio",
    include=["tasks.audio", "tasks.control", "tasks.maintenance"],
    amqp=RedactingAMQP,
)
app.config_from_object(LazyConfig(configuration))


def started_app() -> Celery:
    """The app for ``celery -A worker ...`` (worker/__init__.py), configured now: a setting that
    cannot be read stops the command with its name (exit 2), not with a traceback from inside
    Celery's option parsing."""
    try:
        app.conf.get("broker_url")  # reading any key configures the app
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return app


task_received.connect(on_task_received, weak=False)
before_task_publish.connect(counters.stamp_sent_at, weak=False)  # /v1/stats: oldest age
worker_process_shutdown.connect(counters.flush_at_exit, weak=False)  # prefork skips atexit
logging.getLogger("celery.app.trace").addFilter(RedactResultsFilter())
log = logging.getLogger(__name__)
# A wrong TLS CA or ACL password stops a worker, beat or Flower at start with the reason
# (services.py): their loader imports the task modules first, before anything connects.
import_modules.connect(check_redis_at_start, weak=False)


_fleet: list[FleetLoop] = []


@worker_ready.connect
def _start_fleet_threads(**_: object) -> None:
    """The heartbeat, the restorer of dead workers' messages and the due-poll dispatcher
    (worker/broker/fleetloop.py), in the worker's main process."""
    loop = FleetLoop(app)
    loop.start()
    _fleet.append(loop)


@worker_shutdown.connect
def _stop_fleet_threads(**_: object) -> None:
    while _fleet:
        _fleet.pop().stop()


@beat_init.connect
def _refresh_voices_at_start(**_: object) -> None:
    """Fill the voice caches now, not an interval after a fresh start (/v1/voices, voice
    checks); a standby beat sends one too, which costs one refresh."""
    try:
        app.send_task("maintenance.refresh_voices", queue=QUEUE_AUDIO)
    except Exception as exc:  # a beat that cannot send now still runs its schedule
        log.warning("could not send maintenance.refresh_voices at start: %s", type(exc).__name__)


@worker_init.connect
def _check_settings(**_: object) -> None:
    """A worker without Akool credentials would fail every job: refuse to start instead. A
    result store that cannot be written is said plainly at start; the worker still runs, and
    finished jobs wait for the store (STORAGE_RETRY_WINDOW) instead of losing their results."""
    settings = get_settings()
    try:
        settings.require_credentials()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        store = open_store(settings)
        store.check()
    except StorageError as exc:
        print(
            f"storage problem: {exc}. "
            "Finished jobs will wait in state 'storing' for up to STORAGE_RETRY_WINDOW "
            f"({settings.storage_retry_window:g} s) and resume once it works.",
            file=sys.stderr,
        )
    else:
        print(f"results go to {store.describe()}", file=sys.stderr)
