"""Akool Audio API v3 and VoiceLab (v4): the client, typed records, errors, validation and
webhook crypto; one adapter per version behind one interface in :mod:`worker.akool.speech`."""

from worker.akool import errors, validation
from worker.akool.auth import MemoryTokenCache, TokenCache
from worker.akool.client import AkoolClient
from worker.akool.models import AudioJob, AudioStatus, Voice
from worker.akool.v4models import ClonedVoice

__all__ = [
    "AkoolClient",
    "AudioJob",
    "AudioStatus",
    "ClonedVoice",
    "MemoryTokenCache",
    "TokenCache",
    "Voice",
    "errors",
    "validation",
]
