"""The sandbox as a client sees it: a real server on port 0, plain ``requests`` against it."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    OFFICIAL_VOICE_IDS,
    USER_VOICE_IDS,
    VOICES,
    SandboxServer,
)
from tests.support.wait import until
from worker.akool.crypto import open_envelope

API = "/api/open/v3"
KEY = {"x-api-key": DEFAULT_API_KEY}
VOICE = OFFICIAL_VOICE_IDS[0]
ROOT = Path(__file__).resolve().parents[2]


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture()
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # loopback only, whatever proxy the environment sets
    yield session
    session.close()


class Client:
    """The few calls the tests repeat, with x-api-key auth."""

    def __init__(self, sb: SandboxServer, http: requests.Session) -> None:
        self.sb, self.http = sb, http

    def create(self, text: str = "hello sandbox world", **extra: Any) -> dict[str, Any]:
        body = {"input_text": text, "voice_id": VOICE, "rate": "100%", "webhookUrl": "", **extra}
        r = self.http.post(f"{self.sb.url}{API}/audio/create", json=body, headers=KEY, timeout=5)
        assert r.status_code == 200
        result: dict[str, Any] = r.json()
        return result

    def detail(self, akool_id: str, path: str = "infobymodelid") -> dict[str, Any]:
        r = self.http.get(
            f"{self.sb.url}{API}/audio/{path}",
            params={"audio_model_id": akool_id},
            headers=KEY,
            timeout=5,
        )
        assert r.status_code == 200
        result: dict[str, Any] = r.json()
        return result

    def wait_done(self, akool_id: str, timeout: float = 5.0) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            data: dict[str, Any] = self.detail(akool_id)["data"]
            return data if data["status"] in (3, 4) else None

        result: dict[str, Any] = until(done, timeout, f"job {akool_id} done", interval=0.02)
        return result


@pytest.fixture()
def client(sandbox: SandboxServer, http: requests.Session) -> Client:
    return Client(sandbox, http)


class Receiver:
    """A webhook receiver on port 0 that fails the first ``fail_first`` deliveries with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[Any] = []
        self.answers: list[int] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 500 if len(receiver.answers) < receiver.fail_first else 200
                receiver.answers.append(status)
                if status == 200:
                    receiver.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def payloads(self) -> list[dict[str, Any]]:
        return [open_envelope(b, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET) for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# -- auth ---------------------------------------------------------------------------------------


def test_get_token_returns_a_jwt_at_top_level_and_rejects_bad_credentials(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    url = f"{sandbox.url}{API}/getToken"
    good = http.post(
        url, json={"clientId": DEFAULT_CLIENT_ID, "clientSecret": DEFAULT_CLIENT_SECRET}
    ).json()
    assert good["code"] == 1000 and set(good) == {"code", "token"}
    head, claims_b64, _sig = good["token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=="))
    assert json.loads(base64.urlsafe_b64decode(head + "=="))["alg"] == "HS256"
    assert claims["exp"] > claims["iat"] + 3600

    bad = http.post(url, json={"clientId": DEFAULT_CLIENT_ID, "clientSecret": "x" * 32}).json()
    assert bad["code"] == 1101
    assert http.post(url, json={}).json()["code"] == 1102
    assert http.post(url, data=b"not json").json()["code"] == 1003


def _token(sb: SandboxServer, http: requests.Session) -> str:
    body = {"clientId": DEFAULT_CLIENT_ID, "clientSecret": DEFAULT_CLIENT_SECRET}
    token: str = http.post(f"{sb.url}{API}/getToken", json=body).json()["token"]
    return token


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, 1102),
        ({"x-api-key": DEFAULT_API_KEY}, 1000),
        ({"x-api-key": "wrong-key-wrong-key-wrong-key-00"}, 1101),
        ({"Authorization": "Bearer {token}"}, 1000),
        ({"Authorization": "Bearer nope"}, 1101),
        # Bearer wins over x-api-key, both ways
        ({"Authorization": "Bearer nope", "x-api-key": DEFAULT_API_KEY}, 1101),
        ({"Authorization": "Bearer {token}", "x-api-key": "wrong"}, 1000),
    ],
)
def test_auth_modes(
    sandbox: SandboxServer, http: requests.Session, headers: dict[str, str], code: int
) -> None:
    token = _token(sandbox, http)
    headers = {k: v.replace("{token}", token) for k, v in headers.items()}
    r = http.get(f"{sandbox.url}{API}/voice/list", headers=headers)
    assert r.status_code == 200
    assert r.json()["code"] == code


