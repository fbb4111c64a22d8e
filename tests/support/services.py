"""Long-running processes for operations tests: beat, Flower, the webhook receiver, honcho.

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


def webhook(env: Mapping[str, str], log: Path, port: int) -> Proc:
    args = [str(BIN / "akool-audio"), "webhook", "--host", "127.0.0.1", "--port", str(port)]
    return Proc(args, env, log, "webhook receiver listening")
