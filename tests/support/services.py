"""Long-running processes for operations tests: beat, Flower, the webhook receiver, honcho.

Each runs the project's own command line in its own process group and logs to a file; ``start``
returns once a line that proves readiness appears in the log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.procs import CELERY, ROOT

BIN = Path(CELERY).parent


class Proc:
    def __init__(
        self, args: Sequence[str], env: Mapping[str, str], log: Path, ready: str | None
    ) -> None:
        self.args = list(args)
        self.env = dict(env)
        self.log = log
        self.ready = ready
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.ready is not None:
            self.wait_for(self.ready, timeout)
        return self

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text():
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[:4]} exited:\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.args[:4]}: no {text!r}:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


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
