"""akool-audio-worker: Celery workers that turn text into speech through Akool's Audio API.

``celery -A worker ...`` finds the app through ``worker.app``; it is imported lazily so that the
client, the sandbox and the CLI can be used without reading Celery settings.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from worker.app import app

        return app
    raise AttributeError(name)
