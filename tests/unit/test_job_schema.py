"""The request schema of POST /v1/jobs says what the service accepts: the README's examples and a
table of other valid bodies pass both the schema and the service's own checks; a table of bodies
the service refuses (400) fails the schema too, each also posted to the app."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from config.settings import Settings
from worker.akool.errors import ValidationError
from worker.akool.requestschema import JOB_ID_PATTERN, RATE_PATTERN, text_pattern
from worker.akool.validation import validate_rate
from worker.jobs.request import is_job_id, parse_http_request
from worker.web import intake, openapi
from worker.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "schema-token-0123456789"
S = Settings(redis_url="redis://127.0.0.1:1/0", api_tokens=(TOKEN,))
S4 = Settings(redis_url="redis://127.0.0.1:1/0", api_tokens=(TOKEN,), akool_api_version="v4")
URL = "https://api.example.com/hooks/audio"
T = "Your order has shipped."
C3 = {"kind": "create", "input_text": T, "voice_id": "v1"}
C4 = {**C3, "api": "v4"}
CLONE4 = {"kind": "clone", "api": "v4", "input_text": T, "source_voice_file": URL}


def validator(settings: Settings) -> Draft202012Validator:
    doc = openapi.document(settings)
    return Draft202012Validator(
        {"components": doc["components"], "$ref": "#/components/schemas/JobRequest"}
    )


V3, V4 = validator(S), validator(S4)


def readme_bodies() -> list[dict[str, Any]]:
    """The JSON bodies of README's ``curl ... /v1/jobs -d '...'`` (section "The web service")."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The web service") :]
    section = section[: section.index("\n## ", 10)]
    found = re.findall(r"/v1/jobs -d '(\{.*?\})'", section, re.S)
    return [json.loads(b) for b in found]


def service_accepts(body: dict[str, Any], settings: Settings) -> bool:
    try:
        kind, kwargs = intake.check_body(body)
        parse_http_request(kind, kwargs, settings)
    except ValueError:
        return False
    return True


VALID: list[dict[str, Any]] = [
    {**C3, "rate": "80%", "job_id": "order-1.v2", "notify_url": URL},
    {**C3, "api": "v3", "rate": None, "job_id": None},
    {
        **C4,
        "voice_options": {"speed": 1.2, "emotion": "happy", "volume": 0},
        "language_code": "yue",
    },
    {**C4, "extra_options": {"audio_setting": {"format": "wav", "sample_rate": 44100}}},
    {"kind": "clone", "input_text": T, "voice_url": URL},
    {"kind": "clone", "input_text": T, "voice_id": "v1", "voice_url": None},
    {**CLONE4, "voice_model_name": "Akool Multilingual 4", "clone_options": {"gender": "female"}},
    {**CLONE4, "clone_options": {"style": ["calm", "warm"], "clone_prompt": "x" * 2000}},
    {"kind": "clone", "api": "v4", "input_text": T, "voice_id": "v1"},
    {**C3, "input_text": "日本語のテキスト"},
    {**C4, "input_text": "x" * 5000},
    # The service takes null as absent for any field of the kind, whatever the API.
    {**C3, "voice_options": None, "language_code": None, "extra_options": None},
    {**C4, "rate": None},
    {"kind": "clone", "api": "v4", "input_text": T, "voice_id": "v1", "clone_options": None},
    # v4 takes a clone's sample under v3's name too.
    {"kind": "clone", "api": "v4", "input_text": T, "voice_url": URL},
    {"kind": "clone", "api": "v4", "input_text": T, "voice_url": URL, "source_voice_file": None},
    # JSON Schema's integer is any number with no fraction: 50.0 is one.
    {**C4, "voice_options": {"volume": 50.0}},
    {**C3, "notify_url": "https://xn--exmple-cua.com/hook?q=%C3%A9"},
]

