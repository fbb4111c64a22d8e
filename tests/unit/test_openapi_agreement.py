"""The OpenAPI document and the service agree where schemathesis found them apart: the methods
OPTIONS advertises, the bodies of /akool/webhook and /v1/schedules (typed as the service parses
them), the statuses of /v1/jobs/{id}/audio and /v1/voices, and the links the stateful phase
follows."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from config.settings import Settings
from worker.maintenance import schedules
from worker.maintenance.recurring import cron_schedule
from worker.web import openapi
from worker.web.app import create_app

TOKEN = "agreement-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
S = Settings(
    redis_url="redis://127.0.0.1:1/0",
    api_tokens=(TOKEN,),
    akool_client_id="cid",
    akool_api_key="k" * 32,
    akool_client_secret="s" * 32,
)
DOC = openapi.document(S)


def schema_of(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"components": DOC["components"], "$ref": f"#/components/schemas/{name}"}
    )


def body_schema(path: str) -> Draft202012Validator:
    schema = DOC["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return Draft202012Validator({"components": DOC["components"], **schema})


@pytest.mark.parametrize(
    "path", ["/akool/webhook", "/v1/jobs/j1/cancel", "/v1/jobs/j1/retry", "/v1/jobs/j1"]
)
def test_options_advertises_the_documented_methods(path: str) -> None:
    got = create_app(S).test_client().options(path, headers=AUTH)
    allowed = {m.strip() for m in got.headers["Allow"].split(",")} - {"HEAD", "OPTIONS"}
    template = re.sub(r"/j1", "/{job_id}", path)
    assert allowed == {m.upper() for m in DOC["paths"][template]}, got.headers["Allow"]


ENVELOPE = {"signature": "ab", "dataEncrypt": "cd", "timestamp": 1710000000000, "nonce": "1"}


@pytest.mark.parametrize(
    "body",
    [ENVELOPE, {**ENVELOPE, "timestamp": "1710000000000", "nonce": 42}],
    ids=["akool-example", "strings"],
)
def test_a_well_formed_webhook_is_valid_and_refused_only_for_its_signature(
    body: dict[str, Any],
) -> None:
    assert body_schema("/akool/webhook").is_valid(body)
    got = create_app(S).test_client().post("/akool/webhook", json=body)
    assert got.status_code == 401, got.get_json()


@pytest.mark.parametrize(
    "body",
    [{}, {"signature": "ab"}, {**ENVELOPE, "signature": 1}, {**ENVELOPE, "dataEncrypt": None}],
)
def test_what_the_webhook_answers_400_the_schema_refuses(body: dict[str, Any]) -> None:
    assert not body_schema("/akool/webhook").is_valid(body)
    assert create_app(S).test_client().post("/akool/webhook", json=body).status_code == 400


REQ = {"input_text": "Good morning.", "voice_id": "v1"}
SPEC = {"name": "news", "cron": "0 7 * * *", "request": REQ, "job_id": "news-{date}"}
VALID_SPECS: list[dict[str, Any]] = [
    SPEC,
    {**SPEC, "cron": None, "every": 3600},
    {**SPEC, "cron": "*/15 0-23/2 1,15 1-12 0-6", "task": "audio.create"},
    {**SPEC, "task": "audio.clone", "request": {"input_text": "x", "voice_url": "https://e.com/a"}},
    {**SPEC, "request": {**REQ, "api": "v4", "voice_options": {"speed": 1.1}}},
    {**SPEC, "job_id": "{name}.{minute}"},
    {**SPEC, "job_id": "{ts}_x-1"},
    # null is absent, as in POST /v1/jobs: another API's field too
    {**SPEC, "request": {**REQ, "api": "v4", "rate": None, "voice_options": None}},
]
INVALID_SPECS: list[dict[str, Any]] = [
    {},
    {**SPEC, "name": "a b"},
    {**SPEC, "every": 3600},
    {k: v for k, v in SPEC.items() if k != "cron"},
    {**SPEC, "cron": "60 * * * *"},
    {**SPEC, "cron": "* * 0 * *"},
    {**SPEC, "cron": "*/0 * * * *"},
    {**SPEC, "cron": "* * * *"},
    {**SPEC, "cron": None, "every": 1},
    {**SPEC, "cron": None, "every": True},
    {**SPEC, "task": "audio.speak"},
    {**SPEC, "request": {**REQ, "job_id": "x"}},
    {**SPEC, "request": {**REQ, "kind": "create"}},
    {**SPEC, "request": {**REQ, "rate": "0%"}},
    {**SPEC, "request": {"input_text": "x"}},
    {**SPEC, "task": "audio.clone", "request": {"input_text": "x", "voice_model_name": "m"}},
    {**SPEC, "request": {**REQ, "notify_task": "a.b"}},
    {**SPEC, "job_id": "news-{when}"},
    {**SPEC, "job_id": "news..{date}"},
    {**SPEC, "job_id": "-news"},
    {**SPEC, "extra": 1},
]


def service_takes(spec: dict[str, Any]) -> bool:
    try:
        schedules.parse_spec(spec, S)
    except schedules.InvalidSchedule:
        return False
    return True


@pytest.mark.parametrize("spec", VALID_SPECS, ids=lambda s: json.dumps(s)[:50])
def test_a_schedule_the_schema_takes_the_service_takes(spec: dict[str, Any]) -> None:
    assert not list(body_schema("/v1/schedules").iter_errors(spec))
    assert service_takes(spec)


@pytest.mark.parametrize("spec", INVALID_SPECS, ids=lambda s: json.dumps(s)[:50])
def test_a_schedule_the_service_refuses_the_schema_refuses(spec: dict[str, Any]) -> None:
    assert not body_schema("/v1/schedules").is_valid(spec)
    assert not service_takes(spec)


def test_the_cron_pattern_takes_only_what_celery_takes() -> None:
    cron = DOC["components"]["schemas"]["ScheduleCron"]["pattern"]
    fields = ["*", "*/5", "0", "7", "59", "60", "1-5", "1-5/2", "5/2", "0,30", "31", "12", "6"]
    for minute in fields:
        for dom in fields:
            for dow in fields:
                expr = f"{minute} 3 {dom} 1 {dow}"
                if re.search(cron, expr):
                    cron_schedule(expr)  # raises if celery refuses it


def test_the_audio_route_documents_416_and_the_schedule_post_links_to_its_entry() -> None:
    audio = DOC["paths"]["/v1/jobs/{job_id}/audio"]["get"]["responses"]
    assert "416" in audio
    links = DOC["paths"]["/v1/schedules"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {"getSchedule", "deleteSchedule"}
    for link in links.values():
        assert link["parameters"] == {"name": "$response.body#/name"}
