"""The interface every version of Akool's speech APIs is used through (``SpeechApi``), and
the calls of a clone stage (``VoiceCloner``); the adapters are registered in
:mod:`worker.akool.speech`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from config.settings import Settings
from worker.akool.audiorequest import Api, AudioRequest, Kind
from worker.akool.client import AkoolClient
from worker.akool.errors import ValidationError
from worker.akool.models import AudioJob, Voice
from worker.akool.v4models import ClonedVoice

__all__ = ["SpeechApi", "VoiceCloner"]


class VoiceCloner(Protocol):
    """The calls of an API whose clone first makes a voice from the sample, then speaks with it
    (worker/pipeline/clonestage.py)."""

    def clone_voice(
        self,
        client: AkoolClient,
        sample: str,
        voice_model_name: str | None,
        options: Mapping[str, Any] | None,
    ) -> ClonedVoice:
        """Clone a voice from the sample (sent once)."""
        ...

    def get_voice(self, client: AkoolClient, voice_doc_id: str) -> ClonedVoice:
        """The cloned voice's current record (poll it until it is ready)."""
        ...

    def list_clones(self, client: AkoolClient) -> list[ClonedVoice]:
        """The account's cloned voices, those not ready included (to adopt a lost answer)."""
        ...


class SpeechApi(Protocol):
    #: The key in ``APIS`` and the ``api`` of a job: "v3".
    name: Api
    #: Akool's name for it, for people: "Audio", "VoiceLab".
    label: str
    #: Whether a job of this API reports what it cost (``credits`` in the summary).
    reports_credits: bool
    #: The voice cache's Redis key parts: list, ids, refresh time, models, miss gate.
    voice_cache: tuple[tuple[str, ...], ...]
    #: The options of ``akool-audio voices`` that list this API's voices ("" or " --api v4").
    voices_flag: str
    #: The field of the ``voices`` maintenance report that counts this API's voices.
    voices_report: str
    #: Akool's paths of this API and their short names in the metrics; those ending in an id
    #: by prefix. ``poll_endpoint`` is the name of the poll's path.
    endpoints: Mapping[str, str]
    endpoint_prefixes: Mapping[str, str]
    poll_endpoint: str
    #: The clone stage's calls when a clone makes a voice first; None when a clone speaks.
    cloner: VoiceCloner | None

    def fields(self, kind: Kind) -> frozenset[str]:
        """The kwargs of this API a request of ``kind`` may carry beyond ``COMMON``."""
        ...

    def refuse(self, field: str, owner: Api, owner_label: str) -> ValidationError:
        """Why ``field``, a kwarg of API ``owner`` only, is refused in a request of this API."""
        ...

    def parse(self, kind: Kind, kwargs: Mapping[str, Any], settings: Settings) -> AudioRequest:
        """The request from kwargs holding only ``COMMON`` fields and this API's; raises
        ``ValidationError`` naming the first bad field. ``notify_task`` and ``notify_queue``
        are left at None and "celery" for the caller to fill."""
        ...

    def submit(
        self,
        client: AkoolClient,
        request: AudioRequest,
        webhook_url: str | None,
        voice_id: str | None = None,
    ) -> AudioJob:
        """Send the request's speech (once); ``voice_id`` is a cloned voice to speak with."""
        ...

    def poll(self, client: AkoolClient, akool_id: str) -> AudioJob:
        """The speech's current record: status, url, duration."""
        ...

    def list_voices(self, client: AkoolClient, source: int | None) -> list[Voice]:
        """Akool's voices: ``source`` 3 official, 4 the account's own, None both."""
        ...

    def cached_voices(self, raw: list[dict[str, Any]]) -> list[Voice]:
        """The voices of this API's voice cache (their raw records) as ``Voice`` again."""
        ...

    def voice_detail(self, voice: Voice) -> str | None:
        """What ``akool-audio voices`` shows after a voice's gender."""
        ...

    def options_problem(
        self, request: AudioRequest, model_of: Callable[[str], str | None]
    ) -> tuple[str, str] | None:
        """(field, why) for an option the request's voice cannot take, given the voice
        cache's ``model_of(voice_id)``; None when nothing is known to be wrong."""
        ...