INVALID: list[tuple[str, dict[str, Any]]] = [
    ("rate on v4", {**C4, "rate": "100%"}),
    ("voice_options on v3", {**C3, "voice_options": {"speed": 0.9}}),
    ("language_code on v3", {**C3, "language_code": "zh"}),
    ("an unknown field", {**C3, "voiceId": "v1"}),
    ("notify_task over HTTP", {**C3, "notify_task": "my.task"}),
    ("no kind", {"input_text": T, "voice_id": "v1"}),
    ("another kind", {**C3, "kind": "speak"}),
    ("another api", {**C3, "api": "v5"}),
    ("no voice_id", {"kind": "create", "input_text": T}),
    ("a null voice_id", {**C3, "voice_id": None}),
    ("a bad voice_id", {**C3, "voice_id": "a b"}),
    ("no input_text", {"kind": "create", "voice_id": "v1"}),
    ("empty text", {**C3, "input_text": ""}),
    ("blank text", {**C3, "input_text": " \n\t"}),
    ("invisible text", {**C3, "input_text": "\u200b\u200b"}),
    ("a control character", {**C3, "input_text": "a\x01b"}),
    ("v4 text over the pro plan", {**C4, "input_text": "x" * 5001}),
    ("job_id with ..", {**C3, "job_id": "a..b"}),
    ("job_id with a slash", {**C3, "job_id": "../x"}),
    ("job_id with a final newline", {**C3, "job_id": "a\n"}),
    ("rate 0%", {**C3, "rate": "0%"}),
    ("rate 101%", {**C3, "rate": "101%"}),
    ("rate without %", {**C3, "rate": "100"}),
    ("rate 080%", {**C3, "rate": "080%"}),
    ("speed above 1.2", {**C4, "voice_options": {"speed": 1.5}}),
    ("an unknown emotion", {**C4, "voice_options": {"emotion": "bored"}}),
    ("volume 101", {**C4, "voice_options": {"volume": 101}}),
    ("volume true", {**C4, "voice_options": {"volume": True}}),
    ("an unknown voice option", {**C4, "voice_options": {"sped": 1}}),
    ("a null voice option", {**C4, "voice_options": {"speed": None}}),
    ("a bad sample rate", {**C4, "extra_options": {"audio_setting": {"sample_rate": 12345}}}),
    ("channel true", {**C4, "extra_options": {"audio_setting": {"channel": True}}}),
    ("an unknown extra option", {**C4, "extra_options": {"speed": 1}}),
    ("language_code ZH", {**C4, "language_code": "ZH"}),
    (
        "clone with both sources",
        {"kind": "clone", "input_text": T, "voice_url": URL, "voice_id": "v"},
    ),
    ("clone with no source", {"kind": "clone", "input_text": T}),
    ("v4 create with a sample", {**C4, "source_voice_file": URL}),
    ("model 2 cannot clone", {**CLONE4, "voice_model_name": "Akool Multilingual 2"}),
    (
        "clone_options without a sample",
        {**CLONE4, "source_voice_file": None, "voice_id": "v", "clone_options": {"gender": "x"}},
    ),
    ("a long clone prompt", {**CLONE4, "clone_options": {"clone_prompt": "x" * 2001}}),
    ("notify_url ftp", {**C3, "notify_url": "ftp://example.com/x"}),
    ("notify_url not a URL", {**C3, "notify_url": "not a url"}),
    ("notify_url with credentials", {**C3, "notify_url": "https://u:p@example.com/"}),
    ("notify_url with a non-ASCII host", {**C3, "notify_url": "https://ex\u00e4mple.com/x"}),
    ("notify_url with a non-ASCII path", {**C3, "notify_url": "https://example.com/\u00e9"}),
    (
        "a sample with a non-ASCII host",
        {"kind": "clone", "input_text": T, "voice_url": "https://\u00e9.fr/"},
    ),
    ("notify_url with a bare %", {**C3, "notify_url": "HtTp://%"}),
    ("notify_url with a brace", {**C3, "notify_url": "https://example.com/{x}"}),
    ("volume 50.5", {**C4, "voice_options": {"volume": 50.5}}),
    ("a v4 sample under both names", {**CLONE4, "voice_url": URL}),
]


def test_the_readme_examples_are_valid_for_the_schema_and_the_service() -> None:
    bodies = readme_bodies()
    assert len(bodies) >= 2 and {b.get("api", "v3") for b in bodies} == {"v3", "v4"}
    for body in bodies:
        assert not list(V3.iter_errors(body)), body
        assert service_accepts(body, S), body


@pytest.mark.parametrize("body", VALID, ids=lambda b: json.dumps(b)[:60])
def test_valid_bodies_pass_the_schema_and_the_service(body: dict[str, Any]) -> None:
    assert not list(V3.iter_errors(body))
    assert service_accepts(body, S)


@pytest.mark.parametrize(("case", "body"), INVALID, ids=[c for c, _ in INVALID])
def test_what_the_service_refuses_the_schema_refuses(case: str, body: dict[str, Any]) -> None:
    assert not V3.is_valid(body), case
    got = (
        create_app(S)
        .test_client()
        .post("/v1/jobs", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    )
    assert got.status_code == 400, (case, got.get_json())
    assert got.get_json()["error"]["code"] == "invalid_field"


def test_api_omitted_is_the_default_api_of_the_settings() -> None:
    bare4 = {k: v for k, v in C4.items() if k != "api"}
    assert V4.is_valid({**bare4, "voice_options": {"speed": 0.9}})
    assert service_accepts({**bare4, "voice_options": {"speed": 0.9}}, S4)
    assert not V4.is_valid({**C3, "rate": "90%"}) and not service_accepts({**C3, "rate": "90%"}, S4)
    assert V4.is_valid({**C3, "api": "v3", "rate": "90%"})
    assert service_accepts({**C3, "api": "v3", "rate": "90%"}, S4)


def test_the_patterns_agree_with_the_validators() -> None:
    for n in [*range(0, 1001), "080", "1.5", "", "-1", "\u0661\u0660"]:
        rate = f"{n}%"
        try:
            ok = validate_rate(rate) == rate
        except ValidationError:
            ok = False
        assert ok == bool(re.search(RATE_PATTERN, rate)), rate
    for job_id in ["a", "A.b-c_d", "a..b", ".a", "a\n", "a" * 128, "a" * 129, "é"]:
        assert is_job_id(job_id) == bool(re.search(JOB_ID_PATTERN, job_id)), job_id
    assert re.search(text_pattern(), "\U0001f600") and not re.search(text_pattern(), "\ue000")
