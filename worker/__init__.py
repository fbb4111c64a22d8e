"""akool-audio-worker: Celery workers that turn text into speech through Akool's Audio API.

``celery -A worker ...`` finds the app as ``worker.app`` (defined in ``worker/celery.py``); it is
imported lazily so that the client, the sandbox and the CLI can be used without reading Celery
settings. The packages, each importing only those before it: ``akool`` (the remote API),
``jobs`` (records), ``fleet`` and ``egress`` (shared state, outbound requests), ``maintenance``,
``services`` (the composition root), ``pipeline`` (the steps), ``broker`` and ``celery`` (the
app); then the frontends: ``tasks/``, ``web``, ``cli``. ``devstack`` is for development only.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "app":
        from worker.celery import app

        return app
    raise AttributeError(name)
