"""AkoolClient's VoiceLab (v4) calls against the real sandbox over loopback: tts, resource
detail, the paginated voice list, clone and voice detail; every option check, refused before
anything is sent; the plan's character limit; faults and retries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from sandbox import (
    AKOOL_VOICES,
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    OWN_VOICES,
    SandboxServer,
)
from worker.akool import AkoolClient, AudioStatus, errors
from worker.akool.v4options import unsupported_options
from worker.fleet.counters import endpoint_of

VOICE = AKOOL_VOICES[0]["voice_id"]
TEXT = "Hello from VoiceLab, this is a test of the v4 client."
ClientFactory = Callable[..., AkoolClient]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(autouse=True)
def _fresh(sb: SandboxServer) -> None:
    sb.reset()
    sb.configure(lifecycle={"mode": "polls", "polls": 2})


@pytest.fixture()
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture()
def make_client(sb: SandboxServer, sleeps: Sleeps) -> Iterator[ClientFactory]:
    made: list[AkoolClient] = []

    def make(auth: str = "key", **kwargs: Any) -> AkoolClient:
        creds: dict[str, Any] = (
            {"api_key": DEFAULT_API_KEY}
            if auth == "key"
            else {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
        )
        kwargs.setdefault("sleep", sleeps)
        client = AkoolClient(sb.url, **creds, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def requests_to(sb: SandboxServer, endpoint: str) -> int:
    return int(sb.stats()["requests"][endpoint])


def fault(endpoint: str, kind: str, times: int = 1, **extra: Any) -> dict[str, Any]:
    return {"endpoint": endpoint, "kind": kind, "times": times, **extra}


# -- every endpoint -------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["key", "token"])
def test_tts_then_poll_the_resource_until_preview(
    sb: SandboxServer, make_client: ClientFactory, auth: str
) -> None:
    client = make_client(auth)
    job = client.v4.create_tts(
        "x" * 117,
        VOICE,
        voice_options={"speed": 1.1, "stability": 0.5},
        language_code="en",
    )
    assert job.status is AudioStatus.QUEUEING and job.url is None
    assert job.credits == 0.5148 and job.duration_ms == 0
    done = client.v4.get_tts(job.id)
    done = client.v4.get_tts(job.id) if not done.status.is_final else done
    assert done.status is AudioStatus.COMPLETED and done.id == job.id
    assert done.url is not None and done.url.endswith(f"/files/{job.id}.wav")  # preview
    assert done.duration_ms is not None and done.duration_ms > 0  # milliseconds
    assert requests.get(done.url, timeout=5).status_code == 200
    assert requests_to(sb, "v4_detail") == 2


def test_the_detail_record_is_read_at_data_or_at_data_result(
    sb: SandboxServer, make_client: ClientFactory
) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    client = make_client()
    job = client.v4.create_tts(TEXT, VOICE)
    assert job.status is AudioStatus.COMPLETED and job.url  # done at create
    wrapped = client.v4.get_tts(job.id)
    sb.configure(v4_detail_wrapped=False)  # A5: the other shape
    flat = client.v4.get_tts(job.id)
    assert (wrapped.id, wrapped.url, wrapped.credits) == (flat.id, flat.url, flat.credits)


def test_wav_audio_setting_is_sent(sb: SandboxServer, make_client: ClientFactory) -> None:
    client = make_client()
    setting = {"format": "wav", "sample_rate": 22050, "channel": 2, "bitrate": 32000}
    job = client.v4.create_tts(TEXT, VOICE, extra_options={"audio_setting": setting})
    view = sb.job(job.id)
    assert (view["format"], view["sample_rate"], view["channels"]) == ("wav", 22050, 2)


def test_voice_list_is_read_page_by_page(sb: SandboxServer, make_client: ClientFactory) -> None:
    client = make_client()
    voices = client.v4.list_voices(page_size=3)
    assert [v.voice_id for v in voices] == [v["voice_id"] for v in (*AKOOL_VOICES, *OWN_VOICES)]
    assert requests_to(sb, "v4_voices") == 3 + 1  # 7 Akool voices in pages of 3, then 2 own
    first = voices[0]
    assert (first.api, first.source, first.model) == ("v4", 3, "Akool Multilingual 1")
    assert first.doc_id == AKOOL_VOICES[0]["_id"] and first.preview
    assert {v.source for v in client.v4.list_voices(1)} == {4}
    assert len(client.v4.list_voices(2, page_size=100)) == len(AKOOL_VOICES)


def test_clone_poll_the_voice_then_speak_with_it(
    sb: SandboxServer, make_client: ClientFactory
) -> None:
    client = make_client()
    voice = client.v4.clone_voice(
        f"{sb.url}/previews/{VOICE}.wav",
        name="sample",
        voice_model_name="Akool Multilingual 3",
        voice_options={"gender": "Female", "language": "en", "remove_background_noise": True},
    )
    assert voice.status is AudioStatus.QUEUEING and voice.voice_id is None
    assert sb.clone(voice.id)["voice_url"] == f"{sb.url}/previews/{VOICE}.wav"
    pending = client.v4.list_voices(1)
    assert voice.id not in {v.doc_id for v in pending}  # no voice_id yet: left out
    seen = [client.v4.get_voice(voice.id) for _ in range(2)]
    done = seen[-1]
    assert done.status is AudioStatus.COMPLETED and done.voice_id and done.preview
    assert done.model == "Akool Multilingual 3"
    job = client.v4.create_tts(TEXT, done.voice_id)
    assert job.raw["voice_model_id"] == voice.id
    assert voice.id in {v.doc_id for v in client.v4.list_voices(1)}


# -- validation: refused before anything is sent ---------------------------------------------


def _tts(**change: Any) -> Callable[[AkoolClient], Any]:
    args = {"input_text": TEXT, "voice_id": VOICE, **change}
    return lambda c: c.v4.create_tts(**args)


def _clone(**change: Any) -> Callable[[AkoolClient], Any]:
    args = {"source_voice_file": "https://example.com/me.mp3", **change}
    return lambda c: c.v4.clone_voice(**args)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (_tts(voice_options={"speed": 1.3}), "voice_options.speed"),
        (_tts(voice_options={"speed": 0.69}), "voice_options.speed"),
        (_tts(voice_options={"speed": "fast"}), "voice_options.speed"),
        (_tts(voice_options={"stability": 1.1}), "voice_options.stability"),
        (_tts(voice_options={"similarity_boost": -0.1}), "voice_options.similarity_boost"),
        (_tts(voice_options={"style": float("nan")}), "voice_options.style"),
        (_tts(voice_options={"speaker_boost": 1}), "voice_options.speaker_boost"),
        (_tts(voice_options={"emotion": "bored"}), "voice_options.emotion"),
        (_tts(voice_options={"volume": 101}), "voice_options.volume"),
        (_tts(voice_options={"volume": True}), "voice_options.volume"),
        (_tts(voice_options={"volume": 1.5}), "voice_options.volume"),
        (_tts(voice_options={"sped": 1.0}), "voice_options.sped"),
        (_tts(voice_options=[0.9]), "voice_options"),
        (_tts(language_code="EN"), "language_code"),
        (_tts(language_code="english"), "language_code"),
        (_tts(extra_options={"audio_setting": {"format": "ogg"}}), "format"),
        (_tts(extra_options={"audio_setting": {"sample_rate": 48000}}), "sample_rate"),
        (_tts(extra_options={"audio_setting": {"bitrate": 1}}), "bitrate"),
        (_tts(extra_options={"audio_setting": {"channel": 0}}), "channel"),
        (_tts(extra_options={"audio_setting": {"loud": 1}}), "audio_setting.loud"),
        (_tts(extra_options={"previous_text": "x"}), "extra_options.previous_text"),
        (_tts(input_text="é" * 5001), "input_text"),  # the pro plan's limit
        (_tts(input_text="   "), "input_text"),
        (_tts(voice_id="../x"), "voice_id"),
        (_tts(webhook_url="http://10.0.0.1/hook"), "webhook_url"),
        (_clone(source_voice_file="ftp://example.com/me.mp3"), "source_voice_file"),
        (_clone(source_voice_file="http://192.168.1.2/me.mp3"), "source_voice_file"),
        (_clone(voice_model_name="Akool Multilingual 2"), "voice_model_name"),
        (_clone(voice_model_name="Best Model"), "voice_model_name"),
        (_clone(voice_options={"gender": [1]}), "voice_options.gender"),
        (_clone(voice_options={"remove_background_noise": "no"}), "remove_background_noise"),
        (_clone(voice_options={"speed": 1.0}), "voice_options.speed"),
        (_clone(voice_options={"language": "english"}), "voice_options.language"),
        (_clone(name="n" * 101), "name"),
        (lambda c: c.v4.get_tts("a/b"), "resource_id"),
        (lambda c: c.v4.get_voice(""), "voice_doc_id"),
        (lambda c: c.v4.list_voices(3), "type"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(
    sb: SandboxServer, make_client: ClientFactory, call: Callable[[AkoolClient], Any], field: str
) -> None:
    client = make_client()
    with pytest.raises(errors.ValidationError) as info:
        call(client)
    assert field in info.value.field or field in str(info.value)
    assert sum(sb.stats()["requests"].values()) == 0


def test_the_plan_sets_the_character_limit(sb: SandboxServer, make_client: ClientFactory) -> None:
    sb.configure(plan="max")
    assert make_client(plan="Pro Max").v4.create_tts("a" * 10_000, VOICE).credits == 32.0
    with pytest.raises(errors.ValidationError, match="10000 characters on Akool's max plan"):
        make_client(plan="max").v4.create_tts("a" * 10_001, VOICE)
    with pytest.raises(errors.ConfigurationError, match="AKOOL_PLAN"):
        make_client(plan="enterprise")


def test_the_model_support_table() -> None:
    speed = {"speed": 1.0}
    assert unsupported_options("Akool Multilingual 1", speed, "en", None) == []
    assert unsupported_options("Akool Multilingual 4", speed, None, None) == ["voice_options.speed"]
    assert unsupported_options("Akool Multilingual 2", {"emotion": "sad"}, "zh", None) == [
        "language_code"
    ]
    wav = {"audio_setting": {"format": "wav", "channel": 2}}
    assert unsupported_options("Akool Multilingual 1", {"stability": 1}, None, wav) == [
        "extra_options.audio_setting.format",
        "extra_options.audio_setting.channel",
    ]
    assert unsupported_options("Akool Multilingual 3", {"emotion": "sad"}, "yue", wav) == []
    assert unsupported_options(None, {"stability": 1}, None, wav) == []  # unknown: Akool judges


# -- faults ---------------------------------------------------------------------------------------


def test_tts_and_clone_are_sent_once_whatever_the_error(
    sb: SandboxServer, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    client = make_client(get_retries=3)
    sb.configure(faults=[fault("v4_tts", "code", code=1005), fault("v4_clone", "http_500_html")])
    with pytest.raises(errors.RateLimited):
        client.v4.create_tts(TEXT, VOICE)
    with pytest.raises(errors.HTTPStatusError):
        client.v4.clone_voice("https://example.com/me.mp3")
    assert (requests_to(sb, "v4_tts"), requests_to(sb, "v4_clone")) == (1, 1)
    assert sleeps == []


def test_gets_are_retried_and_errors_map_to_classes(
    sb: SandboxServer, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    client = make_client(get_retries=2)
    job = client.v4.create_tts(TEXT, VOICE)
    sb.configure(faults=[fault("v4_detail", "http_500_html", times=2)])
    assert client.v4.get_tts(job.id).id == job.id
    assert len(sleeps) == 2 and requests_to(sb, "v4_detail") == 3
    sb.configure(faults=[fault("v4_voices", "malformed_json", times=3)])
    with pytest.raises(errors.BadResponse):
        client.v4.list_voices(2)
    with pytest.raises(errors.NotFound):
        client.v4.get_tts("0" * 24)
    with pytest.raises(errors.NotFound):
        client.v4.get_voice("0" * 24)
    sb.configure(faults=[fault("v4_tts", "code", code=1104)])
    with pytest.raises(errors.QuotaExceeded):
        client.v4.create_tts(TEXT, VOICE)


def test_status_4_is_a_failed_record_not_an_error(
    sb: SandboxServer, make_client: ClientFactory
) -> None:
    client = make_client()
    sb.configure(faults=[fault("v4_tts", "status_4"), fault("v4_clone", "status_4")])
    job = client.v4.create_tts(TEXT, VOICE)
    voice = client.v4.clone_voice("https://example.com/me.mp3")
    statuses = [(client.v4.get_tts(job.id).status, client.v4.get_voice(voice.id).status)]
    statuses.append((client.v4.get_tts(job.id).status, client.v4.get_voice(voice.id).status))
    assert statuses[-1] == (AudioStatus.FAILED, AudioStatus.FAILED)


def test_calls_are_counted_by_v4_endpoint_name() -> None:
    assert endpoint_of("/api/open/v4/voice/tts") == "v4_tts"
    assert endpoint_of("/api/open/v4/voice/resource/detail/abc") == "v4_detail"
    assert endpoint_of("/api/open/v4/voice/detail/abc") == "v4_voice_detail"
    assert endpoint_of("/api/open/v4/voice/clone") == "v4_clone"
    assert endpoint_of("/api/open/v4/voice/list") == "v4_voices"
    assert endpoint_of("/api/open/v4/voice/del") == "other"
