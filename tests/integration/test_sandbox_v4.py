"""The sandbox's VoiceLab (v4) as a client sees it: tts, resource detail, clone, voice list and
voice detail over real HTTP, with their lifecycle, plans and credits, audio, faults and webhooks."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import wave
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from sandbox import (
    AKOOL_VOICES,
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    OFFICIAL_VOICE_IDS,
    OWN_VOICES,
    SandboxServer,
)
from tests.support.wait import until
from worker.akool.crypto import open_envelope

V4 = "/api/open/v4/voice"
KEY = {"x-api-key": DEFAULT_API_KEY}
VOICE = AKOOL_VOICES[0]["voice_id"]  # Akool Multilingual 1
MODEL3_VOICE = next(v for v in AKOOL_VOICES if v["voice_model_name"].endswith("3"))
TEXT_117 = "x" * 117  # Akool's one reconciling example: 117 characters x 4.4 / 1000 = 0.5148


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(autouse=True)
def _fresh(sb: SandboxServer) -> None:
    sb.reset()
    sb.configure(lifecycle={"mode": "polls", "polls": 3})


@pytest.fixture()
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


class V4Client:
    """The v4 calls the tests repeat, with x-api-key auth; each returns the whole envelope."""

    def __init__(self, sb: SandboxServer, http: requests.Session) -> None:
        self.sb, self.http = sb, http

    def post(self, path: str, body: Any) -> dict[str, Any]:
        r = self.http.post(f"{self.sb.url}{V4}/{path}", json=body, headers=KEY, timeout=5)
        assert r.status_code == 200
        out: dict[str, Any] = r.json()
        return out

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        r = self.http.get(f"{self.sb.url}{V4}/{path}", params=params, headers=KEY, timeout=5)
        assert r.status_code == 200
        out: dict[str, Any] = r.json()
        return out

    def tts(self, text: str = "hello voicelab", **extra: Any) -> dict[str, Any]:
        return self.post("tts", {"input_text": text, "voice_id": VOICE, **extra})

    def detail(self, akool_id: str) -> dict[str, Any]:
        return self.get(f"resource/detail/{akool_id}")

    def clone(self, source: str = "https://example.com/me.mp3", **extra: Any) -> dict[str, Any]:
        return self.post("clone", {"source_voice_file": source, **extra})

    def voice(self, voice_doc_id: str) -> dict[str, Any]:
        return self.get(f"detail/{voice_doc_id}")

    def done(self, read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            record = read()
            return record if record["status"] in (3, 4) else None

        out: dict[str, Any] = until(final, 5.0, "a final status", interval=0.02)
        return out


@pytest.fixture()
def v4(sb: SandboxServer, http: requests.Session) -> V4Client:
    return V4Client(sb, http)


# -- voice list and voice detail ------------------------------------------------------------------


def test_voice_list_pages_by_type_with_count_page_and_size(v4: V4Client) -> None:
    first = v4.get("list", type=2, page=1, size=3)
    assert first["code"] == 1000
    data = first["data"]
    assert set(data) == {"result", "count", "page", "size"}
    assert (data["count"], data["page"], data["size"]) == (len(AKOOL_VOICES), 1, 3)
    pages = [v4.get("list", type="2", page=p, size="3")["data"]["result"] for p in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert [v["voice_id"] for p in pages for v in p] == [v["voice_id"] for v in AKOOL_VOICES]
    default = v4.get("list", type=2)["data"]
    assert (default["page"], default["size"]) == (1, 10)
    assert v4.get("list", type=2, size=1000)["data"]["size"] == 100  # clamped (a guess)
    own = v4.get("list", type=1)["data"]
    assert [v["voice_id"] for v in own["result"]] == [v["voice_id"] for v in OWN_VOICES]


@pytest.mark.parametrize("query", [{}, {"type": 3}, {"type": "x"}, {"type": 2, "page": 0},
                                   {"type": 2, "size": "ten"}])  # fmt: skip
def test_voice_list_refuses_a_bad_type_page_or_size(v4: V4Client, query: dict[str, Any]) -> None:
    assert v4.get("list", **query)["code"] == 1003


def test_voice_records_have_the_documented_fields_and_playable_previews(
    v4: V4Client, http: requests.Session
) -> None:
    fields = [
        "_id",
        "uid",
        "team_id",
        "voice_id",
        "gender",
        "language",
        "locale",
        "name",
        "preview",
        "text",
        "duration",
        "status",
        "create_time",
        "update_time",
        "style",
        "scenario",
        "age",
        "deduction_credit",
        "webhookUrl",
        "voice_model_name",
        "support_stream",
    ]
    result = v4.get("list", type=2)["data"]["result"]
    assert {len(v["voice_id"]) for v in result} == {20, 64}  # both shapes of the docs (A1)
    for voice in result:
        assert set(fields) <= set(voice)
        assert isinstance(voice["support_stream"], bool)  # an integer in the query (A10)
        assert voice["support_stream"] == voice["voice_model_name"].endswith(("1", "3"))
    with wave.open(io.BytesIO(http.get(result[0]["preview"]).content)) as w:
        assert w.getnframes() > 0
    assert v4.voice(result[0]["_id"])["data"]["voice_id"] == result[0]["voice_id"]
    assert v4.voice("0" * 24)["code"] == 1008


def test_voice_list_filters(v4: V4Client) -> None:
    def ids(**filters: Any) -> set[str]:
        return {v["name"] for v in v4.get("list", type=2, **filters)["data"]["result"]}

    assert ids(name="soph") == {"Sophia"}
    assert ids(gender="Male") == {"Liam", "Oskar", "Wing"}
    assert ids(support_stream=2) == {"Mei", "Oskar", "Ana"}  # models 2 and 4
    # Both spellings of the tag match both (A12).
    assert ids(scenario="Advertisement") == ids(scenario="Advertisenment")
    assert "Wing" in ids(scenario="Advertisement")


# -- tts and resource detail ----------------------------------------------------------------------


def test_tts_record_credits_and_lifecycle_to_preview_in_ms(
    v4: V4Client, sb: SandboxServer, http: requests.Session
) -> None:
    created = v4.tts(TEXT_117, voice_options={"speed": 0.9})
    assert created["code"] == 1000
    data = created["data"]
    assert data["status"] == 1 and data["preview"] is None and data["duration"] == 0
    assert data["deduction_credit"] == 0.5148  # charged at submit, pro rata
    assert data["voice_id"] == VOICE and data["voice_model_id"] == AKOOL_VOICES[0]["_id"]
    assert data["voice_options"] == {"speed": 0.9}
    assert "url" not in data
    assert len(data["_id"]) == 24 and data["file_name"].endswith(".mp3")
    statuses = []
    for _ in range(3):
        result = v4.detail(data["_id"])["data"]["result"]
        statuses.append(result["status"])
    assert statuses == [1, 2, 3]
    assert result["preview"] != data["file_name"]  # not built from file_name (A6)
    audio = http.get(result["preview"]).content
    with wave.open(io.BytesIO(audio)) as w:  # no MP3 encoder: v3's WAV generator
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)
        assert result["duration"] == round(1000 * w.getnframes() / w.getframerate())
    assert sb.job(data["_id"])["sha256"] == hashlib.sha256(audio).hexdigest()
    assert sb.stats()["credits"] == 0.5148
    assert sb.stats()["submissions"] == 1


def test_tts_wav_follows_the_audio_setting(v4: V4Client, http: requests.Session) -> None:
    v4.sb.configure(lifecycle={"mode": "immediate"})
    setting = {"format": "wav", "sample_rate": 44100, "channel": 2, "bitrate": 64000}
    data = v4.tts("one two three", extra_options={"audio_setting": setting})["data"]
    assert data["status"] == 3 and data["file_name"].endswith(".wav")  # done at create
    with wave.open(io.BytesIO(http.get(data["preview"]).content)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (44100, 2, 2)
        assert w.getnframes() == 3 * 3528  # 80 ms per word


@pytest.mark.parametrize(
    ("plan", "chars", "code", "credits"),
    [
        ("pro", 5000, 1000, 22.0),
        ("pro", 5001, 1003, None),
        ("Pro Max", 10000, 1000, 32.0),  # the TTS table's name for "max" (A11)
        ("max", 10001, 1003, None),
        ("business", 50000, 1000, 120.0),
    ],
)
def test_plan_sets_the_character_limit_and_the_price(
    v4: V4Client, plan: str, chars: int, code: int, credits: float | None
) -> None:
    v4.sb.configure(plan=plan)
    answer = v4.tts("é" * chars)  # code points, not UTF-8 bytes
    assert answer["code"] == code
    if credits is None:
        assert "characters" in answer["msg"] and v4.sb.stats()["submissions"] == 0
    else:
        assert answer["data"]["deduction_credit"] == credits


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"input_text": ""}, "input_text"),
        ({"voice_id": None}, "voice_id"),
        ({"voice_id": "nope"}, "voice_id"),
        ({"voice_id": OFFICIAL_VOICE_IDS[0]}, "voice_id"),  # a v3 voice is not a v4 voice
        ({"voice_options": {"speed": 1.3}}, "speed"),
        ({"voice_options": {"speed": 0.5}}, "speed"),
        ({"voice_options": {"stability": 1.5}}, "stability"),
        ({"voice_options": {"similarity_boost": -0.1}}, "similarity_boost"),
        ({"voice_options": {"style": "calm"}}, "style"),
        ({"voice_options": {"speaker_boost": "yes"}}, "speaker_boost"),
        ({"voice_options": {"emotion": "bored"}}, "emotion"),
        ({"voice_options": {"volume": 101}}, "volume"),
        ({"voice_options": {"volume": 50.5}}, "volume"),
        ({"voice_options": [1]}, "voice_options"),
        ({"language_code": "english"}, "language_code"),
        ({"extra_options": {"audio_setting": {"format": "ogg"}}}, "format"),
        ({"extra_options": {"audio_setting": {"sample_rate": 48000}}}, "sample_rate"),
        ({"extra_options": {"audio_setting": {"bitrate": 100}}}, "bitrate"),
        ({"extra_options": {"audio_setting": {"channel": 3}}}, "channel"),
        ({"pitch": 13}, "pitch"),
        ({"extra_options": {"pitch": -13}}, "pitch"),  # where the table puts it (A3)
        ({"webhookUrl": "ftp://x/y"}, "webhookUrl"),
    ],
)
def test_tts_validation_answers_1003_and_creates_nothing(
    v4: V4Client, change: dict[str, Any], needle: str
) -> None:
    body = {"input_text": "hi", "voice_id": VOICE, **change}
    answer = v4.post("tts", {k: v for k, v in body.items() if v is not None})
    assert answer["code"] == 1003 and needle in answer["msg"]
    assert v4.sb.stats()["submissions"] == 0 and v4.sb.stats()["credits"] == 0


def test_tts_accepts_every_documented_option_and_the_voice_document_id(v4: V4Client) -> None:
    body = {
        "input_text": "你好",
        "voice_id": MODEL3_VOICE["_id"],  # the examples send a 24-hex _id (A1)
        "voice_options": {"speed": 1.2, "emotion": "happy", "volume": 0, "style": 1},
        "language_code": "yue",  # three letters, though the docs say ISO 639-1 (A4)
        "pitch": -5,
        "extra_options": {"audio_setting": {"format": "wav", "sample_rate": 8000}},
    }
    data = v4.post("tts", body)["data"]
    assert data["voice_id"] == MODEL3_VOICE["voice_id"]
    assert v4.sb.job(data["_id"])["language_code"] == "yue"


def test_detail_shapes_and_unknown_ids(v4: V4Client, sb: SandboxServer) -> None:
    akool_id = v4.tts()["data"]["_id"]
    wrapped = v4.detail(akool_id)["data"]
    assert set(wrapped) == {"result"} and wrapped["result"]["_id"] == akool_id
    fields = (
        "_id create_time update_time uid team_id input_text rate status webhookUrl duration "
        "file_name gender deduction_credit name priority language_code __v preview"
    )
    assert set(fields.split()) == set(wrapped["result"])
    sb.configure(v4_detail_wrapped=False)  # the other shape a client must accept (A5)
    assert v4.detail(akool_id)["data"]["_id"] == akool_id
    assert v4.detail("0" * 24)["code"] == 1008
    v3 = sb.url + "/api/open/v3/audio/infobymodelid"
    assert v4.http.get(v3, params={"audio_model_id": akool_id}, headers=KEY).json()["code"] == 1008


# -- clone ----------------------------------------------------------------------------------------


def test_clone_makes_a_voice_that_tts_can_speak_with(v4: V4Client, sb: SandboxServer) -> None:
    options = {"gender": ["Female"], "style": ["Calm"], "language": "pt", "clone_prompt": "Olá"}
    made = v4.clone(name="Me", voice_model_name="Akool Multilingual 3", voice_options=options)
    voice = made["data"]
    assert made["code"] == 1000 and voice["status"] == 1
    assert voice["voice_id"] is None and voice["preview"] is None
    assert voice["deduction_credit"] == 0 and voice["gender"] == "Female"  # a string (A13)
    assert sb.stats()["clones_by_source"] == {"https://example.com/me.mp3": 1}
    done = v4.done(lambda: v4.voice(voice["_id"])["data"])
    assert done["status"] == 3 and len(done["voice_id"]) == 64
    assert done["voice_model_name"] == "Akool Multilingual 3" and done["name"] == "Me"
    assert v4.http.get(done["preview"]).status_code == 200
    own = v4.get("list", type=1)["data"]["result"]
    assert done["voice_id"] in [v["voice_id"] for v in own]
    spoken = v4.tts(voice_id=done["voice_id"])["data"]
    assert spoken["voice_model_id"] == voice["_id"]
    assert sb.clone(voice["_id"])["new_voice_id"] == done["voice_id"]


def test_a_pending_clone_cannot_speak_and_is_listed_without_voice_id(v4: V4Client) -> None:
    voice = v4.clone()["data"]
    assert v4.tts(voice_id=voice["_id"])["code"] == 1003  # not done yet
    pending = [v for v in v4.get("list", type=1)["data"]["result"] if v["_id"] == voice["_id"]]
    assert pending and pending[0]["voice_id"] is None


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "source_voice_file"),
        ({"source_voice_file": "ftp://x/y.mp3"}, "source_voice_file"),
        ({"voice_model_name": "Akool Multilingual 2"}, "cannot clone"),
        ({"voice_model_name": "Akool Multilingual 9"}, "voice_model_name"),
        ({"voice_options": {"gender": [1]}}, "gender"),
        ({"voice_options": {"remove_background_noise": "no"}}, "remove_background_noise"),
    ],
)
def test_clone_validation(v4: V4Client, body: dict[str, Any], needle: str) -> None:
    if "source_voice_file" not in body and body:
        body = {"source_voice_file": "https://example.com/me.mp3", **body}
    answer = v4.post("clone", body)
    assert answer["code"] == 1003 and needle in answer["msg"]
    assert v4.sb.stats()["clones"] == 0


def test_clone_quota_follows_the_plan(v4: V4Client, sb: SandboxServer) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    for n in range(30 - len(OWN_VOICES)):
        assert v4.clone(f"https://example.com/{n}.mp3")["code"] == 1000
    refused = v4.clone("https://example.com/one-too-many.mp3")
    assert refused["code"] == 1006 and "30" in refused["msg"]
    sb.configure(plan="max")
    assert v4.clone("https://example.com/on-max.mp3")["code"] == 1000


def test_clone_fail_marker_ends_in_status_4(v4: V4Client) -> None:
    voice = v4.clone("https://example.com/[[fail]].mp3")["data"]
    done = v4.done(lambda: v4.voice(voice["_id"])["data"])
    assert done["status"] == 4 and done["voice_id"] is None


# -- faults ---------------------------------------------------------------------------------------


def fault(endpoint: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"endpoint": endpoint, "kind": kind, "times": 1, **extra}


def test_code_fault_on_tts_creates_nothing_and_charges_nothing(v4: V4Client) -> None:
    v4.sb.configure(faults=[fault("v4_tts", "code", code=1201)])
    assert v4.tts()["code"] == 1201
    assert v4.sb.stats()["submissions"] == 0 and v4.sb.stats()["credits"] == 0
    assert v4.tts()["code"] == 1000


@pytest.mark.parametrize(
    ("endpoint", "start", "read"),
    [
        ("v4_tts", "tts", "detail"),
        ("v4_detail", "tts", "detail"),
        ("v4_clone", "clone", "voice"),
        ("v4_voice_detail", "clone", "voice"),
    ],
)
def test_status_4_fault_on_each_endpoint(
    v4: V4Client, endpoint: str, start: str, read: str
) -> None:
    v4.sb.configure(faults=[fault(endpoint, "status_4")])
    created = getattr(v4, start)()["data"]

    def record() -> dict[str, Any]:
        data = getattr(v4, read)(created["_id"])["data"]
        return dict(data.get("result", data))

    assert v4.done(record)["status"] == 4
    assert v4.sb.stats()["faults_fired"] == {"status_4": 1}


def test_url_404_fault_on_tts(v4: V4Client, http: requests.Session) -> None:
    v4.sb.configure(lifecycle={"mode": "immediate"}, faults=[fault("v4_tts", "url_404")])
    broken, fine = v4.tts()["data"], v4.tts()["data"]
    assert http.get(broken["preview"]).status_code == 404
    assert http.get(fine["preview"]).status_code == 200


def test_transport_faults_on_the_list_and_the_voice_detail(
    v4: V4Client, http: requests.Session
) -> None:
    v4.sb.configure(faults=[fault("v4_voices", "http_500_html", http_status=502)])
    r = http.get(f"{v4.sb.url}{V4}/list", params={"type": 2}, headers=KEY)
    assert r.status_code == 502 and "<html>" in r.text
    v4.sb.configure(faults=[fault("v4_voice_detail", "drop")])
    with pytest.raises(requests.ConnectionError):
        http.get(f"{v4.sb.url}{V4}/detail/{AKOOL_VOICES[0]['_id']}", headers=KEY, timeout=5)
    v4.sb.configure(faults=[fault("v4_clone", "malformed_json")])
    with pytest.raises(requests.JSONDecodeError):
        http.post(f"{v4.sb.url}{V4}/clone", json={}, headers=KEY).json()
    assert v4.sb.stats()["clones"] == 0


def test_stats_count_the_v4_endpoints(v4: V4Client) -> None:
    v4.sb.configure(lifecycle={"mode": "immediate"})
    v4.get("list", type=2)
    akool_id = v4.tts()["data"]["_id"]
    v4.detail(akool_id)
    clone_id = v4.clone()["data"]["_id"]
    v4.voice(clone_id)
    requests_seen = v4.sb.stats()["requests"]
    assert {k: v for k, v in requests_seen.items() if k.startswith("v4_")} == {
        "v4_tts": 1,
        "v4_detail": 1,
        "v4_clone": 1,
        "v4_voices": 1,
        "v4_voice_detail": 1,
    }
    assert [e["endpoint"] for e in v4.sb.stats()["request_log"]] == [
        "v4_voices",
        "v4_tts",
        "v4_detail",
        "v4_clone",
        "v4_voice_detail",
    ]


def test_config_checks_the_v4_fields(sb: SandboxServer) -> None:
    for bad, needle in [
        ({"plan": "enterprise"}, "plan"),
        ({"v4_webhook_audio_field": "audio"}, "v4_webhook_audio_field"),
        ({"v4_detail_wrapped": "yes"}, "v4_detail_wrapped"),
        ({"faults": [{"endpoint": "v4_nope", "kind": "drop"}]}, "endpoint"),
    ]:
        with pytest.raises(ValueError, match=needle):
            sb.configure(**bad)
    assert sb.configure(plan="Pro Max")["plan"] == "max"


# -- webhooks -------------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on port 0 that answers 200 and keeps the decrypted payloads."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.payloads.append(
                    open_envelope(body, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def final(self) -> dict[str, Any]:
        until(lambda: len(self.payloads) == 2, 5.0, "two webhooks", interval=0.02)
        return next(p for p in self.payloads if p["status"] in (3, 4))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.mark.parametrize(
    ("field", "keys"),
    [("preview", {"preview"}), ("url", {"url"}), ("both", {"preview", "url"})],
)
def test_tts_webhooks_carry_the_audio_in_preview_or_url(
    v4: V4Client, receiver: Receiver, field: str, keys: set[str]
) -> None:
    v4.sb.configure(lifecycle={"mode": "immediate"}, v4_webhook_audio_field=field)
    data = v4.tts(webhookUrl=receiver.url)["data"]
    final = receiver.final()
    assert set(final) == {"_id", "status", "type"} | keys
    assert final["_id"] == data["_id"] and final["status"] == 3 and final["type"] == "audio"
    assert all(final[k] == data["preview"] for k in keys)


def test_clone_webhooks_name_the_new_voice(v4: V4Client, receiver: Receiver) -> None:
    v4.sb.configure(lifecycle={"mode": "immediate"})
    voice = v4.clone(webhookUrl=receiver.url)["data"]
    final = receiver.final()
    assert final["type"] == "voice" and final["_id"] == voice["_id"]
    assert final["voice_id"] == voice["voice_id"] and final["preview"] == voice["preview"]
