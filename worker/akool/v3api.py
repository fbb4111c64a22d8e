"""Akool's Audio API (v3) behind the ``SpeechApi`` interface (worker/akool/speech.py): create
speaks with a voice id, clone speaks at once from a sample or a voice id, ``rate`` sets the pace,
nothing reports credits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from config.settings import Settings
from worker.akool.audiorequest import (
    Api,
    AudioRequest,
    Kind,
    RequestError,
    foreign_field,
    notify_url,
    opt_str,
)
from worker.akool.client import (
    CLONE_PATH,
    CREATE_PATH,
    DETAIL_PATH,
    TOKEN_PATH,
    VOICES_PATH,
    AkoolClient,
)
from worker.akool.errors import ValidationError
from worker.akool.models import AudioJob, Voice, parse_voices
from worker.akool.speechapi import VoiceCloner
from worker.akool.validation import (
    validate_http_url,
    validate_rate,
    validate_text,
    validate_voice_id,
)

_CREATE = frozenset({"rate"})
_CLONE = frozenset({"rate", "voice_url"})


class V3Api:
    name: Api = "v3"
    label = "Audio"
    reports_credits = False
    voice_cache: tuple[tuple[str, ...], ...] = tuple(
        ("voices", part) for part in ("list", "ids", "fetched_at", "models", "miss-refresh")
    )
    voices_flag = ""
    voices_report = "voices"
    endpoints: Mapping[str, str] = {
        CREATE_PATH: "create",
        CLONE_PATH: "clone",
        DETAIL_PATH: "detail",
        VOICES_PATH: "voices",
        TOKEN_PATH: "token",
    }
    endpoint_prefixes: Mapping[str, str] = {}
    poll_endpoint = "detail"
    cloner: VoiceCloner | None = None

    def fields(self, kind: Kind) -> frozenset[str]:
        return _CREATE if kind == "create" else _CLONE

    def refuse(self, field: str, owner: Api, owner_label: str) -> ValidationError:
        return foreign_field(field, owner, owner_label, self.name)

    def parse(self, kind: Kind, kwargs: Mapping[str, Any], settings: Settings) -> AudioRequest:
        allow = settings.allow_private_hosts
        text = validate_text(kwargs.get("input_text"), settings.akool_max_words)
        rate = validate_rate(kwargs.get("rate", "100%"))
        voice_id = opt_str(kwargs, "voice_id")
        voice_url = opt_str(kwargs, "voice_url")
        if kind == "create" or voice_url is None:
            if voice_id is None:
                field = "voice_id" if kind == "create" else "voice_url"
                raise RequestError(
                    field,
                    "is required" if kind == "create" else "voice_url or voice_id is required",
                )
            voice_id = validate_voice_id(voice_id)
        if voice_url is not None:
            if voice_id is not None:
                raise RequestError("voice_url", "give voice_url or voice_id, not both")
            voice_url = validate_http_url("voice_url", voice_url, allow_hosts=allow)
        notify = notify_url(kwargs, allow)
        return AudioRequest(kind, text, rate, voice_id, voice_url, notify, None, "celery")

    def submit(
        self,
        client: AkoolClient,
        request: AudioRequest,
        webhook_url: str | None,
        voice_id: str | None = None,
    ) -> AudioJob:
        # The request was validated when it was made (parse): it is sent as it is.
        body: dict[str, Any] = {"input_text": request.input_text, "rate": request.rate}
        if request.voice_id is not None:
            body["voice_id"] = request.voice_id
        if request.voice_url is not None:
            body["voice_url"] = request.voice_url
        client.add_url(body, "webhookUrl", "webhook_url", webhook_url)
        return client.post_audio(request.kind, body)

    def poll(self, client: AkoolClient, akool_id: str) -> AudioJob:
        return client.get_audio(akool_id)

    def list_voices(self, client: AkoolClient, source: int | None) -> list[Voice]:
        return client.list_voices(source)

    def cached_voices(self, raw: list[dict[str, Any]]) -> list[Voice]:
        return parse_voices(raw, endpoint="voice cache")

    def voice_detail(self, voice: Voice) -> str | None:
        return voice.accent

    def options_problem(
        self, request: AudioRequest, model_of: Callable[[str], str | None]
    ) -> tuple[str, str] | None:
        return None  # v3 has no per-model options