def test_revoke_tokens_invalidates_issued_tokens_but_new_ones_work(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    old = _token(sandbox, http)
    url = f"{sandbox.url}{API}/voice/list"
    assert http.get(url, headers={"Authorization": f"Bearer {old}"}).json()["code"] == 1000

    sandbox.configure(revoke_tokens=True)

    assert http.get(url, headers={"Authorization": f"Bearer {old}"}).json()["code"] == 1101
    new = _token(sandbox, http)
    assert http.get(url, headers={"Authorization": f"Bearer {new}"}).json()["code"] == 1000
    assert sandbox.configure()["revoke_tokens"] is False


def test_expired_token_answers_1101(sandbox: SandboxServer, http: requests.Session) -> None:
    sandbox.configure(token_ttl_seconds=0.2)
    token = _token(sandbox, http)
    time.sleep(0.3)
    r = http.get(f"{sandbox.url}{API}/voice/list", headers={"Authorization": f"Bearer {token}"})
    assert r.json()["code"] == 1101


# -- voices -------------------------------------------------------------------------------------


def test_voice_list_filters_by_from_and_has_every_documented_field(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    def voices(query: str) -> dict[str, Any]:
        result: dict[str, Any] = http.get(
            f"{sandbox.url}{API}/voice/list{query}", headers=KEY
        ).json()
        return result

    both, official, mine = voices(""), voices("?from=3"), voices("?from=4")
    assert len(both["data"]) == len(VOICES)
    assert [v["voice_id"] for v in official["data"]] == list(OFFICIAL_VOICE_IDS)
    assert [v["voice_id"] for v in mine["data"]] == list(USER_VOICE_IDS)
    fields = "_id create_time uid from voice_id gender accent name description useCase type"
    for v in both["data"]:
        assert set(fields.split()) | {"preview", "__v"} == set(v)
        assert len(v["voice_id"]) == 20 and len(v["_id"]) == 24
    assert voices("?from=7")["code"] == 1003

    preview = http.get(both["data"][0]["preview"])
    assert preview.status_code == 200
    with wave.open(io.BytesIO(preview.content)) as w:
        assert w.getframerate() == 16000


# -- create, clone, detail ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("create", {"input_text": "", "voice_id": VOICE, "rate": "100%"}, "input_text"),
        ("create", {"input_text": "w " * 5001, "voice_id": VOICE, "rate": "100%"}, "5000"),
        ("create", {"input_text": "hi", "voice_id": VOICE, "rate": "fast"}, "rate"),
        ("create", {"input_text": "hi", "voice_id": VOICE, "rate": "150%"}, "rate"),
        ("create", {"input_text": "hi", "voice_id": "nope", "rate": "100%"}, "voice_id"),
        ("create", {"input_text": "hi", "rate": "100%"}, "voice_id"),
        ("create", "not json at all", "JSON"),
        ("create", ["a", "list"], "JSON object"),
        ("clone", {"input_text": "hi", "rate": "100%"}, "voice_url"),
        ("clone", {"input_text": "hi", "voice_url": "ftp://x/y.mp3", "rate": "100%"}, "voice_url"),
    ],
)
def test_bad_requests_answer_1003_and_create_nothing(
    sandbox: SandboxServer, http: requests.Session, path: str, body: Any, needle: str
) -> None:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    r = http.post(f"{sandbox.url}{API}/audio/{path}", data=data, headers=KEY)
    assert r.status_code == 200
    assert r.json()["code"] == 1003
    assert needle in r.json()["msg"]
    assert sandbox.stats()["submissions"] == 0


