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


@pytest.mark.parametrize(
    "url",
    [
        "redis://10.0.0.5:6379/0?password=pw123",
        "redis://10.0.0.5:6379/0?db=0&password=pw123&socket_timeout=5",
        "redis://u:pw123@10.0.0.5:6379/0?password=pw123",
        "unix:///run/redis.sock?db=0&Password=pw123",
        "sentinel://10.0.0.5:26379/0?sentinel_password=pw123",
    ],
)
def test_a_password_in_the_query_string_is_masked_too(url: str) -> None:
    s = Settings(redis_url=url)
    shown = s.redacted()["REDIS_URL"]
    assert "pw123" not in shown and "pw123" not in repr(s)
    assert "***" in shown


def test_a_tokens_file_holds_one_token_a_line_or_comma_separated(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("first-token-0123456789\nsecond-token-0123456789\r\n\nthird-token-012345678,"
                    " fourth-token-01234567\n")  # fmt: skip
    s = Settings.from_env({"API_TOKENS_FILE": str(path)})
    assert s.api_tokens == (
        "first-token-0123456789",
        "second-token-0123456789",
        "third-token-012345678",
        "fourth-token-01234567",
    )


def test_the_web_edge_settings_parse() -> None:
    s = Settings.from_env(
        {
            "WEB_ALLOWED_HOSTS": "web, audio.example.com",
            "WEB_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
            "AUTH_FAILURE_LIMIT": "20",
        }
    )
    assert s.web_allowed_hosts == ("web", "audio.example.com")
    assert s.web_trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert s.auth_failure_limit == 20
    assert Settings().auth_failure_limit == 10 and Settings().web_trusted_proxies == ()
    for env, message in (
        ({"WEB_TRUSTED_PROXIES": "10.0.0.0/33"}, "WEB_TRUSTED_PROXIES: '10.0.0.0/33' is not"),
        ({"WEB_TRUSTED_PROXIES": "proxy.example.com"}, "WEB_TRUSTED_PROXIES"),
        ({"AUTH_FAILURE_LIMIT": "-1"}, "AUTH_FAILURE_LIMIT must be 0 or more"),
        ({"WEB_ALLOWED_HOSTS": "a b"}, "WEB_ALLOWED_HOSTS: 'a b' is not a host name"),
    ):
        with pytest.raises(SettingsError, match=re.escape(message)):
            Settings.from_env(env)


def test_a_redis_password_of_its_own_joins_the_url(tmp_path: Path) -> None:
    path = tmp_path / "redis_password"
    path.write_text("from-the-secret-0123\n")
    s = Settings.from_env({"REDIS_URL": "redis://redis:6379/0", "REDIS_PASSWORD_FILE": str(path)})
    assert s.redis_url == "redis://:from-the-secret-0123@redis:6379/0"
    assert "from-the-secret" not in repr(s)
    sentinel = Settings.from_env(
        {"REDIS_URL": "sentinel://h1:26379;sentinel://h2/1", "REDIS_PASSWORD": "p@ss word"}
    )
    assert sentinel.redis_url == "sentinel://:p%40ss%20word@h1:26379;sentinel://h2/1"
    with pytest.raises(SettingsError, match="REDIS_PASSWORD is set but REDIS_URL has a password"):
        Settings.from_env({"REDIS_URL": "redis://:pw@redis:6379/0", "REDIS_PASSWORD": "x"})
