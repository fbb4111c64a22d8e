"""The Procfile and docker-compose.yml agree with each other and with the project. No Docker
engine runs here, so the compose file is parsed and checked rather than started."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from config.settings import Settings
from tests.support.services import BIN
from worker.web.serving import bind_for

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"worker", "poller", "beat", "flower", "web"}
WEB = "gunicorn -c python:worker.web.gunicorn_conf worker.web.app:application"
SETTINGS = {f.name.upper() for f in fields(Settings)}
FILED = {
    f"{f.name.upper()}_FILE"
    for f in fields(Settings)
    if f.metadata.get("secret") or f.metadata.get("from_file")
}
# Read by boto3's credential chain (not our settings), and MinIO's own bootstrap user.
FOREIGN = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_procfile_runs_the_five_processes_with_the_projects_commands() -> None:
    procs = procfile()
    assert set(procs) == APP_SERVICES
    # Polls apart from intake and downloads, so a burst of new jobs never delays a poll.
    assert procs["worker"].startswith("celery -A worker worker -Q audio,notify ")
    assert procs["poller"].startswith("celery -A worker worker -Q poll ")
    names = [p.split(" -n ")[1].split()[0] for p in (procs["worker"], procs["poller"])]
    assert len(set(names)) == 2  # two node names: both run on one host
    assert "-S redbeat.RedBeatScheduler" in procs["beat"]
    assert procs["flower"] == "akool-audio flower"  # reads FLOWER_BASIC_AUTH_FILE too
    assert procs["web"] == WEB


def test_compose_services_and_commands_match_the_procfile() -> None:
    services = compose()["services"]
    assert set(services) == APP_SERVICES | {"redis", "sandbox", "minio", "minio-init"}
    for name, command in procfile().items():
        assert services[name]["command"] == command, name
    assert services["sandbox"]["profiles"] == ["sandbox"]
    assert services["sandbox"]["command"].startswith("akool-audio sandbox --host 0.0.0.0")


def test_redis_persists_with_aof_never_evicts_and_has_a_healthcheck() -> None:
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "redis-cli" in str(redis["healthcheck"]["test"]) and "ping" in str(
        redis["healthcheck"]["test"]
    )
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_app_services_wait_for_a_healthy_redis() -> None:
    services = compose()["services"]
    for name in APP_SERVICES:
        assert services[name]["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "minio-init": {"condition": "service_completed_successfully"},
        }, name
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_every_environment_name_is_a_setting() -> None:
    for name, service in compose()["services"].items():
        unknown = set(service.get("environment") or {}) - SETTINGS - FILED - FOREIGN
        assert not unknown, f"{name}: {sorted(unknown)} are not in config/settings.py"
    text = (ROOT / "docker-compose.yml").read_text()
    for var in re.findall(r"\$\{([A-Z0-9_]+)", text):
        assert var in SETTINGS | FOREIGN, var


def test_workers_scale_and_only_beat_reads_the_recurring_file() -> None:
    services = compose()["services"]
    for name in ("worker", "poller"):
        assert "container_name" not in services[name] and "ports" not in services[name]
    for name in APP_SERVICES - {"beat"}:
        assert "RECURRING_JOBS_FILE" not in services[name]["environment"], name
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith("${")


def test_the_image_builds_from_the_dockerfile_with_the_flower_config() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert compose()["services"]["worker"]["build"] == "."
    assert "flowerconfig.py" in dockerfile and "pip install ." in dockerfile


def test_results_go_to_the_bucket_that_minio_init_creates() -> None:
    services = compose()["services"]
    env = services["worker"]["environment"]
    assert env["AUDIO_STORE"] == "${AUDIO_STORE:-s3://audio/results}"
    # "-", not ":-": an empty S3_ENDPOINT_URL (AWS S3) stays empty
    assert env["S3_ENDPOINT_URL"] == "${S3_ENDPOINT_URL-http://minio:9000}"
    assert "mc mb --ignore-existing local/audio" in services["minio-init"]["entrypoint"]
    assert services["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    # No password has a default: compose refuses to start without one.
    for name in ("minio", "minio-init"):
        assert services[name]["environment"]["MINIO_ROOT_PASSWORD"].startswith(
            "${MINIO_ROOT_PASSWORD:?"
        )
    assert "ports" not in services["minio"]  # reachable by the workers only


def _gunicorn_config(env: dict[str, str]) -> dict[str, str]:
    """gunicorn's own reading of the web command's configuration (``--print-config``)."""
    args = [str(BIN / "gunicorn"), "--print-config", *procfile()["web"].split()[1:]]
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("WEB_", "API_"))}
    run_env.update(env, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        args, env=run_env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    lines = (line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in lines}


def test_web_binds_web_host_and_port_with_gevent_and_no_query_in_any_access_log() -> None:
    token = "t" * 20
    got = _gunicorn_config({"WEB_HOST": "0.0.0.0", "WEB_PORT": "8123", "API_TOKENS": token})
    assert got["bind"] == "['0.0.0.0:8123']"
    # slow and idle clients hold greenlets, not threads (issue 23; worker/web/serving.py)
    assert got["worker_class"] == "worker.web.serving.Worker"
    assert int(got["keepalive"]) >= 5 and int(got["worker_connections"]) >= 1000
    assert got["accesslog"] == "None"  # the app logs each request itself
    assert got["control_socket_disable"] == "True"  # several servers may share one host
    fmt = got["access_log_format"]
    assert "%(r)s" not in fmt and "%(q)s" not in fmt and "%(U)s" in fmt  # no query string
    assert "%(a)s" not in fmt and "%(f)s" not in fmt and "{" not in fmt  # no header
    assert token not in str(got)


def test_bind_reads_the_settings_ipv6_too() -> None:
    assert bind_for(Settings()) == ["127.0.0.1:8000"]
    assert bind_for(Settings(web_host="::", web_port=9000)) == ["[::]:9000"]


def test_compose_web_publishes_its_port_asks_for_tokens_and_checks_health() -> None:
    web = compose()["services"]["web"]
    assert web["environment"]["WEB_HOST"] == "0.0.0.0"
    assert web["ports"] == [f"{web['environment']['WEB_PORT']}:8000"] == ["8000:8000"]
    # Tokens come from the operator's environment; there is no default token.
    assert web["environment"]["API_TOKENS"] == "${API_TOKENS:-}"
    assert "/healthz" in " ".join(web["healthcheck"]["test"])
    assert "webhook" not in compose()["services"]


def test_redis_asks_for_the_password_of_a_secret_file_that_every_service_reads() -> None:
    doc = compose()
    secret = doc["secrets"]["redis_password"]
    assert secret["file"] == "./secrets/redis_password"
    redis = doc["services"]["redis"]
    assert redis["secrets"] == ["redis_password"]
    # requirepass from the secret, never on the command line (ps would show it) nor in a default
    assert "/run/secrets/redis_password" in redis["command"]
    assert "requirepass" in redis["command"] and "--requirepass" not in redis["command"]
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    for name in APP_SERVICES:
        service = doc["services"][name]
        assert "redis_password" in service["secrets"], name
        assert service["environment"]["REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"


def test_web_answers_to_its_compose_name_and_the_operators_names() -> None:
    env = compose()["services"]["web"]["environment"]
    names = env["WEB_ALLOWED_HOSTS"]
    assert names.startswith("${WEB_ALLOWED_HOSTS:-") or names.startswith("web,")
    assert "web" in names.replace("${WEB_ALLOWED_HOSTS:-", "").split(",")[0]
