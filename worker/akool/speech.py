"""One interface for Akool's speech APIs (``SpeechApi``, worker/akool/speechapi.py), one
adapter per version, and the registry callers pick them from by a job's ``api``
(``APIS[job.api]``): nothing outside this package branches on the version string.

An adapter owns what differs between versions: which kwargs a request may carry and how they
are validated, how speech is submitted and polled, whether a job reports credits, how voices
are listed and cached, and, where a clone first makes a voice, the calls of that stage. It
holds no state: every call takes the ``AkoolClient`` (the HTTP layer, shared by all versions).

Adding a version: a module with its adapter, one entry in ``_ADAPTERS``, ``AKOOL_APIS`` in
config/settings.py, the sandbox and the docs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.akool.audiorequest import Api
from worker.akool.speechapi import SpeechApi, VoiceCloner
from worker.akool.v3api import V3Api
from worker.akool.v4api import V4Api

__all__ = ["APIS", "SpeechApi", "VoiceCloner", "speech_api"]

_ADAPTERS: tuple[SpeechApi, ...] = (V3Api(), V4Api())
APIS: Mapping[Api, SpeechApi] = {api.name: api for api in _ADAPTERS}


def speech_api(name: Any) -> SpeechApi:
    """The adapter of API ``name``; ValueError naming the known ones for another."""
    if not isinstance(name, str) or name not in APIS:
        known = " or ".join(f'"{n}"' for n in APIS)
        raise ValueError(f"must be {known}, got {str(name)[:20]!r}")
    return APIS[name]
