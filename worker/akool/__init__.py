"""Akool Audio API v3: the client, typed records, errors, validation and webhook crypto."""

from worker.akool import errors, validation
from worker.akool.auth import MemoryTokenCache, TokenCache
from worker.akool.client import AkoolClient
from worker.akool.models import AudioJob, AudioStatus, Voice

__all__ = [
    "AkoolClient",
    "AudioJob",
    "AudioStatus",
    "MemoryTokenCache",
    "TokenCache",
    "Voice",
    "errors",
    "validation",
]
