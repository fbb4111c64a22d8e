"""akool-audio-worker: Celery workers that turn text into speech through Akool's Audio API.

``celery -A worker ...`` finds the app as ``worker.app`` (defined in ``worker/celery.py``),
configured from the settings then (a bad setting stops the command, naming it). It is imported
lazily: this package's ``__init__`` runs before any of its modules, and the Akool client and the
sandbox are used without Celery. The packages, each importing only those before it: ``akool``
(the remote API), ``jobs`` (records), ``fleet`` and ``egress`` (shared state, outbound
requests), ``maintenance``, ``services`` (the composition root), ``pipeline`` (the steps),
``broker`` and ``celery`` (the app); then the frontends: ``tasks/``, ``web``, ``cli``.
``devstack`` is for development only.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "app":
        from worker.celery import started_app

        return started_app()
    raise AttributeError(name)