def test_immediate_mode_answers_status_3_with_url_at_create(
    sandbox: SandboxServer, client: Client
) -> None:
    sandbox.configure(lifecycle={"mode": "immediate"})
    data = client.create("done at once")["data"]
    assert data["status"] == 3
    assert data["url"] == f"{sandbox.url}/files/{data['_id']}.wav"
    fields = "_id create_time uid from input_text rate voice_model_id url status __v"
    assert set(data) == set(fields.split())
    assert len(data["_id"]) == 24 and int(data["_id"], 16) >= 0
    assert sandbox.job(data["_id"])["completed_at"] == sandbox.job(data["_id"])["created_at"]


def test_polls_mode_completes_on_the_nth_detail_call(
    sandbox: SandboxServer, client: Client
) -> None:
    sandbox.configure(lifecycle={"mode": "polls", "polls": 4})
    created = client.create()["data"]
    assert created["status"] == 1 and "url" not in created
    statuses = [client.detail(created["_id"])["data"]["status"] for _ in range(5)]
    assert statuses == [1, 2, 2, 3, 3]
    job = sandbox.job(created["_id"])
    assert job["polls"] == 5 and job["completed_at"] is not None


def test_duration_mode_sets_completed_at_at_create_and_walks_1_2_3(
    sandbox: SandboxServer, client: Client
) -> None:
    sandbox.configure(
        lifecycle={"mode": "duration", "base_seconds": 0.5, "per_word_seconds": 0.0, "jitter": 0}
    )
    created = client.create()["data"]
    job = sandbox.job(created["_id"])
    assert job["completed_at"] == pytest.approx(job["created_at"] + 0.5, abs=0.01)
    assert created["status"] == 1
    seen = []
    while (status := client.detail(created["_id"])["data"]["status"]) != 3:
        seen.append(status)
        time.sleep(0.03)
    assert time.time() >= job["completed_at"]
    assert seen[0] == 1 and 2 in seen and seen == sorted(seen)


def test_duration_lognormal_is_seeded(sandbox: SandboxServer, client: Client) -> None:
    def durations() -> list[float]:
        sandbox.reset()
        sandbox.configure(lifecycle={"lognormal_sigma": 0.5, "seed": 7, "base_seconds": 1.0})
        ids = [client.create()["data"]["_id"] for _ in range(3)]
        return [sandbox.job(i)["completed_at"] - sandbox.job(i)["created_at"] for i in ids]

    first, second = durations(), durations()
    assert first == pytest.approx(second, abs=1e-3)
    assert len({round(d, 4) for d in first}) == 3


def test_fail_marker_ends_in_status_4_without_a_file(
    sandbox: SandboxServer, client: Client, http: requests.Session
) -> None:
    sandbox.configure(lifecycle={"mode": "polls", "polls": 1})
    akool_id = client.create("please [[fail]] here")["data"]["_id"]
    data = client.detail(akool_id)["data"]
    assert data["status"] == 4 and "url" not in data
    assert http.get(f"{sandbox.url}/files/{akool_id}.wav").status_code == 404
    assert sandbox.job(akool_id)["sha256"] is None


def test_no_dedupe_every_create_is_a_new_job(sandbox: SandboxServer, client: Client) -> None:
    ids = {client.create("same words")["data"]["_id"] for _ in range(3)}
    assert len(ids) == 3
    stats = sandbox.stats()
    assert stats["submissions"] == 3 and stats["creates_by_text"] == {"same words": 3}


