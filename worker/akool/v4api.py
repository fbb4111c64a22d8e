"""Akool's VoiceLab (v4) behind the ``SpeechApi`` interface (worker/akool/speech.py), over
``client.v4`` (worker/akool/v4client.py): speech with ``voice_options``, ``language_code`` and
``extra_options`` instead of ``rate``; a clone from a sample first makes a voice (the clone
stage's calls, ``cloner``), then speaks with it; every job reports its credits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from config.settings import Settings
from worker.akool import v4client
from worker.akool.audiorequest import (
    Api,
    AudioRequest,
    Kind,
    RequestError,
    foreign_field,
    notify_url,
    opt_str,
)
from worker.akool.client import AkoolClient
from worker.akool.errors import ValidationError
from worker.akool.models import AudioJob, Voice
from worker.akool.speechapi import VoiceCloner
from worker.akool.v4models import ClonedVoice, voice_from_cache
from worker.akool.v4options import (
    MODELS_OF,
    model_number,
    plan_name,
    rate_refused,
    unsupported_options,
    validate_clone_model,
    validate_clone_options,
    validate_extra_options,
    validate_language_code,
    validate_v4_text,
    validate_voice_options,
)
from worker.akool.validation import validate_http_url, validate_voice_id

#: The VoiceLab options of the speech, and those of a clone's voice.
SPEECH = frozenset({"voice_options", "language_code", "extra_options"})
CLONE = frozenset({"source_voice_file", "voice_model_name", "clone_options"})
_CLONE_FIELDS = SPEECH | CLONE | {"voice_url"}
# v4's voice types 2 (Akool's) and 1 (the account's) are v3's sources 3 and 4.
_TYPE_OF_SOURCE = {3: 2, 4: 1}


class VoiceLabCloner:
    """The clone stage's calls: clone a voice from a sample, poll it, find a lost one."""

    def clone_voice(
        self,
        client: AkoolClient,
        sample: str,
        voice_model_name: str | None,
        options: Mapping[str, Any] | None,
    ) -> ClonedVoice:
        # No webhookUrl: whether (and how) Akool calls back for a clone is undocumented.
        return client.v4.clone_voice(
            sample, voice_model_name=voice_model_name, voice_options=options
        )

    def get_voice(self, client: AkoolClient, voice_doc_id: str) -> ClonedVoice:
        return client.v4.get_voice(voice_doc_id)

    def list_clones(self, client: AkoolClient) -> list[ClonedVoice]:
        return client.v4.list_clones()


