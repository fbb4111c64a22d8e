from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from config.celeryconfig import celery_config
from config.settings import Settings, SettingsError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_parse_and_secrets_are_hidden() -> None:
    s = Settings.from_env(
        {
            "AKOOL_API_KEY": "sk-very-secret",
            "NOTIFY_SECRET": "hush",
            "REDIS_URL": "redis://:pw123@10.0.0.5:6379/0",
        }
    )
    printed = repr(s) + str(s.redacted())
    for secret in ("sk-very-secret", "hush", "pw123"):
        assert secret not in printed
    assert s.redacted()["AKOOL_API_KEY"] == "(set, hidden)"
    assert s.redacted()["REDIS_URL"] == "redis://:***@10.0.0.5:6379/0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POLL_DEADLINE": "soon"}, "POLL_DEADLINE must be a float"),
        ({"AKOOL_RATE_LIMIT": "0"}, "AKOOL_RATE_LIMIT must be greater than 0"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with"),
        ({"AKOOL_BASE_URL": "ftp://x"}, "AKOOL_BASE_URL must be an http"),
        ({"VISIBILITY_TIMEOUT": "100"}, "VISIBILITY_TIMEOUT must exceed"),
        ({"SWEEP_GRACE": "600"}, "VISIBILITY_TIMEOUT must exceed SWEEP_GRACE"),
        ({"POLL_INITIAL_DELAY": "60"}, "POLL_INITIAL_DELAY must not exceed POLL_MAX_DELAY"),
        ({"TRANSIENT_ERROR_BUDGET": "-1"}, "TRANSIENT_ERROR_BUDGET must be 0 or more"),
        ({"NOTIFY_MAX_ATTEMPTS": "0"}, "NOTIFY_MAX_ATTEMPTS must be at least 1"),
        ({"JOB_RETENTION_DAYS": "0.001"}, "JOB_RETENTION_DAYS must keep final records"),
        ({"PUBLIC_BASE_URL": "hooks.example.com"}, "PUBLIC_BASE_URL must be an http(s) URL"),
        ({"TRANSIENT_ERROR_BUDGET": "many"}, "TRANSIENT_ERROR_BUDGET must be a int"),
        ({"RELIABLE_FETCH": "maybe"}, "RELIABLE_FETCH must be true or false, got 'maybe'"),
    ],
)
def test_invalid_values_fail_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(env)


def test_missing_credentials_name_the_variables() -> None:
    with pytest.raises(SettingsError, match="AKOOL_API_KEY"):
        Settings.from_env({}).require_credentials()
    Settings.from_env({"AKOOL_CLIENT_ID": "a", "AKOOL_CLIENT_SECRET": "b"}).require_credentials()


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("1", True), ("ON", True), ("false", False), ("0", False)]
)
def test_flags_read_the_usual_spellings(raw: str, value: bool) -> None:
    assert Settings.from_env({"RELIABLE_FETCH": raw}).reliable_fetch is value
    options = celery_config(Settings.from_env({"RELIABLE_FETCH": raw}))["broker_transport_options"]
    assert options["reliable_fetch"] is value


def test_polls_send_no_task_events_unless_asked() -> None:
    assert celery_config(Settings())["task_annotations"] == {"audio.poll": {"send_events": False}}
    shown = celery_config(Settings.from_env({"POLL_TASK_EVENTS": "true"}))
    assert shown["task_annotations"] == {}
    assert shown["worker_send_task_events"] is True


def test_list_setting_is_split_on_commas() -> None:
    s = Settings.from_env({"ALLOW_PRIVATE_HOSTS": "127.0.0.1, localhost,"})
    assert s.allow_private_hosts == ("127.0.0.1", "localhost")


def test_every_setting_is_in_the_readme_table() -> None:
    text = README.read_text()
    missing = [f.name.upper() for f in fields(Settings) if f"`{f.name.upper()}`" not in text]
    assert not missing, f"README settings table lacks {missing}"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ("local", "audio", "", "")),
        ({"AUDIO_DIR": "/data/a"}, ("local", "/data/a", "", "")),
        ({"AUDIO_STORE": "/srv/r", "AUDIO_DIR": "/data/a"}, ("local", "/srv/r", "", "")),
        ({"AUDIO_STORE": "file:///srv/r"}, ("local", "/srv/r", "", "")),
        ({"AUDIO_STORE": "s3://my-bucket/tts/v1/"}, ("s3", None, "my-bucket", "tts/v1")),
        ({"AUDIO_STORE": "s3://my.bucket-2"}, ("s3", None, "my.bucket-2", "")),
    ],
)
def test_audio_store_names_a_local_directory_or_a_bucket(
    env: dict[str, str], expected: tuple[str, str | None, str, str]
) -> None:
    t = Settings.from_env(env).store_target()
    assert (t.kind, None if t.path is None else str(t.path), t.bucket, t.prefix) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUDIO_STORE": "file://relative/dir"}, "absolute path"),
        ({"AUDIO_STORE": "s3://Bad_Bucket/x"}, "not a bucket name"),
        ({"AUDIO_STORE": "s3://ab"}, "not a bucket name"),
        ({"AUDIO_STORE": "s3://bucket/a/../b"}, "prefix"),
        ({"AUDIO_STORE": "ftp://host/x"}, "AUDIO_STORE must be"),
        ({"DOWNLOAD_URL_TTL": "604801"}, "at most 604800"),
        ({"S3_ADDRESSING_STYLE": "dns"}, "auto, path or virtual"),
        ({"S3_ENDPOINT_URL": "minio:9000"}, "S3_ENDPOINT_URL"),
        ({"STORAGE_RETRY_WINDOW": "0"}, "STORAGE_RETRY_WINDOW"),
    ],
)
def test_bad_storage_settings_are_refused_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_the_endpoint_password_is_masked() -> None:
    shown = Settings.from_env({"S3_ENDPOINT_URL": "https://u:pw1@minio:9000"}).redacted()
    assert shown["S3_ENDPOINT_URL"] == "https://u:***@minio:9000"
