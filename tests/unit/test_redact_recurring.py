"""Task-argument display (worker/broker/redact.py) and the recurring jobs file
(worker/maintenance/recurring.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings, SettingsError
from worker.broker.redact import kwargs_repr, redact, safe_url
from worker.maintenance import recurring

SETTINGS = Settings.from_env({})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.example.com/hook", "https://api.example.com/hook"),
        (
            "https://api.example.com/hook?token=abc&x=1",
            "https://api.example.com/hook?token=***&x=***",
        ),
        ("https://user:pw@api.example.com/h#frag", "https://***@api.example.com/h#***"),
    ],
)
def test_urls_lose_credentials_and_query_values(url: str, shown: str) -> None:
    assert safe_url(url) == shown


def test_long_text_is_shortened_and_secret_keys_masked() -> None:
    got = redact({"input_text": "x" * 500, "api_key": "k", "nested": {"password": "p"}})
    assert got["input_text"].endswith("… (500 chars)") and len(got["input_text"]) < 80
    assert got["api_key"] == "***" and got["nested"]["password"] == "***"
    assert len(kwargs_repr({"input_text": "y" * 100_000})) < 200


def write(tmp_path: Path, text: str, name: str = "jobs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_valid_file_loads_and_renders_job_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"jobs": [{"name": "news", "cron": "0 7 * * *", "job_id": "news-{date}",'
        ' "request": {"input_text": "Hi.", "voice_id": "v1"}}]}',
        "jobs.json",
    )
    (job,) = recurring.load(path, SETTINGS)
    assert job.cron == "0 7 * * *" and job.task == "audio.create"
    assert recurring.render_job_id(job.job_id, job.name, 1_800_000_000) == "news-2027-01-15"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("jobs: {}", "list under 'jobs'"),
        ("jobs: [{name: a, every: 5, cron: '* * * * *', job_id: a, request: {}}]", "exactly one"),
        ("jobs: [{name: a, every: 0, job_id: a, request: {}}]", "positive number"),
        ("jobs: [{name: a, cron: '* *', job_id: a, request: {}}]", "5 fields"),
        (
            "jobs: [{name: a, every: 5, job_id: 'a-{when}', request: {input_text: x}}]",
            "job_id may use",
        ),
        ("jobs: [{name: a, every: 5, job_id: a, request: {input_text: x}}]", "voice_id"),
        (
            "jobs: [{name: a, every: 5, job_id: a, request: {input_text: x, voice_id: v}, x: 1}]",
            "unknown field",
        ),
        (
            "jobs: [{name: a, every: 5, job_id: 'a b', request: {input_text: x, voice_id: v}}]",
            "job_id",
        ),
        ("jobs: [", "not valid YAML"),
    ],
)
def test_bad_files_fail_naming_the_job(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        recurring.load(write(tmp_path, body), SETTINGS)


def test_a_missing_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="RECURRING_JOBS_FILE"):
        recurring.load(tmp_path / "nope.yaml", SETTINGS)
