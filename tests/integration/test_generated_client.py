"""A client generated from the service's own document, as a client team would make it:
openapi-python-client against ``/v1/openapi.json`` into a tmp dir, imported as generated (no
hand edits), creating a v3 and a v4 job against gunicorn, a Celery worker and the sandbox, and
reading them back until they succeed."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from sandbox import AKOOL_VOICES, VOICES
from tests.integration.test_openapi_clients import BIN, TOKEN, Stack, sb, stack
from tests.support.webclient import WebClient

__all__ = ["sb", "stack"]  # the fixtures this module shares with test_openapi_clients

V3_VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
V4_VOICE = AKOOL_VOICES[0]["voice_id"]
PACKAGE = "akool_audio_generated"


@pytest.fixture(scope="module")
def generated(stack: Stack) -> Iterator[ModuleType]:
    out = stack.tmp / "generated"
    # The document is behind the token like the rest of /v1, and --url sends no header.
    doc = WebClient(int(stack.url.rsplit(":", 1)[1]), TOKEN).get("/v1/openapi.json")
    assert doc.status == 200
    (stack.tmp / "openapi.json").write_bytes(doc.raw)
    cmd = [
        str(BIN / "openapi-python-client"),
        "generate",
        "--path",
        str(stack.tmp / "openapi.json"),
        "--output-path",
        str(out / PACKAGE),
        "--meta",
        "none",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=stack.tmp)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_creates_v3_and_v4_jobs_and_reads_them_back(
    generated: ModuleType, stack: Stack
) -> None:
    # Given a client generated from the document, with the API's Bearer token
    models = _module("models")
    create_job, get_job = _module("api.default.create_job"), _module("api.default.get_job")
    client = generated.AuthenticatedClient(base_url=stack.url, token=TOKEN)
    tag = uuid.uuid4().hex[:8]
    bodies = {
        "v3": models.CreateJobV3(
            kind="create",
            input_text="Hello from a generated client.",
            voice_id=V3_VOICE,
            job_id=f"gen-v3-{tag}",
            rate="90%",
        ),
        "v4": models.CreateJobV4(
            kind="create",
            api="v4",
            input_text="Hello from a generated client, v4.",
            voice_id=V4_VOICE,
            job_id=f"gen-v4-{tag}",
            voice_options=models.VoiceOptions(speed=1.1),
        ),
    }
    # When each is created through the generated createJob
    for api, body in bodies.items():
        accepted = create_job.sync_detailed(client=client, body=body)
        assert accepted.status_code == 202, (api, accepted.content)
        assert isinstance(accepted.parsed, models.Accepted), accepted.content
        assert accepted.parsed.job_id == body.job_id
    # Then getJob reads each back, parsed into the generated models, until it succeeds
    deadline = time.monotonic() + 30
    for api, body in bodies.items():
        while True:
            got = get_job.sync_detailed(job_id=body.job_id, client=client, wait=10)
            assert got.status_code == 200, got.content
            detail = got.parsed
            assert isinstance(detail, models.JobDetail), got.content
            state = detail.job.state.value
            if state in ("succeeded", "failed") or time.monotonic() > deadline:
                break
        assert state == "succeeded", (api, got.content)
        assert detail.job.api.value == api
        assert detail.request["voice_id"] == body.voice_id
    # And the service's own view agrees (read without the generated code)
    raw = WebClient(int(stack.url.rsplit(":", 1)[1]), TOKEN)
    v4 = raw.get(f"/v1/jobs/{bodies['v4'].job_id}").json
    assert v4["request"]["voice_options"] == {"speed": 1.1}