class V4Api:
    name: Api = "v4"
    label = "VoiceLab"
    reports_credits = True
    # Named after v3's attributes (at, miss) when the v4 cache was added: kept, as they are.
    voice_cache: tuple[tuple[str, ...], ...] = tuple(
        ("voices", "v4", part) for part in ("list", "ids", "at", "models", "miss")
    )
    voices_flag = " --api v4"
    voices_report = "v4_voices"
    endpoints: Mapping[str, str] = {
        v4client.TTS_PATH: "v4_tts",
        v4client.CLONE_PATH: "v4_clone",
        v4client.VOICE_LIST_PATH: "v4_voices",
    }
    endpoint_prefixes: Mapping[str, str] = {
        v4client.RESOURCE_DETAIL_PATH: "v4_detail",
        v4client.VOICE_DETAIL_PATH: "v4_voice_detail",
    }
    poll_endpoint = "v4_detail"
    cloner: VoiceCloner | None = VoiceLabCloner()

    def fields(self, kind: Kind) -> frozenset[str]:
        return SPEECH if kind == "create" else _CLONE_FIELDS

    def refuse(self, field: str, owner: Api, owner_label: str) -> ValidationError:
        if field == "rate":
            return rate_refused()  # never mapped to a speed
        return foreign_field(field, owner, owner_label, self.name)

    def parse(self, kind: Kind, kwargs: Mapping[str, Any], settings: Settings) -> AudioRequest:
        """create speaks with ``voice_id``; clone clones a voice from ``source_voice_file``
        (``voice_url`` is the same field under its v3 name), then speaks, or speaks at once
        with an existing ``voice_id``."""
        allow = settings.allow_private_hosts
        if kind == "create":
            given = sorted(CLONE & set(kwargs))
            if given:
                raise RequestError(given[0], "is for audio.clone, not audio.create")
        text = validate_v4_text(kwargs.get("input_text"), plan_name(settings.akool_plan))
        voice_id = opt_str(kwargs, "voice_id")
        sample = opt_str(kwargs, "source_voice_file")
        if sample is not None and opt_str(kwargs, "voice_url") is not None:
            raise RequestError(
                "voice_url", "give source_voice_file or voice_url (the same sample), not both"
            )
        sample = sample if sample is not None else opt_str(kwargs, "voice_url")
        if kind == "create" or sample is None:
            if voice_id is None:
                raise RequestError(
                    "voice_id" if kind == "create" else "source_voice_file",
                    "is required"
                    if kind == "create"
                    else "source_voice_file (the sample to clone) or voice_id is required",
                )
            voice_id = validate_voice_id(voice_id)
        if sample is not None:
            if voice_id is not None:
                raise RequestError("source_voice_file", "give a sample or voice_id, not both")
            sample = validate_http_url("source_voice_file", sample, allow_hosts=allow)
        elif "voice_model_name" in kwargs or "clone_options" in kwargs:
            field = "voice_model_name" if "voice_model_name" in kwargs else "clone_options"
            raise RequestError(field, "applies to a clone from source_voice_file only")
        options = kwargs.get("voice_options")
        extra = kwargs.get("extra_options")
        language = kwargs.get("language_code")
        model = kwargs.get("voice_model_name")
        clone = kwargs.get("clone_options")
        notify = notify_url(kwargs, allow)
        return AudioRequest(
            kind=kind,
            input_text=text,
            rate=None,
            voice_id=voice_id,
            voice_url=sample,
            notify_url=notify,
            notify_task=None,
            notify_queue="celery",
            api=self.name,
            voice_options=None if options is None else validate_voice_options(options),
            language_code=None if language is None else validate_language_code(language),
            extra_options=None if extra is None else validate_extra_options(extra),
            voice_model_name=None if model is None else validate_clone_model(model),
            clone_options=None if clone is None else validate_clone_options(clone),
        )

    def submit(
        self,
        client: AkoolClient,
        request: AudioRequest,
        webhook_url: str | None,
        voice_id: str | None = None,
    ) -> AudioJob:
        # VoiceLab speaks with a voice_id: the request's, or a clone's (``voice_id``).
        speaker = voice_id or request.voice_id
        assert speaker is not None
        # The request was validated when it was made (parse): it is sent as it is.
        body: dict[str, Any] = {"input_text": request.input_text, "voice_id": speaker}
        if request.voice_options:
            body["voice_options"] = request.voice_options
        if request.language_code is not None:
            body["language_code"] = request.language_code
        if request.extra_options:
            body["extra_options"] = request.extra_options
        client.add_url(body, "webhookUrl", "webhook_url", webhook_url)
        return client.v4.post_tts(body)

    def poll(self, client: AkoolClient, akool_id: str) -> AudioJob:
        return client.v4.get_tts(akool_id)

    def list_voices(self, client: AkoolClient, source: int | None) -> list[Voice]:
        return client.v4.list_voices(None if source is None else _TYPE_OF_SOURCE[source])

    def cached_voices(self, raw: list[dict[str, Any]]) -> list[Voice]:
        return [v for v in map(voice_from_cache, raw) if v is not None]

    def voice_detail(self, voice: Voice) -> str | None:
        return voice.model

    def options_problem(
        self, request: AudioRequest, model_of: Callable[[str], str | None]
    ) -> tuple[str, str] | None:
        if not request.voice_id:
            return None
        model = model_of(request.voice_id)
        unsupported = unsupported_options(
            model, request.voice_options, request.language_code, request.extra_options
        )
        if not unsupported:
            return None
        name = unsupported[0]
        models = ", ".join(str(n) for n in sorted(MODELS_OF[name]))
        return name, (
            f"{name}: voice {request.voice_id!r} is an {model} voice (model "
            f"{model_number(model)}), which does not support {name} (models {models} do)"
        )
