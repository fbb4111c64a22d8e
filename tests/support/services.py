"""Long-running processes for operations tests: beat, Flower, the web service, honcho.

Each runs the project's own command line in its own process group and logs to a file; ``start``
returns once a line that proves readiness appears in the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.support.procs import CELERY, Proc

BIN = Path(CELERY).parent


def beat(env: Mapping[str, str], log: Path) -> Proc:
    args = [CELERY, "-A", "worker", "beat", "-S", "redbeat.RedBeatScheduler", "-l", "INFO"]
    # A standby beat blocks on the lock before it logs anything: readiness is "Starting...".
    return Proc(args, env, log, "beat: Starting...")


def flower(env: Mapping[str, str], log: Path, port: int) -> Proc:
    args = [CELERY, "-A", "worker", "flower", "--address=127.0.0.1", f"--port={port}"]
    return Proc(args, env, log, "Visit me at")


#: A token for the web service in tests (API_TOKENS needs 16+ characters).
TEST_TOKEN = "test-api-token-0123456789"


def _with_token(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with a test API token unless it says something about tokens itself."""
    if {"API_TOKENS", "API_TOKENS_FILE", "API_AUTH"} & set(env):
        return dict(env)
    return {**env, "API_TOKENS": TEST_TOKEN}


def web(env: Mapping[str, str], log: Path, port: int) -> Proc:
    """``akool-audio web`` (the development server) on loopback; ``TEST_TOKEN`` unless ``env``
    sets API_TOKENS, API_TOKENS_FILE or API_AUTH."""
    args = [str(BIN / "akool-audio"), "web", "--host", "127.0.0.1", "--port", str(port)]
    return Proc(args, _with_token(env), log, "web service listening")


def webhook(env: Mapping[str, str], log: Path, port: int) -> Proc:
    """``akool-audio webhook``: the same service, ready once the receiver's line is logged."""
    args = [str(BIN / "akool-audio"), "webhook", "--host", "127.0.0.1", "--port", str(port)]
    return Proc(args, _with_token(env), log, "webhook receiver listening")
