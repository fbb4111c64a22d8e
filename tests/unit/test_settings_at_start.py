"""Settings are read when a process starts, not when a module is imported: importing the Celery
app, its configuration, the tasks and the web service with a bad environment raises nothing and
reads nothing; starting a worker, beat, Flower, gunicorn or the command line stops with the
variable's name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BAD = {"AKOOL_RATE_LIMIT": "abc"}
MESSAGE = "configuration error: AKOOL_RATE_LIMIT must be a float, got 'abc'"
MODULES = [
    "worker.celery",
    "config.celeryconfig",
    "config.beat",
    "tasks",
    "tasks.audio",
    "tasks.control",
    "tasks.maintenance",
    "worker.web.app",
    "worker.web.api",
    "worker.web.pages",
    "worker.cli.main",
    "worker.cli.args",
    "worker.cli.jobs_cmd",
    "worker.cli.voices_cmd",
    "worker.cli.jobctl",
]


def bad_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AKOOL_", "REDIS_"))}
    # Nothing listens there: a process that went past its settings would say so differently.
    return {**env, **BAD, "PYTHONPATH": str(ROOT), "REDIS_URL": "redis://127.0.0.1:1/0"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=bad_env(), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_reads_no_setting() -> None:
    # Given an environment with a value that cannot be parsed
    script = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "from config.settings import get_settings\n"
        "print(get_settings.cache_info().misses)\n"
    )
    # When every module is imported
    out = run(sys.executable, "-c", script)
    # Then nothing raised and nothing read the settings
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


@pytest.mark.parametrize(
    "command",
    [
        ["celery", "-A", "worker", "worker"],
        ["celery", "-A", "worker", "beat"],
        ["celery", "-A", "worker", "flower"],
        ["gunicorn", "-c", "python:worker.web.gunicorn_conf", "worker.web.app:application"],
        ["akool-audio", "cancel", "some-job"],
    ],
    ids=lambda c: " ".join(c[:4]),
)
def test_starting_stops_naming_the_variable(command: list[str]) -> None:
    out = run(str(BIN / command[0]), *command[1:])
    assert out.returncode == 2, out.stderr
    assert MESSAGE in out.stderr
    assert "Traceback" not in out.stderr