def test_clone_accepts_voice_url_or_voice_id(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    url = f"{sandbox.url}{API}/audio/clone"
    by_url = http.post(
        url,
        json={"input_text": "hi", "rate": "90%", "voice_url": "https://example.invalid/a.mp3"},
        headers=KEY,
    ).json()
    by_id = http.post(
        url, json={"input_text": "hi", "rate": "90%", "voice_id": USER_VOICE_IDS[0]}, headers=KEY
    ).json()
    assert by_url["code"] == by_id["code"] == 1000
    assert len(by_url["data"]["voice_model_id"]) == 24
    assert sandbox.job(by_url["data"]["_id"])["voice_url"] == "https://example.invalid/a.mp3"
    assert sandbox.stats()["requests"]["clone"] == 2


def test_detail_unknown_id_is_1008_and_camel_case_path_is_404(
    sandbox: SandboxServer, client: Client, http: requests.Session
) -> None:
    assert client.detail("0" * 24)["code"] == 1008
    assert client.detail("")["code"] == 1003
    r = http.get(f"{sandbox.url}{API}/audio/infoByModelId?audio_model_id=x", headers=KEY)
    assert r.status_code == 404


# -- audio files --------------------------------------------------------------------------------


def test_wav_is_playable_and_matches_admin_sha256(
    sandbox: SandboxServer, client: Client, http: requests.Session
) -> None:
    sandbox.configure(lifecycle={"mode": "immediate"})
    short = client.create("one two")["data"]
    long = client.create(" ".join(["word"] * 40))["data"]
    files = {}
    for data in (short, long):
        r = http.get(data["url"])
        assert r.status_code == 200 and r.headers["Content-Type"] == "audio/wav"
        assert int(r.headers["Content-Length"]) == len(r.content)
        with wave.open(io.BytesIO(r.content)) as w:
            params = w.getparams()
            assert len(w.readframes(params.nframes)) == 2 * params.nframes
        assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 16000)
        job = sandbox.job(data["_id"])
        assert job["sha256"] == hashlib.sha256(r.content).hexdigest()
        assert job["bytes"] == len(r.content)
        files[data["_id"]] = r.content
        head = http.head(data["url"])
        assert head.status_code == 200 and head.content == b""
        assert head.headers["Content-Length"] == str(len(r.content))
    assert len(files[long["_id"]]) > len(files[short["_id"]])
    assert http.get(short["url"]).content == files[short["_id"]]  # deterministic


def test_audio_bytes_forces_the_file_size(
    sandbox: SandboxServer, client: Client, http: requests.Session
) -> None:
    sandbox.configure(lifecycle={"mode": "immediate"}, audio_bytes=3_000_000)
    data = client.create("big")["data"]
    r = http.get(data["url"], stream=True)
    digest, size = hashlib.sha256(), 0
    for chunk in r.iter_content(1 << 16):
        digest.update(chunk)
        size += len(chunk)
    assert size == 3_000_000 == sandbox.job(data["_id"])["bytes"]
    assert digest.hexdigest() == sandbox.job(data["_id"])["sha256"]


# -- faults -------------------------------------------------------------------------------------


