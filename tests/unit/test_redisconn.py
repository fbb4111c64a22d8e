"""REDIS_URL, the Sentinel and the TLS settings: what is refused (naming the variable), and how
each library is told the same thing (config/redisconn.py, config/celeryconfig.py)."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest

from config.celeryconfig import SENTINEL_TRANSPORT, TRANSPORT, celery_config
from config.redisconn import redis_target
from config.settings import Settings, SettingsError

S3 = "sentinel://app:pa%3Ass@10.0.0.1:26379;sentinel://10.0.0.2:26380;sentinel://10.0.0.3/2"


@pytest.fixture()
def pem(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with redis://, rediss://"),
        ({"REDIS_URL": "sentinel://"}, "is not sentinel://host:port"),
        ({"REDIS_URL": "sentinel://h1:x"}, "has an invalid port"),
        ({"REDIS_URL": "sentinel://h1/1;sentinel://h2/2"}, "name different databases [1, 2]"),
        ({"REDIS_URL": "sentinel://h1;redis://h2"}, "is not sentinel://host:port"),
        ({"REDIS_URL": "sentinel://a:b@h1;sentinel://c:d@h2"}, "write the master's user"),
        ({"REDIS_SENTINEL_PASSWORD": "x"}, "REDIS_SENTINEL_PASSWORD is set but REDIS_URL"),
        ({"REDIS_TLS_CA_FILE": "{pem}"}, "REDIS_TLS_CA_FILE is set but REDIS_URL is not rediss"),
        ({"REDIS_URL": "rediss://h", "REDIS_TLS_CERT_FILE": "{pem}"}, "go together"),
        ({"REDIS_URL": "rediss://h", "REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"},
         "REDIS_TLS_CA_FILE: cannot read /nonexistent/ca.pem"),
        ({"REDIS_URL": "sentinel://h1", "REDIS_TLS_CA_FILE": "{pem}"}, "not supported"),
    ],
)  # fmt: skip
def test_bad_redis_settings_are_refused_naming_the_variable(
    env: dict[str, str], message: str, pem: str
) -> None:
    env = {k: v.format(pem=pem) for k, v in env.items()}
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(env)


def test_a_sentinel_list_is_taken_apart() -> None:
    s = Settings.from_env({"REDIS_URL": S3, "REDIS_SENTINEL_MASTER": "audio",
                           "REDIS_SENTINEL_PASSWORD": "sentinel-secret"})  # fmt: skip
    t = redis_target(s)
    assert t.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379))
    assert (t.master, t.db, t.username, t.password) == ("audio", 2, "app", "pa:ss")
    assert t.sentinel_kwargs()["password"] == "sentinel-secret"
    shown = repr(t) + t.describe() + repr(s) + str(s.redacted())
    for secret in ("pa:ss", "pa%3Ass", "sentinel-secret"):
        assert secret not in shown


def test_every_component_is_told_the_sentinels_in_its_own_spelling() -> None:
    s = Settings.from_env({"REDIS_URL": S3, "REDIS_SENTINEL_MASTER": "audio",
                           "REDIS_SENTINEL_PASSWORD": "sentinel-secret"})  # fmt: skip
    c = celery_config(s)
    # kombu: our reliable transport's Sentinel variant, one Sentinel in the URL (a failover
    # list there would make kombu switch to its own transport on a connection error), every
    # Sentinel in the transport options.
    assert c["broker_transport"] == SENTINEL_TRANSPORT
    assert c["broker_url"] == "sentinel://app:pa%3Ass@10.0.0.1:26379/2"
    options = c["broker_transport_options"]
    assert options["master_name"] == "audio"
    assert options["sentinels"] == [["10.0.0.1", 26379], ["10.0.0.2", 26380], ["10.0.0.3", 26379]]
    assert options["sentinel_kwargs"]["password"] == "sentinel-secret"
    assert options["reliable_fetch"] is True and options["health_check_interval"] > 0
    # Celery's result backend: the whole list, the master's name in its transport options.
    assert c["result_backend"].count("sentinel://app:pa%3Ass@") == 3
    assert c["result_backend_transport_options"]["master_name"] == "audio"
    # RedBeat: "service_name", not "master_name".
    rb = c["redbeat_redis_options"]
    assert c["redbeat_redis_url"].startswith("redis-sentinel")
    assert rb["service_name"] == "audio" and "master_name" not in rb
    assert rb["sentinels"][0] == ("10.0.0.1", 26379) and rb["db"] == 2
    assert (rb["username"], rb["password"]) == ("app", "pa:ss")
    assert c["broker_channel_error_retry"] is True


def test_tls_files_reach_every_component(tmp_path: Path, pem: str) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    cert.write_text("x")
    key.write_text("x")
    s = Settings.from_env({"REDIS_URL": "rediss://user:pw@redis.internal:6380/0",
                           "REDIS_TLS_CA_FILE": pem, "REDIS_TLS_CERT_FILE": str(cert),
                           "REDIS_TLS_KEY_FILE": str(key)})  # fmt: skip
    c = celery_config(s)
    expected = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": pem,
                "ssl_certfile": str(cert), "ssl_keyfile": str(key)}  # fmt: skip
    assert c["broker_transport"] == TRANSPORT
    assert c["broker_use_ssl"] == c["redis_backend_use_ssl"] == expected
    assert c["redbeat_redis_use_ssl"] == expected
    assert c["broker_url"] == c["result_backend"] == c["redbeat_redis_url"] == s.redis_url


def test_rediss_without_a_ca_file_still_verifies_against_the_systems_cas() -> None:
    c = celery_config(Settings.from_env({"REDIS_URL": "rediss://cache.example.com:6379/0"}))
    assert c["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_a_query_string_password_is_never_described() -> None:
    for url in (
        "redis://10.0.0.5:6379/0?password=pw123",
        "rediss://u:pw123@10.0.0.5:6379/0?password=pw123&ssl_cert_reqs=required",
    ):
        target = redis_target(Settings(redis_url=url))
        assert "pw123" not in target.describe(), url
        assert "***" in target.describe()
