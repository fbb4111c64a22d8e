"""``VoiceLab``: Akool's VoiceLab API (v4) through an ``AkoolClient`` (``client.v4``): the same
auth, envelope, errors and retry rules as v3.

tts and clone are sent exactly once (a second POST is a second paid job, or a second voice of a
scarce quota); the resource detail, the voice detail and the voice list are safe GETs. Every
argument is checked (:mod:`worker.akool.v4options`) before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

import worker.akool.errors as errors
import worker.akool.v4options as v4options
import worker.akool.validation as validation
from worker.akool.models import AudioJob, Voice
from worker.akool.v4models import (
    ClonedVoice,
    parse_cloned_voice,
    parse_tts_job,
    parse_voice_page,
)

__all__ = ["VoiceLab"]

V4 = "/api/open/v4/voice"
TTS_PATH = f"{V4}/tts"
RESOURCE_DETAIL_PATH = f"{V4}/resource/detail/"  # + the resource _id
CLONE_PATH = f"{V4}/clone"
VOICE_LIST_PATH = f"{V4}/list"
VOICE_DETAIL_PATH = f"{V4}/detail/"  # + the voice's document _id
PAGE_SIZE = 100
MAX_PAGES = 100  # 10 000 voices per type: beyond that something is wrong
VOICE_TYPES = (2, 1)  # 2: Akool's voices, 1: the account's clones
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def _doc_id(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise errors.ValidationError(
            field, f"must be an Akool _id (1-128 letters, digits, _ or -), got {value!r:.40}"
        )
    return value


class Transport(Protocol):
    """What VoiceLab needs of an ``AkoolClient``: its plan, its URL checks and its calls."""

    plan: str

    def add_url(self, body: dict[str, Any], key: str, field: str, url: str | None) -> None: ...

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        safe: bool,
    ) -> dict[str, Any]: ...


class VoiceLab:
    """The v4 calls of one ``AkoolClient`` (its credentials, session and retry budget)."""

    def __init__(self, client: Transport) -> None:
        self._client = client

    def create_tts(
        self,
        input_text: str,
        voice_id: str,
        *,
        voice_options: Mapping[str, Any] | None = None,
        language_code: str | None = None,
        extra_options: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
    ) -> AudioJob:
        """Submit text to speech (sent once). ``credits`` is Akool's ``deduction_credit``,
        charged now; the job may already be COMPLETED."""
        c = self._client
        body: dict[str, Any] = {
            "input_text": v4options.validate_v4_text(input_text, c.plan),
            "voice_id": validation.validate_voice_id(voice_id),
        }
        if voice_options:
            body["voice_options"] = v4options.validate_voice_options(voice_options)
        if language_code is not None:
            body["language_code"] = v4options.validate_language_code(language_code)
        if extra_options:
            body["extra_options"] = v4options.validate_extra_options(extra_options)
        c.add_url(body, "webhookUrl", "webhook_url", webhook_url)
        return self.post_tts(body)

    def post_tts(self, body: Mapping[str, Any]) -> AudioJob:
        """POST a tts body as it is (sent once): for a body made of a request validated
        already (worker/akool/v4api.py); ``create_tts`` validates its arguments first."""
        envelope = self._client.call("POST", TTS_PATH, body=body, safe=False)
        return parse_tts_job(envelope.get("data"), endpoint=f"POST {TTS_PATH}")

    def get_tts(self, resource_id: str) -> AudioJob:
        """The current record of a tts job (its ``_id``); the audio URL is ``preview``."""
        path = RESOURCE_DETAIL_PATH + quote(_doc_id("resource_id", resource_id), safe="")
        envelope = self._client.call("GET", path, safe=True)
        return parse_tts_job(envelope.get("data"), endpoint=f"GET {RESOURCE_DETAIL_PATH}{{_id}}")

    def clone_voice(
        self,
        source_voice_file: str,
        *,
        name: str | None = None,
        voice_model_name: str | None = None,
        voice_options: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
    ) -> ClonedVoice:
        """Clone a voice from a sample at a public URL (sent once): a new voice of the
        account, not audio; its ``voice_id`` comes when it is COMPLETED (poll ``get_voice``)."""
        c = self._client
        body: dict[str, Any] = {}
        c.add_url(body, "source_voice_file", "source_voice_file", source_voice_file)
        if name is not None:
            if not isinstance(name, str) or len(name) > 100:
                raise errors.ValidationError("name", "must be a string of at most 100 characters")
            body["name"] = name
        if voice_model_name is not None:
            body["voice_model_name"] = v4options.validate_clone_model(voice_model_name)
        if voice_options:
            body["voice_options"] = v4options.validate_clone_options(voice_options)
        c.add_url(body, "webhookUrl", "webhook_url", webhook_url)
        envelope = c.call("POST", CLONE_PATH, body=body, safe=False)
        return parse_cloned_voice(envelope.get("data"), endpoint=f"POST {CLONE_PATH}")

    def get_voice(self, voice_doc_id: str) -> ClonedVoice:
        """One voice by its document ``_id`` (not its ``voice_id``): poll a clone with it."""
        path = VOICE_DETAIL_PATH + quote(_doc_id("voice_doc_id", voice_doc_id), safe="")
        envelope = self._client.call("GET", path, safe=True)
        return parse_cloned_voice(envelope.get("data"), endpoint=f"GET {VOICE_DETAIL_PATH}{{_id}}")

    def list_voices(self, voice_type: int | None = None, page_size: int = PAGE_SIZE) -> list[Voice]:
        """Every voice of ``voice_type`` (2 Akool's, 1 the account's; None both), read page by
        page. Clones that are not done (no ``voice_id``) are left out."""
        if voice_type is not None and (isinstance(voice_type, bool) or voice_type not in (1, 2)):
            raise errors.ValidationError("type", f"must be 1, 2 or None, got {voice_type!r:.40}")
        if not 1 <= page_size <= PAGE_SIZE:
            raise errors.ValidationError("page_size", f"must be from 1 to {PAGE_SIZE}")
        voices: list[Voice] = []
        for kind in VOICE_TYPES if voice_type is None else (voice_type,):
            voices += self._all_pages(kind, page_size)
        return voices

    def list_clones(self, page_size: int = PAGE_SIZE) -> list[ClonedVoice]:
        """The account's cloned voices (``type=1``) as clone records, those not done yet
        included (``voice_id`` None): to find a clone whose answer was lost."""
        clones: list[ClonedVoice] = []
        for page in self._pages(1, page_size):
            for item in page.get("result") or []:
                try:
                    clones.append(parse_cloned_voice(item, endpoint=f"GET {VOICE_LIST_PATH}"))
                except errors.BadResponse:
                    continue  # a record without _id or status: not one we could use
        return clones

    def _all_pages(self, voice_type: int, size: int) -> list[Voice]:
        voices: list[Voice] = []
        for data in self._pages(voice_type, size):
            voices += parse_voice_page(
                data, voice_type, page=0, size=size, endpoint=f"GET {VOICE_LIST_PATH}"
            ).voices
        return voices

    def _pages(self, voice_type: int, size: int) -> list[Mapping[str, Any]]:
        """Every page's ``data`` of one ``type``, in order."""
        pages: list[Mapping[str, Any]] = []
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            params = {"type": voice_type, "page": page, "size": size}
            envelope = self._client.call("GET", VOICE_LIST_PATH, params=params, safe=True)
            data = envelope.get("data")
            got = parse_voice_page(
                data, voice_type, page=page, size=size, endpoint=f"GET {VOICE_LIST_PATH}"
            )
            assert isinstance(data, Mapping)  # parse_voice_page checked it
            pages.append(data)
            seen += got.received
            # The echoed size may differ from the one asked (A10): judge by what came back.
            if got.received < size or (got.count is not None and seen >= got.count):
                return pages
        raise errors.BadResponse(
            f"the voice list did not end within {MAX_PAGES} pages of {size}",
            endpoint=f"GET {VOICE_LIST_PATH}",
        )