def test_fault_http_500_html_creates_nothing(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    sandbox.configure(faults=[{"endpoint": "create", "kind": "http_500_html", "times": 1}])
    body = {"input_text": "hi", "voice_id": VOICE, "rate": "100%"}
    r = http.post(f"{sandbox.url}{API}/audio/create", json=body, headers=KEY)
    assert r.status_code == 500 and r.headers["Content-Type"].startswith("text/html")
    assert "<html>" in r.text
    assert sandbox.stats()["submissions"] == 0
    assert sandbox.stats()["faults_fired"] == {"http_500_html": 1}


def test_fault_code_answers_the_envelope(sandbox: SandboxServer, client: Client) -> None:
    sandbox.configure(faults=[{"endpoint": "create", "kind": "code", "code": 1201, "times": 1}])
    body = client.create()
    assert body["code"] == 1201 and "try again later" in body["msg"]
    assert sandbox.stats()["submissions"] == 0
    assert client.create()["code"] == 1000


def test_fault_drop_closes_without_response(sandbox: SandboxServer, http: requests.Session) -> None:
    sandbox.configure(faults=[{"endpoint": "any", "kind": "drop", "times": 1}])
    with pytest.raises(requests.ConnectionError):
        http.get(f"{sandbox.url}{API}/voice/list", headers=KEY, timeout=5)
    assert http.get(f"{sandbox.url}{API}/voice/list", headers=KEY).json()["code"] == 1000
    log = sandbox.stats()["request_log"]
    assert [e["status"] for e in log] == [0, 1000]


def test_fault_slow_create_times_out_but_the_job_exists(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    sandbox.configure(faults=[{"endpoint": "create", "kind": "slow", "delay": 0.6, "times": 1}])
    body = {"input_text": "timed out", "voice_id": VOICE, "rate": "100%"}
    with pytest.raises(requests.ReadTimeout):
        http.post(f"{sandbox.url}{API}/audio/create", json=body, headers=KEY, timeout=0.2)
    until(lambda: sandbox.stats()["submissions"] == 1, 5.0, "one submission", interval=0.02)
    # the retry a client would make is a second, separate job
    http.post(f"{sandbox.url}{API}/audio/create", json=body, headers=KEY, timeout=5)
    assert sandbox.stats()["creates_by_text"] == {"timed out": 2}


def test_fault_malformed_json(sandbox: SandboxServer, client: Client) -> None:
    sandbox.configure(faults=[{"endpoint": "detail", "kind": "malformed_json", "times": 1}])
    r = client.http.get(f"{client.sb.url}{API}/audio/infobymodelid?audio_model_id=x", headers=KEY)
    assert r.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        r.json()


def test_fault_status_4_on_create_and_on_detail(sandbox: SandboxServer, client: Client) -> None:
    sandbox.configure(
        lifecycle={"mode": "polls", "polls": 3},
        faults=[{"endpoint": "create", "kind": "status_4", "times": 1}],
    )
    on_create = client.create()["data"]["_id"]
    assert client.wait_done(on_create)["status"] == 4
    sandbox.configure(faults=[{"endpoint": "detail", "kind": "status_4", "times": 1}])
    on_detail = client.create()["data"]["_id"]
    assert client.wait_done(on_detail)["status"] == 4
    assert sandbox.stats()["faults_fired"] == {"status_4": 2}


def test_fault_url_404(sandbox: SandboxServer, client: Client, http: requests.Session) -> None:
    sandbox.configure(
        lifecycle={"mode": "immediate"},
        faults=[{"endpoint": "create", "kind": "url_404", "times": 1}],
    )
    broken, fine = client.create()["data"], client.create()["data"]
    assert broken["status"] == 3
    assert http.get(broken["url"]).status_code == 404
    assert http.get(fine["url"]).status_code == 200
    sandbox.configure(faults=[{"endpoint": "download", "kind": "url_404", "times": 1}])
    assert http.get(fine["url"]).status_code == 404
    assert http.get(fine["url"]).status_code == 200


def test_times_fires_exactly_n_then_is_spent(sandbox: SandboxServer, client: Client) -> None:
    sandbox.configure(faults=[{"endpoint": "create", "kind": "code", "code": 1005, "times": 2}])
    codes = [client.create()["code"] for _ in range(4)]
    assert codes == [1005, 1005, 1000, 1000]


def test_probability_is_seeded_and_reproducible(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    url = f"{sandbox.url}{API}/voice/list"

    def run() -> list[int]:
        sandbox.configure(
            seed=42,
            faults=[{"endpoint": "voices", "kind": "code", "code": 1005, "probability": 0.5}],
        )
        return [http.get(url, headers=KEY).json()["code"] for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert 5 < first.count(1005) < 35
    sandbox.configure(
        faults=[{"endpoint": "voices", "kind": "code", "code": 1005, "probability": 0}]
    )
    assert {http.get(url, headers=KEY).json()["code"] for _ in range(5)} == {1000}


def test_any_endpoint_matches_token_too(sandbox: SandboxServer, http: requests.Session) -> None:
    sandbox.configure(
        faults=[{"endpoint": "any", "kind": "http_500_html", "times": 1, "http_status": 502}]
    )
    body = {"clientId": DEFAULT_CLIENT_ID, "clientSecret": DEFAULT_CLIENT_SECRET}
    assert http.post(f"{sandbox.url}{API}/getToken", json=body).status_code == 502


# -- webhooks -----------------------------------------------------------------------------------


def test_webhooks_are_encrypted_and_sent_for_2_then_3(
    sandbox: SandboxServer, client: Client, receiver: Receiver
) -> None:
    sandbox.configure(lifecycle={"base_seconds": 0.3, "per_word_seconds": 0, "jitter": 0})
    akool_id = client.create(webhookUrl=receiver.url)["data"]["_id"]
    # no polling: the scheduler sends them at the transitions
    until(lambda: len(receiver.bodies) == 2, 5.0, "two webhooks", interval=0.02)
    payloads = sorted(receiver.payloads(), key=lambda p: p["status"])
    assert payloads[0] == {"_id": akool_id, "status": 2, "type": "audio", "url": ""}
    assert payloads[1] == {
        "_id": akool_id,
        "status": 3,
        "type": "audio",
        "url": f"{sandbox.url}/files/{akool_id}.wav",
    }
    assert set(receiver.bodies[0]) == {"signature", "dataEncrypt", "timestamp", "nonce"}
    # The sandbox counts a delivery after the receiver has answered: wait for the count too.
    until(lambda: sandbox.stats()["webhooks"]["delivered"] == 2, 5.0, "both counted")
    assert sandbox.stats()["requests"]["detail"] == 0


def test_webhook_for_a_failed_job_says_4(
    sandbox: SandboxServer, client: Client, receiver: Receiver
) -> None:
    sandbox.configure(lifecycle={"mode": "immediate"})
    akool_id = client.create("x [[fail]]", webhookUrl=receiver.url)["data"]["_id"]
    until(lambda: len(receiver.bodies) == 2, 5.0, "two webhooks", interval=0.02)
    assert sorted(p["status"] for p in receiver.payloads()) == [2, 4]
    assert {p["_id"] for p in receiver.payloads()} == {akool_id}


def test_webhooks_retry_until_200(sandbox: SandboxServer, client: Client) -> None:
    receiver = Receiver(fail_first=3)
    try:
        sandbox.configure(lifecycle={"mode": "polls", "polls": 1}, webhook_retry_delays=[0.05] * 5)
        akool_id = client.create(webhookUrl=receiver.url)["data"]["_id"]
        client.detail(akool_id)
        until(lambda: len(receiver.bodies) == 2, 5.0, "two webhooks", interval=0.02)
        until(lambda: sandbox.stats()["webhooks"]["delivered"] == 2, 5.0, "both counted")
        hooks = sandbox.stats()["webhooks"]
        assert hooks["delivered"] == 2 and hooks["failed_attempts"] == 3
        assert hooks["sent"] == 5 and receiver.answers.count(500) == 3
    finally:
        receiver.close()


def test_webhooks_give_up_after_the_last_delay(sandbox: SandboxServer, client: Client) -> None:
    sandbox.configure(lifecycle={"mode": "immediate"}, webhook_retry_delays=[0.02, 0.02])
    client.create(webhookUrl="http://127.0.0.1:9/nothing-listens-here")
    until(
        lambda: sandbox.stats()["webhooks"]["given_up"] == 2,
        5.0,
        "two webhooks given up",
        interval=0.02,
    )
    assert sandbox.stats()["webhooks"]["failed_attempts"] == 6


# -- admin --------------------------------------------------------------------------------------


def test_stats_count_every_endpoint(
    sandbox: SandboxServer, client: Client, http: requests.Session
) -> None:
    sandbox.configure(lifecycle={"mode": "immediate"})
    _token(sandbox, http)
    http.get(f"{sandbox.url}{API}/voice/list", headers=KEY)
    data = client.create()["data"]
    client.detail(data["_id"])
    http.get(data["url"])
    stats = sandbox.stats()
    assert {k: v for k, v in stats["requests"].items() if not k.startswith("v4_")} == {
        "token": 1,
        "voices": 1,
        "create": 1,
        "clone": 0,
        "detail": 1,
        "download": 1,
    }
    assert [e["endpoint"] for e in stats["request_log"]] == [
        "token",
        "voices",
        "create",
        "detail",
        "download",
    ]
    assert stats == http.get(f"{sandbox.url}/_sandbox/stats").json()


def test_reset_forgets_everything(
    sandbox: SandboxServer, client: Client, http: requests.Session
) -> None:
    token = _token(sandbox, http)
    sandbox.configure(lifecycle={"mode": "immediate"}, faults=[{"kind": "slow", "delay": 0.01}])
    akool_id = client.create()["data"]["_id"]

    assert http.post(f"{sandbox.url}/_sandbox/reset").json() == {"ok": True}

    with pytest.raises(KeyError):
        sandbox.job(akool_id)
    assert sandbox.stats()["submissions"] == 0 and sandbox.stats()["request_log"] == []
    assert http.get(f"{sandbox.url}/_sandbox/config").json()["faults"] == []
    assert client.detail(akool_id)["code"] == 1008
    r = http.get(f"{sandbox.url}{API}/voice/list", headers={"Authorization": f"Bearer {token}"})
    assert r.json()["code"] == 1101


def test_admin_config_merges_and_validates(sandbox: SandboxServer, http: requests.Session) -> None:
    url = f"{sandbox.url}/_sandbox/config"
    merged = http.post(url, json={"lifecycle": {"mode": "polls"}}).json()
    assert merged["lifecycle"]["mode"] == "polls" and merged["lifecycle"]["base_seconds"] == 0.5
    for bad, needle in [
        ({"nope": 1}, "nope"),
        ({"lifecycle": {"mode": "later"}}, "mode"),
        ({"faults": [{"kind": "explode"}]}, "kind"),
        ({"faults": [{"kind": "code"}]}, "code"),
        ({"webhook_retry_delays": "soon"}, "webhook_retry_delays"),
    ]:
        r = http.post(url, json=bad)
        assert r.status_code == 400 and needle in r.json()["error"]
    assert http.post(url, data=b"{oops").status_code == 400
    assert http.get(url).json()["lifecycle"]["mode"] == "polls"  # bad posts changed nothing
    with pytest.raises(ValueError, match="nope"):
        sandbox.configure(nope=1)


def test_admin_jobs_listing_and_lookup(
    sandbox: SandboxServer, client: Client, http: requests.Session
) -> None:
    akool_id = client.create()["data"]["_id"]
    jobs = http.get(f"{sandbox.url}/_sandbox/jobs").json()
    assert [j["_id"] for j in jobs] == [akool_id]
    view = http.get(f"{sandbox.url}/_sandbox/jobs/{akool_id}").json()
    for key in ("_id", "status", "input_text", "voice_id", "voice_url", "rate", "webhookUrl"):
        assert key in view
    for key in ("url", "sha256", "bytes", "created_at", "completed_at", "polls"):
        assert key in view
    assert http.get(f"{sandbox.url}/_sandbox/jobs/{'0' * 24}").status_code == 404


# -- server and CLI -----------------------------------------------------------------------------


def test_start_stop_without_context_manager_and_keep_alive(http: requests.Session) -> None:
    sb = SandboxServer(port=0).start()
    try:
        for _ in range(3):  # the pooled session reuses one connection
            assert http.get(f"{sb.url}{API}/voice/list", headers=KEY).json()["code"] == 1000
    finally:
        sb.stop()
    with pytest.raises(requests.ConnectionError):
        http.get(f"{sb.url}{API}/voice/list", headers=KEY, timeout=2)


def test_cli_prints_one_line_and_stops_on_sigterm(http: requests.Session) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            "0",
            "--config",
            '{"lifecycle": {"mode": "immediate"}}',
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Without the shell's AKOOL_* credentials, which the sandbox would take as its own.
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("AKOOL_")},
            "PYTHONUNBUFFERED": "1",
        },
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("sandbox listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert http.get(f"{url}/_sandbox/config").json()["lifecycle"]["mode"] == "immediate"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
